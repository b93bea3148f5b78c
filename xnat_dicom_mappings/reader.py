"""Header reading with early stop, character sets, private creators and functional groups.

:func:`read_header` reads the elements that a set of tag paths needs and
nothing else: pixel data is never read, elements outside the request are
skipped by seeking past them, and reading stops at the first element after
the last requested top-level tag. A file that ends inside an element
before that stop, or that nests sequences deeper than
:data:`MAX_SEQUENCE_DEPTH`, is unreadable. Values come out as the file
wrote them: text decoded with the file's SpecificCharacterSet and split on
``\\``, and the numbers of the binary VRs. pydicom's typing (DSfloat, IS, PersonName,
dates) is not applied.
"""

from __future__ import annotations

import gzip
import io
import os
import stat
import struct
import warnings
import zlib
from dataclasses import dataclass, field, replace
from typing import Any, BinaryIO, Iterable

from pydicom import charset as dicom_charset
from pydicom import datadict
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.filereader import read_sequence
from pydicom.fileutil import read_undefined_length_value
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag, SequenceDelimiterTag

from .errors import DicomMappingsError
from .tags import TagPath, TagStep

#: (0008,0005) Specific Character Set.
SPECIFIC_CHARACTER_SET = 0x00080005

#: (5200,9229) and (5200,9230): the functional groups of enhanced multi-frame objects.
SHARED_FUNCTIONAL_GROUPS = 0x52009229
PER_FRAME_FUNCTIONAL_GROUPS = 0x52009230

#: Tags that start bulk pixel data; reading always stops there.
PIXEL_DATA_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})

#: Text VRs whose bytes follow SpecificCharacterSet; the other text VRs use
#: the default repertoire.
CHARSET_VRS = frozenset({"SH", "LO", "ST", "LT", "UC", "UT", "PN"})

#: Text VRs of one value, where a backslash is part of the text.
SINGLE_VALUE_TEXT_VRS = frozenset({"ST", "LT", "UT", "UR"})

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

#: Deepest nesting of undefined-length sequences that the reader follows; a
#: file that nests deeper is unreadable. pydicom 3.0 parses nested sequences
#: recursively, at about five stack frames a level (measured: 150 levels
#: parse, 200 raise RecursionError under Python's default limit of 1000).
#: At 64 levels, its later parse of a requested sequence stays well inside that.
MAX_SEQUENCE_DEPTH = 64

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

_IMPLICIT_LITTLE = "1.2.840.10008.1.2"
_EXPLICIT_BIG = "1.2.840.10008.1.2.2"
_DEFLATED = "1.2.840.10008.1.2.1.99"


class UnreadableFile(DicomMappingsError):
    """A file that is not DICOM or whose header cannot be parsed.

    ``reason`` is the message without the file name.
    """

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class ElementError(DicomMappingsError):
    """An element that was read but whose value or items cannot be parsed."""


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


@dataclass(frozen=True)
class CharacterSet:
    """The decoding of a SpecificCharacterSet value.

    ``encodings`` are Python codec names, empty when the value names no
    known character set; ``problem`` describes what was wrong with the value.
    """

    declared: str | None
    encodings: tuple[str, ...]
    terms: tuple[str, ...] = ()
    problem: str | None = None

    @property
    def uses_code_extensions(self) -> bool:
        return len(self.terms) > 1 or any(term.startswith("ISO 2022") for term in self.terms)


DEFAULT_CHARACTER_SET = CharacterSet(declared=None, encodings=("ascii",))


@dataclass
class ReadPlan:
    """Which top-level elements a read needs and where it may stop.

    ``tags`` are public top-level tags; ``private_offsets`` maps each odd
    group with a creator-anchored first step to the element offsets needed
    in that group; ``single_tags`` are one-step public paths, which may be
    looked up in the functional groups when absent at the top level.
    """

    tags: set[int] = field(default_factory=set)
    private_offsets: dict[int, set[int]] = field(default_factory=dict)
    single_tags: set[int] = field(default_factory=set)
    stop_after: int = 0

    @classmethod
    def for_paths(cls, paths: Iterable[TagPath], extra_tags: Iterable[int] = ()) -> "ReadPlan":
        """Build the plan for ``paths`` plus the plain tags ``extra_tags``."""
        plan = cls()
        plan.tags.add(SPECIFIC_CHARACTER_SET)
        plan.tags.update(int(tag) for tag in extra_tags)

        for path in paths:
            first = path.steps[0]
            if first.tag is None:
                plan.private_offsets.setdefault(first.private_group, set()).add(first.private_offset)
                continue
            plan.tags.add(first.tag)
            if _is_single_public(path):
                plan.single_tags.add(first.tag)

        stops = list(plan.tags) + [(group << 16) | 0xFFFF for group in plan.private_offsets]
        plan.stop_after = max(stops)
        if plan.single_tags:
            plan.tags.update({SHARED_FUNCTIONAL_GROUPS, PER_FRAME_FUNCTIONAL_GROUPS})
        return plan

    def wants(self, tag: int) -> bool:
        """Return True when the element ``tag`` must be read."""
        if tag in self.tags:
            return True
        offsets = self.private_offsets.get(tag >> 16)
        if offsets is None:
            return False
        element = tag & 0xFFFF
        return 0x0010 <= element <= 0x00FF or (element >= 0x1000 and (element & 0xFF) in offsets)

    def covers(self, path: TagPath) -> bool:
        """Return True when a header read with this plan contains the elements of ``path``."""
        first = path.steps[0]
        if first.tag is None:
            return first.private_offset in self.private_offsets.get(first.private_group, ())
        return first.tag in self.tags


def _is_single_public(path: TagPath) -> bool:
    """True for a path of one public step, with or without a value index."""
    step = path.steps[0]
    return len(path.steps) == 1 and step.tag is not None and (step.tag >> 16) % 2 == 0


class Header:
    """The elements read from one file or dataset, with lookups by tag path.

    ``name`` labels the file in problems; ``source`` is what was given to
    :func:`read_header`.
    """

    def __init__(self, root: Any, *, name: str, source: Any = None, plan: ReadPlan | None = None,
                 is_implicit_vr: bool = False, is_little_endian: bool = True):
        self.name = name
        self.source = source
        self._root = root
        self._plan = plan
        self._implicit = is_implicit_vr
        self._little = is_little_endian
        self.character_set = _character_set_of(root, DEFAULT_CHARACTER_SET)
        # Items parsed from raw sequence bytes, by id() of the element, which
        # is kept alongside so that the id stays unique.
        self._parsed_sequences: dict[int, tuple[RawDataElement, list]] = {}

    def covers(self, path: TagPath) -> bool:
        """Return True when this header was read with every element ``path`` needs."""
        return self._plan is None or self._plan.covers(path)

    def lookup(self, path: TagPath) -> list[ElementValue]:
        """Return the values of ``path``; an empty list when the file does not have it.

        A one-step public path absent at the top level is looked up in the
        shared functional groups, then in the per-frame functional groups.
        From the per-frame groups, frames with the same values share one
        entry, so several entries mean the frames differ. Raises
        :class:`ElementError` for an element whose items cannot be parsed,
        and ValueError for a path that the read did not request.
        """
        if not self.covers(path):
            raise ValueError(
                f"the header of {self.name} was read without the elements of {path.canonical}; "
                "pass every tag path to read_header"
            )

        found = self._walk(self._root, path.steps, self.character_set)
        if found is not None:
            element, container, charset = found
            location = "top level" if len(path.steps) == 1 else "sequence item"
            return [_decode(element, charset, location, container)]

        if _is_single_public(path):
            return self._functional_group_lookup(path.steps[0])
        return []

    def text(self, tag: int) -> str | None:
        """Return a top-level element as one string without padding, or None when absent."""
        element = _get(self._root, tag)
        if element is None:
            return None
        try:
            value = _decode(element, self.character_set, "top level", self._root)
        except ElementError:
            return None
        return "\\".join(str(item) for item in value.values).strip(" \x00") or None

    # Walking paths

    def _walk(self, container, steps, charset):
        """Follow ``steps`` from ``container``; return (element, its container, charset) or None."""
        for position, step in enumerate(steps):
            tag = self._resolve(container, step, charset)
            if tag is None:
                return None
            element = _get(container, tag)
            if element is None:
                return None
            if position == len(steps) - 1:
                return element, container, charset

            items = self._sequence(element, tag)
            if step.item is None or step.item >= len(items):
                return None
            container = items[step.item]
            charset = _character_set_of(container, charset)
        return None

    def _resolve(self, container, step: TagStep, charset) -> int | None:
        """Return the tag of ``step`` in ``container``, finding a private creator's block."""
        if step.tag is not None:
            return step.tag

        group = step.private_group
        for block in range(0x10, 0x100):
            creator = _get(container, (group << 16) | block)
            if creator is None:
                continue
            value = _decode(creator, charset, "", container)
            text = "\\".join(str(item) for item in value.values).strip(" \x00")
            if text == step.private_creator:
                return step.private_tag(block)
        return None

    def _sequence(self, element, tag: int) -> list:
        """Return the items of a sequence element, parsing raw bytes once when needed."""
        value = element.value
        if isinstance(value, Sequence) or isinstance(value, list):
            return list(value)
        if isinstance(element, RawDataElement) and isinstance(value, bytes) and value:
            cached = self._parsed_sequences.get(id(element))
            if cached is not None and cached[0] is element:
                return cached[1]
            items = _parse_items(element, tag)
            self._parsed_sequences[id(element)] = (element, items)
            return items
        if value is None or value == b"":
            return []
        raise ElementError(f"element {_tag_text(tag)} is not a sequence")

    def _functional_group_lookup(self, step: TagStep) -> list[ElementValue]:
        shared = _get(self._root, SHARED_FUNCTIONAL_GROUPS)
        if shared is not None:
            items = self._sequence(shared, SHARED_FUNCTIONAL_GROUPS)
            if items:
                found = self._find_in_group(items[0], step)
                if found is not None:
                    return [replace(found, location="shared functional groups")]

        per_frame = _get(self._root, PER_FRAME_FUNCTIONAL_GROUPS)
        if per_frame is None:
            return []

        by_values: dict[tuple, list[int]] = {}
        first_seen: dict[tuple, ElementValue] = {}
        for frame, item in enumerate(self._sequence(per_frame, PER_FRAME_FUNCTIONAL_GROUPS), 1):
            found = self._find_in_group(item, step)
            if found is None:
                continue
            key = (found.vr, found.values)
            by_values.setdefault(key, []).append(frame)
            first_seen.setdefault(key, found)

        results = []
        for key, frames in by_values.items():
            value = first_seen[key]
            results.append(replace(value, location="per-frame functional groups",
                                   frames=tuple(frames)))
        return results

    def _find_in_group(self, group_item, step: TagStep) -> ElementValue | None:
        """Search one functional group item: its public macro sequences, then the item itself."""
        charset = _character_set_of(group_item, self.character_set)
        for tag in _tags_of(group_item):
            if (tag >> 16) % 2 == 1 or tag == step.tag:
                continue
            element = _get(group_item, tag)
            if not _looks_like_sequence(element, tag):
                continue
            for macro in self._sequence(element, tag)[:1]:
                inner = _get(macro, step.tag)
                if inner is not None:
                    return _decode(inner, _character_set_of(macro, charset), "", macro)

        element = _get(group_item, step.tag)
        if element is not None:
            return _decode(element, charset, "", group_item)
        return None


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
    if tag in container:
        return container.get_item(BaseTag(tag))
    return None


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


def _tag_text(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


# Character sets

_CHARSET_ALIASES = {
    "ISO_IR100": "ISO_IR 100", "ISOIR100": "ISO_IR 100", "LATIN1": "ISO_IR 100",
    "ISO88591": "ISO_IR 100", "ISO_IR192": "ISO_IR 192", "ISOIR192": "ISO_IR 192",
    "UTF8": "ISO_IR 192", "ISO_IR6": "ISO_IR 6", "ISOIR6": "ISO_IR 6", "ASCII": "ISO_IR 6",
}


def _normalise_term(term: str) -> str | None:
    """Return the standard spelling of a character set term, or None when unknown."""
    if term in dicom_charset.python_encoding:
        return term
    squeezed = "".join(character for character in term.upper() if character.isalnum())
    for known in dicom_charset.python_encoding:
        if squeezed and squeezed == "".join(c for c in known.upper() if c.isalnum()):
            return known
    return _CHARSET_ALIASES.get(squeezed)


def resolve_character_set(raw: bytes | str | None) -> CharacterSet:
    """Read a SpecificCharacterSet value; unknown or broken values give no encodings.

    Surrounding spaces and trailing NULs are padding. A leading NUL or other control
    byte inside the value, and a misspelled term that has one obvious
    standard spelling, are mended and described in ``problem``.
    """
    if raw is None:
        return DEFAULT_CHARACTER_SET
    text = raw.decode("latin-1") if isinstance(raw, bytes) else str(raw)
    if not text.strip(" \x00"):
        return DEFAULT_CHARACTER_SET

    problems = []
    cleaned = "".join(character for character in text if character >= " ")
    if cleaned.strip(" ") != text.rstrip(" \x00").strip(" "):
        problems.append(f"control characters removed from SpecificCharacterSet {text!r}")

    terms = []
    encodings = []
    for position, term in enumerate(cleaned.split("\\")):
        term = term.strip(" ")
        if not term and position == 0:
            terms.append("")
            encodings.append(dicom_charset.python_encoding[""])
            continue
        standard = _normalise_term(term)
        if standard is None:
            problem = f"SpecificCharacterSet {text!r} names no known character set ({term!r})"
            return CharacterSet(text, (), tuple(terms), problem)
        if standard != term:
            problems.append(f"SpecificCharacterSet term {term!r} read as {standard!r}")
        terms.append(standard)
        encodings.append(dicom_charset.python_encoding[standard])

    return CharacterSet(text, tuple(encodings), tuple(terms), "; ".join(problems) or None)


def _character_set_of(container, inherited: CharacterSet) -> CharacterSet:
    """Return the character set of a dataset or item, or ``inherited`` when it declares none."""
    element = _get(container, SPECIFIC_CHARACTER_SET)
    if element is None:
        return inherited
    value = element.value
    if isinstance(value, (list, MultiValue)):
        value = "\\".join(str(item) for item in value)
    return resolve_character_set(value)


def _decode_text(raw: bytes, vr: str, charset: CharacterSet) -> tuple[list[str], list[str]]:
    """Decode and split the bytes of a text element; return (values, repairs)."""
    single = vr in SINGLE_VALUE_TEXT_VRS
    if vr not in CHARSET_VRS and vr != "UN":
        text = raw.decode("latin-1")
        return _split_values(text, single), []

    if raw.isascii() and b"\x1b" not in raw:
        # Plain ASCII reads the same in every character set, so a broken one did not matter.
        text = raw.decode("ascii")
        return _split_values(text, single), []

    if charset.encodings and charset.uses_code_extensions:
        return _decode_code_extensions(raw, vr, charset, single)

    if charset.encodings:
        try:
            text = raw.decode(charset.encodings[0])
            repairs = [charset.problem] if charset.problem else []
            return _split_values(text, single), repairs
        except (UnicodeDecodeError, LookupError):
            reason = _invalid_bytes_reason(charset)
    else:
        reason = charset.problem or f"SpecificCharacterSet {charset.declared!r} is unknown"

    text, used = _fallback_decode(raw)
    repair = f"character set fallback: {reason}; decoded as {used}"
    return _split_values(text, single), [repair]


def _invalid_bytes_reason(charset: CharacterSet) -> str:
    """Describe why bytes failed to decode in ``charset``, which may name no term at all."""
    if charset.declared is None:
        return "no SpecificCharacterSet is given but the value has non-ASCII bytes"
    term = charset.terms[0] if charset.terms else ""
    return f"the bytes are not valid {term or 'ISO_IR 6'}"


def _split_values(text: str, single: bool) -> list[str]:
    """Split text on ``\\``, but not inside garbage that follows a NUL.

    Bytes after a NUL are not part of the value; they stay attached to the
    value they follow, so that the converter cuts them off as one repair
    instead of reading a backslash in them as the start of another value.
    """
    if single:
        return [text]

    head, nul, tail = text.partition("\x00")
    values = head.split("\\")
    if nul:
        values[-1] += nul + tail
    return values


def _fallback_decode(raw: bytes) -> tuple[str, str]:
    try:
        return raw.decode("utf-8"), "UTF-8"
    except UnicodeDecodeError:
        return raw.decode("latin-1"), "ISO 8859-1 (Latin-1)"


def _decode_code_extensions(raw: bytes, vr: str, charset: CharacterSet, single: bool):
    """Decode ISO 2022 text with escape sequences through pydicom, capturing its fallbacks."""
    pieces = [raw] if single else raw.split(b"\\")
    delimiters = {0x5E, 0x3D} if vr == "PN" else dicom_charset.TEXT_VR_DELIMS
    values = []
    repairs = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for piece in pieces:
            values.append(dicom_charset.decode_bytes(piece, list(charset.encodings), delimiters))
    for warning in caught:
        repairs.append(f"character set fallback: {warning.message}")
    if charset.problem:
        repairs.append(charset.problem)
    return values, repairs


# Values


def _dictionary_vr(tag: int) -> str | None:
    try:
        vr = datadict.dictionary_VR(tag)
    except KeyError:
        return None
    return vr.split(" or ")[0] if vr else None


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


# Reading files


def read_header(source, paths: Iterable[TagPath] = (), *, extra_tags: Iterable[int] = (),
                name: str | None = None) -> Header:
    """Read the elements that ``paths`` and ``extra_tags`` need from one file.

    ``source`` is a path, an open binary file (read from its current
    position) or a pydicom Dataset, which is used as it is without reading
    anything again. Gzip-compressed files are opened transparently. Raises
    :class:`UnreadableFile` for a file that is missing, not DICOM, or whose
    header cannot be parsed, and TypeError for a source of another type.
    """
    if isinstance(source, Dataset):
        label = name or str(getattr(source, "filename", None) or "<dataset>")
        return Header(source, name=label, source=source)

    paths = list(paths)
    plan = ReadPlan.for_paths(paths, extra_tags)

    if isinstance(source, (str, os.PathLike)):
        label = name or os.fspath(source)
        try:
            with open(source, "rb") as stream:
                return _read_stream(stream, plan, label, source)
        except OSError as exc:
            raise UnreadableFile(f"cannot open the file: {exc.strerror or exc}") from exc

    if hasattr(source, "read"):
        label = name or str(getattr(source, "name", None) or "<file object>")
        return _read_stream(source, plan, label, source)

    raise TypeError(
        f"a DICOM source must be a path, a binary file or a pydicom Dataset, "
        f"not {type(source).__name__}"
    )


def _read_stream(stream: BinaryIO, plan: ReadPlan, label: str, source) -> Header:
    try:
        head = stream.read(2)
    except OSError as exc:
        raise UnreadableFile(f"cannot read the file: {exc}") from exc
    if not isinstance(head, bytes):
        raise TypeError(f"{label} is open in text mode; open DICOM files in binary mode ('rb')")

    if not stream.seekable():
        stream = io.BytesIO(head + stream.read())
    else:
        stream.seek(-len(head), io.SEEK_CUR)

    if head == b"\x1f\x8b":
        stream = gzip.GzipFile(fileobj=stream, mode="rb")

    try:
        root, implicit, little = _parse(stream, plan)
    except UnreadableFile:
        raise
    except (EOFError, OSError, struct.error, ValueError, zlib.error, NotImplementedError,
            KeyError) as exc:
        raise UnreadableFile(f"the header cannot be parsed: {exc}") from exc
    return Header(root, name=label, source=source, plan=plan, is_implicit_vr=implicit,
                  is_little_endian=little)


def _parse(stream: BinaryIO, plan: ReadPlan) -> tuple[dict, bool, bool]:
    """Parse the file meta and the requested top-level elements of a dataset."""
    start = stream.tell()
    preamble = stream.read(132)
    has_preamble = len(preamble) == 132 and preamble[128:132] == b"DICM"
    if not has_preamble:
        stream.seek(start)

    transfer_syntax = None
    first = stream.read(8)
    stream.seek(-len(first), io.SEEK_CUR)
    if len(first) < 8:
        raise UnreadableFile("not a DICOM file: too short to hold a data element")

    size = _stream_size(stream)
    has_meta = struct.unpack("<H", first[:2])[0] == 0x0002
    if has_meta:
        meta = _read_elements(stream, False, True, lambda tag: True, lambda tag: tag >> 16 != 2,
                              check_first=not has_preamble, size=size)
        syntax = meta.get(0x00020010)
        if syntax is not None and isinstance(syntax.value, bytes):
            transfer_syntax = syntax.value.decode("latin-1").strip(" \x00")
    elif not has_preamble:
        _check_plausible_start(first)

    implicit, little = _encoding_for(transfer_syntax, stream)
    if transfer_syntax == _DEFLATED:
        stream = io.BytesIO(zlib.decompress(stream.read(), -zlib.MAX_WBITS))
        size = _stream_size(stream)

    state = {"stop": plan.stop_after, "extended": False}

    def stop(tag: int) -> bool:
        if tag in PIXEL_DATA_TAGS and tag > state["stop"]:
            return True
        if tag <= state["stop"]:
            return False
        missing = plan.single_tags - found.keys()
        if missing and not state["extended"]:
            state["extended"] = True
            state["stop"] = max(state["stop"], PER_FRAME_FUNCTIONAL_GROUPS)
            return tag > state["stop"]
        return True

    # Without a transfer syntax, only a preamble followed by file meta vouches
    # for the bytes. Otherwise, including a 'DICM' prefix with no file meta,
    # the dataset must start and continue like one.
    found: dict[int, Any] = {}
    check_dataset = transfer_syntax is None and not (has_preamble and has_meta)
    elements = _read_elements(stream, implicit, little, plan.wants, stop, into=found,
                              check_first=check_dataset, size=size)
    return elements, implicit, little


def _stream_size(stream: BinaryIO) -> int | None:
    """Return the size in bytes of an in-memory or regular file, or None for other streams.

    Other streams are not asked because seeking to the end of a gzip file or
    a zip member decompresses all of it.
    """
    try:
        if isinstance(stream, io.BytesIO):
            with stream.getbuffer() as view:
                return view.nbytes
        raw = getattr(stream, "raw", stream)
        if isinstance(raw, io.FileIO):
            status = os.fstat(raw.fileno())
            if stat.S_ISREG(status.st_mode):
                return status.st_size
    except (OSError, ValueError):  # a closed or detached file
        return None
    return None


def _check_plausible_start(first: bytes) -> None:
    """Reject bytes that do not start like a DICOM dataset (no preamble, no file meta)."""
    group_le = struct.unpack("<H", first[:2])[0]
    group_be = struct.unpack(">H", first[:2])[0]
    if group_le in _PLAUSIBLE_FIRST_GROUPS or group_be in _PLAUSIBLE_FIRST_GROUPS:
        return
    raise UnreadableFile(
        "not a DICOM file: no 'DICM' prefix after a 128-byte preamble, and the first bytes "
        f"({first[:8].hex()}) are not the start of a DICOM data element"
    )


def _encoding_for(transfer_syntax: str | None, stream: BinaryIO) -> tuple[bool, bool]:
    """Return (implicit VR, little endian) from the transfer syntax or, without one, the bytes."""
    peek = stream.read(6)
    stream.seek(-len(peek), io.SEEK_CUR)
    valid_vr = len(peek) == 6 and peek[4:6] in _KNOWN_VR_BYTES

    if transfer_syntax is None:
        if not valid_vr:
            return True, True
        group = struct.unpack("<H", peek[:2])[0]
        return False, group < 0x0400

    if transfer_syntax == _IMPLICIT_LITTLE:
        # Some writers declare implicit VR and write explicit VR; pydicom checks the same way.
        return (not valid_vr), True
    if transfer_syntax == _EXPLICIT_BIG:
        return False, False
    if transfer_syntax == _DEFLATED:
        return False, True
    return (not valid_vr) if len(peek) == 6 else False, True


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


def _read_undefined(stream: BinaryIO, tag: int, vr: str | None, implicit: bool, little: bool,
                    requested: bool, position: int, size: int | None):
    """Read or skip an undefined-length element whose header starts at byte ``position``.

    A sequence is walked to its delimiter. When ``requested``, it is returned
    as a RawDataElement of VR SQ whose value is the bytes of its items, and
    :meth:`Header.lookup` parses them when a path enters it. Any other value
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
                    value = read_undefined_length_value(stream, little, SequenceDelimiterTag)
                    offset = stream.tell()
                    if pieces is not None:
                        pieces.append(value)
                        pieces.append(_TAG_AND_LENGTH[little].pack(0xFFFE, 0xE0DD, 0))
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
            value = read_undefined_length_value(stream, little, SequenceDelimiterTag)
            offset = stream.tell()
            if pieces is not None:
                pieces.append(value)
                pieces.append(_TAG_AND_LENGTH[little].pack(0xFFFE, 0xE0DD, 0))
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
