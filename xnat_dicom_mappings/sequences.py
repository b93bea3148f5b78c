"""Undefined-length sequences: walked without recursion while reading, parsed by pydicom on demand."""

from __future__ import annotations

import io
import struct
from typing import BinaryIO

from pydicom.dataelem import RawDataElement
from pydicom.filereader import read_sequence
from pydicom.fileutil import read_undefined_length_value
from pydicom.tag import BaseTag, SequenceDelimiterTag

from .encoding import (
    _EXPLICIT_HEADER,
    _ITEM_DELIMITER,
    _ITEM_TAG,
    _KNOWN_VR_BYTES,
    _LONG_LENGTH,
    _SEQUENCE_DELIMITER,
    _TAG_AND_LENGTH,
    _UNDEFINED_LENGTH,
    LONG_LENGTH_VRS,
    ElementError,
    UnreadableFile,
    _dictionary_vr,
    _read_value,
    _tag_text,
)

#: Deepest nesting of undefined-length sequences that the reader follows; a
#: file that nests deeper is unreadable. pydicom 3.0 parses nested sequences
#: recursively, at about five stack frames a level (measured: 150 levels
#: parse, 200 raise RecursionError under Python's default limit of 1000).
#: At 64 levels, its later parse of a requested sequence stays well inside that.
MAX_SEQUENCE_DEPTH = 64


def _parse_items(element: RawDataElement, tag: int) -> list:
    """Parse the raw bytes of a sequence's items with pydicom; raise ElementError when they are malformed."""
    value = element.value
    try:
        return list(read_sequence(io.BytesIO(value), element.is_implicit_VR,
                                  element.is_little_endian, len(value), "iso8859"))
    except RecursionError as exc:
        # The reader walks only undefined-length sequences, so the items of a
        # defined-length one may nest deeper than MAX_SEQUENCE_DEPTH.
        raise ElementError(
            f"the items of sequence {_tag_text(tag)} nest sequences too deeply to parse"
        ) from exc
    except Exception as exc:  # pydicom raises several types on malformed items
        raise ElementError(
            f"the items of sequence {_tag_text(tag)} cannot be parsed: {exc}"
        ) from exc


def _read_undefined(stream: BinaryIO, tag: int, vr: str | None, implicit: bool, little: bool,
                    requested: bool, position: int, size: int | None):
    """Read or skip an undefined-length element whose header starts at byte ``position``.

    A sequence is walked to its delimiter. When ``requested``, it is returned
    as a RawDataElement of VR SQ whose value is the bytes of its items, and
    :meth:`.reader.Header.lookup` parses them when a path enters it. Any other value
    runs up to a Sequence Delimitation Item. Returns None when not ``requested``.
    """
    layout = _undefined_length_layout(stream, tag, vr, implicit, little)
    if layout is None:
        value = read_undefined_length_value(stream, little, SequenceDelimiterTag)
        if not requested:
            return None
        return RawDataElement(BaseTag(tag), vr, _UNDEFINED_LENGTH, value, position, implicit,
                              little)

    items_implicit, items_little = layout
    pieces = [] if requested else None
    _walk_sequence(stream, tag, position, items_implicit, items_little, size, pieces)
    if pieces is None:
        return None
    value = b"".join(pieces)
    return RawDataElement(BaseTag(tag), "SQ", len(value), value, position, items_implicit,
                          items_little)


def _undefined_length_layout(stream: BinaryIO, tag: int, vr: str | None, implicit: bool,
                             little: bool) -> tuple[bool, bool] | None:
    """Return (implicit VR, little endian) of the items of an undefined-length sequence.

    Returns None for an undefined-length value that is not a sequence, such
    as encapsulated pixel data. Without a VR in the file, the data dictionary
    decides, and for a tag it does not know, whether the value starts with an
    Item tag.
    """
    if vr is None or vr == "UN":
        dictionary_vr = _dictionary_vr(tag) if (tag >> 16) % 2 == 0 else None
        if dictionary_vr is not None:
            vr = dictionary_vr
        else:
            peek = stream.read(4)
            stream.seek(-len(peek), io.SEEK_CUR)
            if len(peek) == 4:
                group, number = struct.unpack("<HH" if little else ">HH", peek)
                if (group << 16 | number) == _ITEM_TAG:
                    vr = "SQ"

    if vr == "SQ":
        return implicit, little
    if vr == "UN":
        # PS3.5 6.2.2: an undefined-length UN contains items encoded as implicit VR little endian.
        return True, True
    return None


def _walk_sequence(stream: BinaryIO, tag: int, position: int, implicit: bool, little: bool,
                   size: int | None, pieces: list[bytes] | None) -> None:
    """Walk an undefined-length sequence to its Sequence Delimitation Item, without recursion.

    The stream starts after the header of sequence ``tag``, which starts at
    byte ``position``, and ends after the delimiter. Defined-length items
    and elements are skipped by their length. Undefined-length items and
    nested sequences go on an explicit stack, so that a deep file cannot
    exhaust Python's recursion limit. When ``pieces`` is a list, the bytes before
    the delimiter are appended to it. Raises UnreadableFile when the file
    ends inside the sequence or nests more than MAX_SEQUENCE_DEPTH sequences.
    """
    read = stream.read
    offset = stream.tell()
    # One entry per open sequence or undefined-length item: (inside an item,
    # implicit VR, little endian). An item inherits the encoding of its sequence.
    stack = [(False, implicit, little)]
    depth = 1

    while stack:
        inside_item, implicit, little = stack[-1]
        header_start = offset
        header = read(8)
        if len(header) < 8:
            raise _ends_inside_sequence(tag, position, offset + len(header))
        offset += 8
        if pieces is not None:
            pieces.append(header)

        group, number, length = _TAG_AND_LENGTH[little].unpack(header)
        element_tag = (group << 16) | number

        if element_tag == _SEQUENCE_DELIMITER:
            if inside_item:
                stack.pop()  # an item without its Item Delimitation Item
            stack.pop()
            depth -= 1
            continue

        if not inside_item:
            # Anything else where an item starts is read as an item, as pydicom does.
            if length == _UNDEFINED_LENGTH:
                stack.append((True, implicit, little))
                continue
        elif element_tag == _ITEM_DELIMITER:
            stack.pop()
            continue
        elif group != 0xFFFE:
            # A data element inside an undefined-length item. Tags of group
            # FFFE have no VR in any encoding, so they keep the header above.
            vr = None
            if not implicit:
                vr, length, extra = _explicit_length(stream, header, little, tag, position)
                offset += len(extra)
                if pieces is not None and extra:
                    pieces.append(extra)
            if length == _UNDEFINED_LENGTH:
                element_implicit = implicit or vr is None
                layout = _undefined_length_layout(stream, element_tag, vr, element_implicit,
                                                  little)
                if layout is None:
                    offset = _copy_undefined_length_value(stream, little, pieces)
                    continue
                depth += 1
                if depth > MAX_SEQUENCE_DEPTH:
                    raise UnreadableFile(
                        f"sequence {_tag_text(tag)} at byte {position} nests sequences more than "
                        f"{MAX_SEQUENCE_DEPTH} levels deep, the maximum that the reader follows "
                        f"(the next level is element {_tag_text(element_tag)} at byte "
                        f"{header_start})"
                    )
                stack.append((False, *layout))
                continue

        if length == _UNDEFINED_LENGTH:
            # A group FFFE tag of undefined length inside an item, which pydicom
            # reads as a value up to a Sequence Delimitation Item.
            offset = _copy_undefined_length_value(stream, little, pieces)
            continue

        end = offset + length
        if size is not None and end > size:
            raise _ends_inside_sequence(tag, position, size)
        if pieces is None:
            stream.seek(length, io.SEEK_CUR)
        else:
            value = _read_value(read, length)
            if len(value) < length:
                raise _ends_inside_sequence(tag, position, offset + len(value))
            pieces.append(value)
        offset = end

    if pieces is not None:
        pieces.pop()  # the sequence's own Sequence Delimitation Item


def _explicit_length(stream: BinaryIO, header: bytes, little: bool, tag: int,
                     position: int) -> tuple[str | None, int, bytes]:
    """Return (VR, length, extra length bytes read) of an explicit VR element header inside a sequence."""
    _group, _number, vr_bytes, short_length = _EXPLICIT_HEADER[little].unpack(header)
    if vr_bytes in _KNOWN_VR_BYTES:
        vr = vr_bytes.decode("ascii")
        if vr not in LONG_LENGTH_VRS:
            return vr, short_length, b""
        extra = stream.read(4)
        if len(extra) < 4:
            raise _ends_inside_sequence(tag, position, stream.tell())
        return vr, _LONG_LENGTH[little].unpack(extra)[0], extra
    if b"AA" <= vr_bytes <= b"ZZ":
        # An unknown VR; pydicom reads it with a 2-byte length, and so does this walk.
        return vr_bytes.decode("ascii"), short_length, b""
    # Some writers switch to implicit VR for single elements, as at the top level.
    return None, _TAG_AND_LENGTH[little].unpack(header)[2], b""


def _ends_inside_sequence(tag: int, position: int, end: int) -> UnreadableFile:
    return UnreadableFile(
        f"the file ends at byte {end}, inside sequence {_tag_text(tag)} that starts at byte "
        f"{position}"
    )


def _copy_undefined_length_value(stream: BinaryIO, little: bool, pieces: list | None) -> int:
    """Read a value up to its Sequence Delimitation Item and return the offset after it.

    When ``pieces`` collects the raw bytes, the value goes in followed by the
    delimiter that the read consumed.
    """
    value = read_undefined_length_value(stream, little, SequenceDelimiterTag)
    if pieces is not None:
        pieces.append(value)
        pieces.append(_TAG_AND_LENGTH[little].pack(0xFFFE, 0xE0DD, 0))
    return stream.tell()
