"""Exceptions of xnat-dicom-mappings."""

from __future__ import annotations


class DicomMappingsError(Exception):
    """Base class of every error this package raises on purpose."""


class TagSyntaxError(DicomMappingsError, ValueError):
    """A tag expression that the tag grammar cannot parse or does not allow.

    ``text`` is the expression as given; the message says what is wrong and
    which forms are accepted.
    """

    def __init__(self, message: str, text: str | None = None):
        super().__init__(message)
        self.text = text


class ConversionError(DicomMappingsError, ValueError):
    """A DICOM value that cannot become the rule's field type.

    ``kind`` is ``"invalid"`` (a value is there but is not usable) or
    ``"missing"`` (no usable value, such as an empty date or ``00000000``).
    """

    def __init__(self, message: str, kind: str = "invalid", raw: str | None = None):
        super().__init__(message)
        self.kind = kind
        self.raw = raw


class StoreUnavailable(DicomMappingsError):
    """The rule database cannot be reached; the request can be retried."""
