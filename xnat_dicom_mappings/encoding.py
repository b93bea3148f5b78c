"""The layout of data elements in a file: VRs, element headers, special tags and read errors.

These are the transfer syntax rules of DICOM PS3.5 section 7 that the element
loop (:mod:`.elements`) and the sequence walker (:mod:`.sequences`) share.
Character sets are in :mod:`.charset`.
"""

from __future__ import annotations

import struct

from pydicom import datadict

from .errors import DicomMappingsError

TEXT_VRS = frozenset(
    {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI",
     "UR", "UT"}
)

#: struct format letter and size of each binary numeric VR.
NUMERIC_VRS: dict[str, tuple[str, int]] = {
    "US": ("H", 2), "SS": ("h", 2), "UL": ("L", 4), "SL": ("l", 4),
    "SV": ("q", 8), "UV": ("Q", 8), "FL": ("f", 4), "FD": ("d", 8),
}

#: VRs with a 4-byte length field in explicit VR encoding.
LONG_LENGTH_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR",
                             "UT", "UV"})

KNOWN_VRS = TEXT_VRS | set(NUMERIC_VRS) | {"AT", "OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UN"}

_KNOWN_VR_BYTES = frozenset(vr.encode("ascii") for vr in KNOWN_VRS)

#: Groups that the first element of a file without preamble may belong to.
#: Anything else there means the bytes are not a DICOM dataset.
_PLAUSIBLE_FIRST_GROUPS = frozenset({0x0000, 0x0002, 0x0004, 0x0008, 0x0010, 0x0018, 0x0020,
                                     0x0028})

#: Values longer than this many bytes are read in pieces of this size from a
#: stream whose size is unknown, so that a false declared length never
#: allocates more than the bytes that are there.
_READ_CHUNK = 1024 * 1024

_UNDEFINED_LENGTH = 0xFFFFFFFF

_ITEM_TAG = 0xFFFEE000

_ITEM_DELIMITER = 0xFFFEE00D

_SEQUENCE_DELIMITER = 0xFFFEE0DD

#: Element headers by byte order (True for little endian): tag and 4-byte
#: length, tag with VR and 2-byte length, and the 4-byte length that follows
#: the VRs of LONG_LENGTH_VRS.
_TAG_AND_LENGTH = {True: struct.Struct("<HHL"), False: struct.Struct(">HHL")}

_EXPLICIT_HEADER = {True: struct.Struct("<HH2sH"), False: struct.Struct(">HH2sH")}

_LONG_LENGTH = {True: struct.Struct("<L"), False: struct.Struct(">L")}


class UnreadableFile(DicomMappingsError):
    """A file that is not DICOM or whose header cannot be parsed.

    ``reason`` is the message without the file name.
    """

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class ElementError(DicomMappingsError):
    """An element that was read but whose value or items cannot be parsed."""


def _read_value(read, length: int) -> bytes:
    """Read up to ``length`` bytes, in pieces when long, so that memory follows the bytes present."""
    if length <= _READ_CHUNK:
        return read(length)
    pieces = []
    remaining = length
    while remaining:
        piece = read(min(remaining, _READ_CHUNK))
        if not piece:
            break
        pieces.append(piece)
        remaining -= len(piece)
    return b"".join(pieces)


def _dictionary_vr(tag: int) -> str | None:
    try:
        vr = datadict.dictionary_VR(tag)
    except KeyError:
        return None
    return vr.split(" or ")[0] if vr else None


def _tag_text(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
