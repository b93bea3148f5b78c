"""Write small DICOM files byte by byte, including what pydicom would refuse to write."""

from __future__ import annotations

import struct

EXPLICIT_LITTLE = "1.2.840.10008.1.2.1"
IMPLICIT_LITTLE = "1.2.840.10008.1.2"

LONG_LENGTH_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}

#: Identity of the one study and series that the case files share by default.
STUDY_UID = "1.2.826.0.1.3680043.8.498.1"
SERIES_UID = "1.2.826.0.1.3680043.8.498.1.1"


def encode_element(tag: int, vr: str, value: bytes, implicit: bool = False) -> bytes:
    """Encode one element; odd-length values get one space (NUL for UI) of padding."""
    if len(value) % 2:
        value += b"\x00" if vr in ("UI", "OB", "UN") else b" "
    group, element = tag >> 16, tag & 0xFFFF
    if implicit:
        return struct.pack("<HHL", group, element, len(value)) + value
    if vr in LONG_LENGTH_VRS:
        return struct.pack("<HH2sHL", group, element, vr.encode(), 0, len(value)) + value
    return struct.pack("<HH2sH", group, element, vr.encode(), len(value)) + value


def file_meta(transfer_syntax: str) -> bytes:
    syntax = transfer_syntax.encode()
    body = encode_element(0x00020010, "UI", syntax)
    return encode_element(0x00020000, "UL", struct.pack("<L", len(body))) + body


def dataset_bytes(elements, implicit: bool = False, identity: bool = True,
                  study_uid: str = STUDY_UID, series_uid: str = SERIES_UID,
                  series_number: str = "4", modality: str = "MR") -> bytes:
    """Encode (tag, VR, bytes) elements in tag order, adding the study and series identity."""
    elements = list(elements)
    present = {tag for tag, _, _ in elements}
    if identity:
        defaults = [
            (0x00080060, "CS", modality.encode()),
            (0x0020000D, "UI", study_uid.encode()),
            (0x0020000E, "UI", series_uid.encode()),
            (0x00200011, "IS", series_number.encode()),
        ]
        elements += [item for item in defaults if item[0] not in present]
    elements.sort(key=lambda item: item[0])
    return b"".join(encode_element(tag, vr, value, implicit) for tag, vr, value in elements)


def write_dicom(path, elements, implicit: bool = False, **identity) -> str:
    """Write a Part 10 file: preamble, DICM, file meta and the elements."""
    syntax = IMPLICIT_LITTLE if implicit else EXPLICIT_LITTLE
    data = b"\x00" * 128 + b"DICM" + file_meta(syntax) + dataset_bytes(elements, implicit, **identity)
    with open(path, "wb") as stream:
        stream.write(data)
    return str(path)
