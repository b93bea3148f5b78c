"""The loop over the top-level data elements of a file, with early stop and bounds checks."""

from __future__ import annotations

import io
from typing import BinaryIO

from pydicom.dataelem import RawDataElement
from pydicom.tag import BaseTag

from .encoding import (
    _EXPLICIT_HEADER,
    _ITEM_DELIMITER,
    _KNOWN_VR_BYTES,
    _LONG_LENGTH,
    _PLAUSIBLE_FIRST_GROUPS,
    _TAG_AND_LENGTH,
    _UNDEFINED_LENGTH,
    LONG_LENGTH_VRS,
    UnreadableFile,
    _read_value,
    _tag_text,
)
from .sequences import _read_undefined

def _read_elements(stream: BinaryIO, implicit: bool, little: bool, wants, stop, *,
                   into: dict | None = None, check_first: bool = False,
                   size: int | None = None) -> dict:
    """Read top-level elements until ``stop(tag)``; keep those that ``wants(tag)``.

    Elements that are not wanted are skipped by seeking past their value,
    and undefined-length ones are walked to their delimiter. ``size`` is the
    stream's size in bytes when it is known: each declared length is checked
    against it before the value is read or skipped. Otherwise long values
    are read in pieces and, at the end of the stream, its end is checked
    against the end of the last value skipped. ``check_first`` applies the
    checks for bytes that no file meta vouches for: a plausible first element
    and strictly ascending tags. Raises UnreadableFile when the file ends
    inside an element before the stop.
    """
    elements = {} if into is None else into
    implicit_header = _TAG_AND_LENGTH[little]
    explicit_header = _EXPLICIT_HEADER[little]
    long_length = _LONG_LENGTH[little]
    read = stream.read
    seek = stream.seek
    # The position is counted here rather than asked with tell(), which is a
    # system call on a file; only undefined-length elements need tell().
    position = stream.tell()
    first = True
    previous_tag = -1

    while True:
        header = read(8)
        if len(header) < 8:
            if header and first and check_first:
                raise UnreadableFile("not a DICOM file: too short to hold a data element")
            if header:
                raise UnreadableFile(
                    f"the file ends at byte {position + len(header)}, inside the header of the "
                    f"data element that starts at byte {position}"
                )
            if size is None and not first:
                _check_stream_end(stream, position, tag, value_start, length)
            return elements

        header_size = 8
        element_implicit = implicit
        if implicit:
            group, number, length = implicit_header.unpack(header)
            vr = None
        else:
            group, number, vr_bytes, length = explicit_header.unpack(header)
            if vr_bytes in _KNOWN_VR_BYTES:
                vr = vr_bytes.decode("ascii")
                if vr in LONG_LENGTH_VRS:
                    extra = read(4)
                    if len(extra) < 4:
                        raise UnreadableFile(
                            f"the file ends at byte {position + 8 + len(extra)}, inside the "
                            f"header of element {_tag_text(group << 16 | number)} that starts at "
                            f"byte {position}"
                        )
                    length = long_length.unpack(extra)[0]
                    header_size = 12
            elif not (b"AA" <= vr_bytes <= b"ZZ"):
                # Some writers switch to implicit VR for single elements; pydicom reads them so.
                group, number, length = implicit_header.unpack(header)
                vr = None
                element_implicit = True
            else:
                raise UnreadableFile(
                    f"unknown VR {vr_bytes!r} in element {_tag_text(group << 16 | number)} at byte {position}"
                )

        tag = (group << 16) | number
        if check_first:
            if first:
                _check_first_element(tag, vr, length)
            elif tag <= previous_tag:
                raise UnreadableFile(
                    f"not a DICOM file: element {_tag_text(tag)} at byte {position} follows "
                    f"element {_tag_text(previous_tag)}, but the tags of a DICOM dataset ascend"
                )
            previous_tag = tag
        first = False

        if tag == _ITEM_DELIMITER or stop(tag):
            seek(position)
            return elements

        value_start = position + header_size
        if length == _UNDEFINED_LENGTH:
            element = _read_undefined(stream, tag, vr, element_implicit, little, wants(tag),
                                      position, size)
            if element is not None:
                elements[tag] = element
            position = stream.tell()
            continue

        position = value_start + length
        if size is not None and position > size:
            raise _truncated(tag, value_start, length, size)

        if not wants(tag):
            seek(length, io.SEEK_CUR)
            continue

        value = _read_value(read, length)
        if len(value) < length:
            raise _truncated(tag, value_start, length, value_start + len(value))
        elements[tag] = RawDataElement(BaseTag(tag), vr, length, value, value_start,
                                       element_implicit, little)


def _truncated(tag: int, value_start: int, length: int, end: int) -> UnreadableFile:
    """Return the error for a file that ends at byte ``end``, inside the value of ``tag``."""
    present = max(end - value_start, 0)
    return UnreadableFile(
        f"the file ends inside element {_tag_text(tag)}, at byte {end}: {length} bytes "
        f"announced from byte {value_start}, {present} present"
    )


def _check_stream_end(stream: BinaryIO, position: int, tag: int, value_start: int,
                      length: int) -> None:
    """Raise UnreadableFile when a stream of unknown size ends before ``position``.

    Seeking past the end of a file succeeds, so a skipped value that the file
    cuts short is noticed only here, at the end of the stream.
    """
    try:
        end = stream.seek(0, io.SEEK_END)
    except (OSError, ValueError):  # a stream that cannot seek to its end
        return
    if isinstance(end, int) and end < position:
        raise _truncated(tag, value_start, length, end)


def _check_first_element(tag: int, vr: str | None, length: int) -> None:
    group, element = tag >> 16, tag & 0xFFFF
    if group not in _PLAUSIBLE_FIRST_GROUPS:
        reason = f"group {group:04X} is not one that a dataset starts with"
    elif element == 0x0000 and length != 4:
        reason = "a group length element has a 4-byte UL value"
    elif vr is None and length != _UNDEFINED_LENGTH and length > 0x100000:
        reason = "no dataset opens with an implicit VR element of more than 1 MiB"
    else:
        return
    raise UnreadableFile(
        f"not a DICOM file: the first data element would be {_tag_text(tag)} with length "
        f"{length}, which no DICOM dataset starts with ({reason})"
    )
