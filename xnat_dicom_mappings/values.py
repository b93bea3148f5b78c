"""Element values as the file wrote them: decoding raw elements and reading pydicom's typed ones."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from pydicom import datadict
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag

from .charset import (
    SINGLE_VALUE_TEXT_VRS,
    SPECIFIC_CHARACTER_SET,
    CharacterSet,
    _decode_text,
    resolve_character_set,
)
from .encoding import NUMERIC_VRS, TEXT_VRS, ElementError, _dictionary_vr, _tag_text

@dataclass(frozen=True)
class ElementValue:
    """The values of one element as the file wrote them.

    ``values`` are decoded strings for the text VRs, numbers for the binary
    numeric VRs and one hex string for the other binary VRs. ``frames`` are
    the 1-based frame numbers when the value comes from the per-frame
    functional groups. ``repairs`` describe fallbacks applied while decoding.
    """

    vr: str
    values: tuple
    location: str = "top level"
    frames: tuple[int, ...] = ()
    repairs: tuple[str, ...] = ()


def _decode(element, charset: CharacterSet, location: str, container) -> ElementValue:
    """Decode a raw element ourselves, or take the text of one that pydicom converted."""
    if isinstance(element, RawDataElement):
        return _decode_raw(element, charset, location, _creator_of(container, int(element.tag)))
    return _decode_typed(element, location)


def _creator_of(container, tag: int) -> str | None:
    """Return the private creator that reserves the block of ``tag`` in ``container``."""
    group, element = tag >> 16, tag & 0xFFFF
    if group % 2 == 0 or element < 0x1000:
        return None
    creator = _get(container, (group << 16) | (element >> 8))
    if creator is None or not isinstance(creator.value, (bytes, str)):
        return None
    value = creator.value
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return value.strip(" \x00")


def _get(container, tag: int):
    """Return the element ``tag`` of a top-level dict or a pydicom Dataset, without conversion."""
    if isinstance(container, dict):
        return container.get(tag)
    # pydicom 3.0 returns None for an absent tag, so no "tag in container" test is needed.
    return container.get_item(BaseTag(tag))


def _tags_of(container) -> list[int]:
    if isinstance(container, dict):
        return sorted(container)
    return [int(tag) for tag in container.keys()]


def _looks_like_sequence(element, tag: int) -> bool:
    if element is None:
        return False
    if isinstance(element.value, Sequence):
        return True
    if element.VR == "SQ":
        return True
    return element.VR is None and _dictionary_vr(tag) == "SQ"


def _character_set_of(container, inherited: CharacterSet) -> CharacterSet:
    """Return the character set of a dataset or item, or ``inherited`` when it declares none."""
    element = _get(container, SPECIFIC_CHARACTER_SET)
    if element is None:
        return inherited
    value = element.value
    if isinstance(value, (list, MultiValue)):
        value = "\\".join(str(item) for item in value)
    return resolve_character_set(value)


def _element_vr(raw: RawDataElement, creator: str | None) -> str:
    """Return the VR of a raw element, from the file or, for implicit VR, the dictionaries."""
    vr = raw.VR
    if vr and vr != "UN":
        return vr

    tag = int(raw.tag)
    group, element = tag >> 16, tag & 0xFFFF
    if group % 2 == 1:
        if 0x0010 <= element <= 0x00FF:
            return "LO"
        if creator:
            try:
                private_vr = datadict.private_dictionary_VR(tag, creator)
                return private_vr.split(" or ")[0]
            except KeyError:
                pass
        return "UN"
    return _dictionary_vr(tag) or "UN"


def _decode_raw(raw: RawDataElement, charset: CharacterSet, location: str,
                creator: str | None) -> ElementValue:
    vr = _element_vr(raw, creator)
    value = raw.value if raw.value is not None else b""
    if not isinstance(value, bytes):
        raise ElementError(f"element {_tag_text(int(raw.tag))} has no readable value")

    if vr in TEXT_VRS:
        values, repairs = _decode_text(value, vr, charset)
        return ElementValue(vr, tuple(values) if value else (), location, (), tuple(repairs))

    if vr in NUMERIC_VRS:
        return _decode_numbers(raw, vr, value, location)

    if vr == "AT":
        endian = "<" if raw.is_little_endian else ">"
        count = len(value) // 4
        pairs = struct.unpack(f"{endian}{count * 2}H", value[: count * 4])
        tags = [f"({pairs[i]:04X},{pairs[i + 1]:04X})" for i in range(0, len(pairs), 2)]
        return ElementValue(vr, tuple(tags), location)

    if vr == "UN" and _is_text(value):
        values, repairs = _decode_text(value, "UN", charset)
        return ElementValue(vr, tuple(values) if value else (), location, (), tuple(repairs))

    return ElementValue(vr, (value.hex(),) if value else (), location)


def _decode_numbers(raw: RawDataElement, vr: str, value: bytes, location: str) -> ElementValue:
    letter, size = NUMERIC_VRS[vr]
    endian = "<" if raw.is_little_endian else ">"
    count = len(value) // size
    numbers = struct.unpack(f"{endian}{count}{letter}", value[: count * size])
    repairs = ()
    if len(value) % size:
        repairs = (f"value length {len(value)} is not a multiple of {size} for VR {vr}; "
                   f"the trailing {len(value) % size} bytes were ignored",)
    return ElementValue(vr, tuple(numbers), location, (), repairs)


def _is_text(value: bytes) -> bool:
    """True when an element of unknown VR contains printable text, possibly NUL padded."""
    body = value.rstrip(b"\x00 ")
    if not body:
        return True
    return all(byte >= 0x20 or byte in (0x09, 0x0A, 0x0D, 0x1B) for byte in body) and (
        b"\x7f" not in body
    )


def _decode_typed(element: DataElement, location: str) -> ElementValue:
    """Return the text of an element that pydicom has already converted."""
    vr = element.VR or "UN"
    value = element.value
    if value is None or value == "" or value == b"":
        return ElementValue(vr, (), location)

    items = list(value) if isinstance(value, (MultiValue, list, tuple)) else [value]
    if vr in NUMERIC_VRS:
        return ElementValue(vr, tuple(items), location)
    if isinstance(value, bytes):
        return ElementValue(vr, (value.hex(),), location)

    texts = []
    for item in items:
        original = getattr(item, "original_string", None)
        if isinstance(original, bytes):
            original = None  # PersonName keeps encoded bytes; its str() is the decoded text
        texts.append(original if isinstance(original, str) else str(item))
    if vr not in SINGLE_VALUE_TEXT_VRS and len(texts) == 1 and vr in TEXT_VRS:
        texts = texts[0].split("\\")
    return ElementValue(vr, tuple(texts), location)
