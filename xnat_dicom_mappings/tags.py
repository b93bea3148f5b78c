"""The tag grammar: parse, check and canonicalise the ``dicomTag`` of a rule.

Accepted forms, each reading to one canonical form:

- plain public tags: ``0x00101030``, ``0X00101030``, ``00101030`` (exactly
  eight hex digits; a leading zero is never octal), ``(0010,1030)``,
  ``0010,1030`` and DICOM keywords such as ``PatientWeight``. Canonical:
  ``0x00101030``.
- private tags anchored on their private creator, in DCMTK's private
  dictionary notation: ``(0019,"SIEMENS MR HEADER",0C)`` (or ``xx0C``) is
  element 0C of the block that the creator reserves in odd group 0019,
  wherever that block sits in a file. Canonical: ``(0019,"SIEMENS MR HEADER",0C)``.
- paths into sequences: steps joined by ``.``, each step but the last with a
  0-based item index, such as
  ``SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing``.
  Canonical: ``0x52009229[0].0x00289110[0].0x00280030``.
- a 0-based value index on the last step: ``PixelSpacing[1]``, canonical
  ``0x00280030[1]``.

Limits: a path has at most :data:`MAX_DEPTH` steps, an item or value index is
at most :data:`MAX_INDEX`, and an expression is at most :data:`MAX_LENGTH`
characters long.

Literal private tags such as ``0x00191001`` are accepted as plain tags, as XNAT
reads them, but they name a fixed element number: the creator-anchored form is
the one that survives a vendor moving its block.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from pydicom import datadict

from .errors import TagSyntaxError

#: Maximum number of steps in a path. Functional groups need three steps
#: (functional group, macro sequence, attribute), so eight leaves room for deeper nesting.
MAX_DEPTH = 8

#: Maximum item index or value index, large enough to address the per-frame
#: functional group item of any frame in objects of up to a million frames.
MAX_INDEX = 999_999

#: Maximum length of a tag expression, in characters.
MAX_LENGTH = 1000

#: Maximum length of a private creator: the VR of a creator element is LO.
MAX_CREATOR_LENGTH = 64

#: Odd groups that DICOM PS3.5 section 7.1 does not allow for private data elements.
FORBIDDEN_PRIVATE_GROUPS = frozenset({0x0001, 0x0003, 0x0005, 0x0007, 0xFFFF})

#: Tags that hold bulk pixel data, which a header mapping never reads.
PIXEL_DATA_TAGS = {
    0x7FE00008: "Float Pixel Data",
    0x7FE00009: "Double Float Pixel Data",
    0x7FE00010: "Pixel Data",
}

ACCEPTED_FORMS = (
    'Accepted forms: 0x00101030, 00101030, (0010,1030), 0010,1030, a keyword such as '
    'PatientWeight, a private tag anchored on its creator such as '
    '(0019,"SIEMENS MR HEADER",0C), a path into sequences such as '
    "SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing, "
    "and a value index such as PixelSpacing[1]."
)

_HEX8 = re.compile(r"(?:0[xX])?([0-9A-Fa-f]{8})")
_GROUP_ELEMENT = re.compile(r"\(?\s*([0-9A-Fa-f]{4})\s*,\s*([0-9A-Fa-f]{4})\s*\)?")
_PRIVATE = re.compile(
    r'\(?\s*([0-9A-Fa-f]{4})\s*,\s*"([^"]*)"\s*,\s*(?:[xX]{2})?([0-9A-Fa-f]{2})\s*\)?'
)
_KEYWORD = re.compile(r"[A-Za-z][A-Za-z0-9]*")
_INDEX = re.compile(r"\[\s*([0-9]+)\s*\]\s*\Z")


@dataclass(frozen=True)
class TagStep:
    """One step of a tag path: a public tag or a creator-anchored private element."""

    tag: int | None
    private_group: int | None = None
    private_creator: str | None = None
    private_offset: int | None = None
    item: int | None = None

    @property
    def is_anchored(self) -> bool:
        """True for a private step given by its creator and offset."""
        return self.tag is None

    @property
    def group(self) -> int:
        """Group number of the step, for either kind of step."""
        if self.tag is None:
            return self.private_group
        return self.tag >> 16

    def private_tag(self, block: int) -> int:
        """Return the tag of an anchored step once its creator's block is known.

        ``block`` is the element number of the creator element, 0x10 to 0xFF:
        creator ``(0019,0011)`` reserves elements ``(0019,1100)`` to ``(0019,11FF)``.
        """
        if self.tag is not None:
            raise ValueError("private_tag() applies only to creator-anchored steps")
        if not 0x10 <= block <= 0xFF:
            raise ValueError(f"private block must be 0x10 to 0xFF, got 0x{block:X}")
        return (self.private_group << 16) | (block << 8) | self.private_offset

    @property
    def canonical(self) -> str:
        """The step in canonical form, with its item index when it has one."""
        if self.tag is None:
            text = f'({self.private_group:04X},"{self.private_creator}",{self.private_offset:02X})'
        else:
            text = f"0x{self.tag:08X}"
        if self.item is not None:
            text += f"[{self.item}]"
        return text


@dataclass(frozen=True)
class TagPath:
    """A parsed tag expression: the steps, the value index and the canonical form."""

    steps: tuple[TagStep, ...]
    value_index: int | None
    canonical: str

    @classmethod
    def from_steps(cls, steps, value_index: int | None = None) -> "TagPath":
        """Build a path from its steps, computing the canonical form (no checks)."""
        steps = tuple(steps)
        canonical = ".".join(step.canonical for step in steps)
        if value_index is not None:
            canonical += f"[{value_index}]"
        return cls(steps=steps, value_index=value_index, canonical=canonical)

    @property
    def is_plain(self) -> bool:
        """True for one step given by its tag number, without a value index."""
        return len(self.steps) == 1 and self.steps[0].tag is not None and self.value_index is None

    @property
    def first_group(self) -> int:
        """Group of the first step, which decides where a reader may stop."""
        return self.steps[0].group

    @property
    def last(self) -> TagStep:
        """The step whose values the path reads."""
        return self.steps[-1]

    def __str__(self) -> str:
        return self.canonical


def parse_tag(text: str) -> TagPath:
    """Parse a tag expression into a :class:`TagPath`.

    Raises :class:`TagSyntaxError` when the text is not an accepted form or
    names an element that a mapping cannot read (group length, command group,
    pixel data, item and delimiter tags, a sequence as the last step).
    """
    if not isinstance(text, str):
        raise TagSyntaxError(
            f"Invalid DICOM tag {text!r}: expected text, got {type(text).__name__}. "
            + ACCEPTED_FORMS,
            text=None,
        )
    stripped = text.strip()
    if not stripped:
        _fail(text, "the tag is empty")
    if len(stripped) > MAX_LENGTH:
        _fail(text, f"the expression is longer than {MAX_LENGTH} characters")

    pieces = _split_steps(text, stripped)
    if len(pieces) > MAX_DEPTH:
        _fail(text, f"a path has at most {MAX_DEPTH} steps, this one has {len(pieces)}")

    steps = []
    value_index = None
    for position, piece in enumerate(pieces):
        is_last = position == len(pieces) - 1
        body, index = _split_index(text, piece)
        where = _step_label(piece, position, len(pieces))
        step = _parse_step(text, body, where)

        if is_last:
            _check_last_step(text, step, where)
            value_index = index
        else:
            if index is None:
                _fail(
                    text,
                    f"{where} is followed by another step, so it needs a sequence item "
                    f"index such as [0]",
                )
            _check_sequence_step(text, step, where)
            step = TagStep(
                step.tag, step.private_group, step.private_creator, step.private_offset, index
            )
        steps.append(step)

    return TagPath.from_steps(steps, value_index)


def canonical_tag(text: str) -> str:
    """Parse a tag expression and return its canonical form.

    Raises :class:`TagSyntaxError` like :func:`parse_tag`.
    """
    return parse_tag(text).canonical


def tag_info(text: str) -> dict:
    """Describe the last step of a tag expression for display while the user types.

    Returns ``canonical``, ``keyword``, ``name``, ``vr`` and ``vm`` of the last
    step (``None`` where the dictionary does not know it), plus ``private_group``,
    ``private_creator`` and ``private_offset`` (set for anchored private steps),
    ``value_index`` and ``depth``. Names of anchored private steps come from
    pydicom's private dictionary when it has an entry for the creator. Raises
    :class:`TagSyntaxError` for text that does not parse.
    """
    path = parse_tag(text)
    step = path.last
    info = {
        "canonical": path.canonical,
        "keyword": None,
        "name": None,
        "vr": None,
        "vm": None,
        "private_group": step.private_group,
        "private_creator": step.private_creator,
        "private_offset": step.private_offset,
        "value_index": path.value_index,
        "depth": len(path.steps),
    }

    if step.tag is None:
        # The private dictionary masks the block, so any block number finds the entry.
        entry = _private_entry(step.private_tag(0x10), step.private_creator)
        if entry is not None:
            info["vr"], info["vm"], info["name"] = entry[0], entry[1], entry[2]
        return info

    if _is_private_group(step.tag >> 16):
        element = step.tag & 0xFFFF
        if 0x0010 <= element <= 0x00FF:
            info.update(name="Private Creator", vr="LO", vm="1")
        return info

    entry = _public_entry(step.tag)
    if entry is not None:
        info["vr"], info["vm"], info["name"], info["keyword"] = (
            entry[0],
            entry[1],
            entry[2],
            entry[4] or None,
        )
    return info


def _fail(text: str, reason: str):
    raise TagSyntaxError(f"Invalid DICOM tag {text!r}: {reason}. {ACCEPTED_FORMS}", text=text)


def _split_steps(text: str, stripped: str) -> list[str]:
    """Split a path at the dots that sit outside quotes, parentheses and brackets."""
    pieces = []
    current = []
    in_quotes = False
    depth = 0
    for character in stripped:
        if character == '"':
            in_quotes = not in_quotes
        elif not in_quotes and character in "([":
            depth += 1
        elif not in_quotes and character in ")]":
            depth -= 1
        if character == "." and not in_quotes and depth == 0:
            pieces.append("".join(current).strip())
            current = []
        else:
            current.append(character)
    pieces.append("".join(current).strip())

    if in_quotes:
        _fail(text, "a private creator's closing double quote is missing")
    for position, piece in enumerate(pieces):
        if not piece:
            _fail(text, f"step {position + 1} of the path is empty (two dots or a stray dot)")
    return pieces


def _split_index(text: str, piece: str) -> tuple[str, int | None]:
    """Split ``Name[3]`` into ``("Name", 3)``. A step has at most one index."""
    # Brackets inside a quoted private creator are part of the creator.
    tail_start = piece.rfind('"') + 1
    tail = piece[tail_start:]
    if "[" not in tail and "]" not in tail:
        return piece, None

    match = _INDEX.search(tail)
    if match is None:
        _fail(text, f"malformed index in {piece!r}; write a 0-based decimal index such as [0]")
    rest = tail[: match.start()]
    if rest.rstrip().endswith("]"):
        _fail(text, f"{piece!r} has more than one index; a step takes one index")
    if "[" in rest or "]" in rest:
        _fail(text, f"malformed index in {piece!r}; write a 0-based decimal index such as [0]")

    body = piece[: tail_start + match.start()].rstrip()
    if not body:
        _fail(text, f"{piece!r} has an index but no tag before it")
    digits = match.group(1)
    if len(digits) > len(str(MAX_INDEX)) or int(digits) > MAX_INDEX:
        _fail(text, f"index {digits} in {piece!r} is larger than the maximum {MAX_INDEX}")
    return body, int(digits)


def _step_label(piece: str, position: int, count: int) -> str:
    if count == 1:
        return repr(piece)
    return f"step {position + 1} ({piece!r})"


def _parse_step(text: str, body: str, where: str) -> TagStep:
    """Read one step without its index: private, hex, group-element or keyword form."""
    if '"' in body:
        return _parse_private(text, body, where)

    match = _HEX8.fullmatch(body)
    if match:
        return _public_step(text, int(match.group(1), 16), where)

    match = _GROUP_ELEMENT.fullmatch(body)
    if match and (body.startswith("(") == body.endswith(")")):
        tag = (int(match.group(1), 16) << 16) | int(match.group(2), 16)
        return _public_step(text, tag, where)

    if _KEYWORD.fullmatch(body):
        return _public_step(text, _tag_for_keyword(text, body, where), where)

    _fail(text, _describe_malformed(body, where))


def _describe_malformed(body: str, where: str) -> str:
    hex_part = body[2:] if body[:2].lower() == "0x" else body
    if re.fullmatch(r"[0-9A-Fa-f]+", hex_part):
        return f"{where} has {len(hex_part)} hex digits; a tag number has exactly 8"
    if re.fullmatch(r"\(?[^,]*,[^,]*\)?", body):
        return f"{where} is not two groups of 4 hex digits such as (0010,1030)"
    return f"{where} is neither a tag number nor a DICOM keyword"


def _parse_private(text: str, body: str, where: str) -> TagStep:
    match = _PRIVATE.fullmatch(body)
    if not match or body.startswith("(") != body.endswith(")"):
        _fail(
            text,
            f'{where} is not a private tag of the form (gggg,"CREATOR",ee) with an odd '
            f"group gggg and a 2-digit hex offset ee (or xxee)",
        )

    group = int(match.group(1), 16)
    if group % 2 == 0:
        _fail(text, f"{where} names group {group:04X}, but private groups are odd")
    if group in FORBIDDEN_PRIVATE_GROUPS:
        _fail(text, f"{where} names group {group:04X}, which DICOM does not allow for private data")

    creator = match.group(2).strip(" ")
    if not creator:
        _fail(text, f"{where} has an empty private creator")
    if len(creator) > MAX_CREATOR_LENGTH:
        _fail(
            text,
            f"{where} has a private creator of {len(creator)} characters; "
            f"the maximum is {MAX_CREATOR_LENGTH}",
        )
    if "\\" in creator:
        _fail(text, f"{where} has a backslash in its private creator, which DICOM does not allow")
    if any(ord(character) < 0x20 or 0x7F <= ord(character) <= 0x9F for character in creator):
        _fail(text, f"{where} has a control character in its private creator")

    return TagStep(
        tag=None,
        private_group=group,
        private_creator=creator,
        private_offset=int(match.group(3), 16),
    )


def _public_step(text: str, tag: int, where: str) -> TagStep:
    """Check a tag given by number or keyword and make a step of it."""
    group, element = tag >> 16, tag & 0xFFFF
    label = f"{where} is tag ({group:04X},{element:04X}) and"

    if group == 0x0000:
        _fail(text, f"{label} is in command group 0000, which is not part of a stored dataset")
    if group == 0xFFFE:
        _fail(text, f"{label} is an item or delimiter tag, which holds no value")
    if element == 0x0000:
        _fail(text, f"{label} is a group length tag, which holds no attribute value")
    if tag in PIXEL_DATA_TAGS:
        _fail(text, f"{label} is {PIXEL_DATA_TAGS[tag]}, which the header reader never reads")
    if group % 2 == 1:
        if group in FORBIDDEN_PRIVATE_GROUPS:
            _fail(text, f"{label} is in group {group:04X}, which DICOM does not allow")
        if element < 0x0010 or 0x0100 <= element < 0x1000:
            _fail(
                text,
                f"{label} is neither a private creator (gggg,0010-00FF) nor inside a "
                f"creator's block (gggg,1000-FFFF)",
            )
    return TagStep(tag=tag)


def _check_last_step(text: str, step: TagStep, where: str) -> None:
    if step.tag is not None and _public_vr(step.tag) == "SQ":
        _fail(
            text,
            f"{where} is a sequence (SQ); name an attribute inside it, such as "
            f"{step.canonical}[0].<tag>",
        )


def _check_sequence_step(text: str, step: TagStep, where: str) -> None:
    if step.tag is None or _is_private_group(step.tag >> 16):
        return
    vr = _public_vr(step.tag)
    # NOTE: a public tag that pydicom's dictionary does not know passes, so that
    # sequences added by newer editions of the standard stay usable.
    if vr is not None and vr != "SQ":
        _fail(text, f"{where} has VR {vr}, not SQ, so it has no items to step into")


def _is_private_group(group: int) -> bool:
    return group % 2 == 1


def _public_entry(tag: int):
    try:
        return datadict.get_entry(tag)
    except KeyError:
        return None


def _public_vr(tag: int) -> str | None:
    entry = _public_entry(tag)
    return entry[0] if entry else None


def _private_entry(tag: int, creator: str):
    try:
        return datadict.get_private_entry(tag, creator)
    except KeyError:
        return None


def _repeater_keywords() -> dict[str, int]:
    """Keywords of repeating groups (OverlayData...), mapped to their first group."""
    keywords = {}
    for mask, entry in datadict.RepeatersDictionary.items():
        keywords[entry[4]] = int(mask.replace("x", "0"), 16)
    return keywords


_REPEATER_KEYWORDS = _repeater_keywords()


def _tag_for_keyword(text: str, keyword: str, where: str) -> int:
    tag = datadict.tag_for_keyword(keyword)
    if tag is not None:
        return tag
    if keyword in _REPEATER_KEYWORDS:
        return _REPEATER_KEYWORDS[keyword]

    known = list(datadict.keyword_dict) + list(_REPEATER_KEYWORDS)
    suggestions = [name for name in known if name.lower() == keyword.lower()]
    for name in difflib.get_close_matches(keyword, known, n=3, cutoff=0.75):
        if name not in suggestions:
            suggestions.append(name)

    reason = f"{where} is not a DICOM keyword"
    if suggestions:
        reason += "; did you mean " + " or ".join(suggestions[:3]) + "?"
    _fail(text, reason)
