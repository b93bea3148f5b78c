"""XNAT 1.8's custom DICOM mappings for Flask archives.

``DicomMappings`` is the Flask extension. The extraction core (``tags``,
``convert``, ``reader``, ``extractor``) needs neither Flask nor SQLAlchemy,
so the names that do are imported only when first used.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from .errors import ConversionError, DicomMappingsError, StoreUnavailable, TagSyntaxError
from .rules import Rule

__version__ = "0.1.0"

__all__ = [
    "ConversionError",
    "DefaultHost",
    "DicomMappings",
    "DicomMappingsError",
    "Host",
    "Rule",
    "StoreUnavailable",
    "TagSyntaxError",
    "__version__",
]

_LAZY = {
    "DicomMappings": "extension",
    "DefaultHost": "host",
    "Host": "host",
}

if TYPE_CHECKING:
    from .extension import DicomMappings
    from .host import DefaultHost, Host


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{module}", __name__), name)
