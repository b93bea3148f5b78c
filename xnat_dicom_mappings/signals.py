"""Blinker signals of the extension.

Connect with ``signals.session_extracted.connect(receiver, app)``; the
sender is always the Flask app.
"""

from __future__ import annotations

import logging

from blinker import Namespace

logger = logging.getLogger(__name__)

_signals = Namespace()

#: Sent by ``DicomMappings.extract_session`` after every archived session with
#: ``result`` (the ExtractionResult), ``project``, ``session_type`` and ``session_id``.
session_extracted = _signals.signal("dicom-mappings-session-extracted")

#: Sent after every committed rule change with ``action`` ("create", "update",
#: "delete" or "import") and ``rule_ids``.
rules_changed = _signals.signal("dicom-mappings-rules-changed")


def send_safely(signal, sender, **kwargs) -> None:
    """Send ``signal`` to every receiver, logging and skipping a receiver that raises.

    Blinker's own ``send`` stops at the first exception, which would drop the
    remaining receivers and the sender's result with it.
    """
    for receiver in signal.receivers_for(sender):
        try:
            receiver(sender, **kwargs)
        except Exception:
            logger.exception("receiver %r of signal %r failed", receiver, signal.name)
