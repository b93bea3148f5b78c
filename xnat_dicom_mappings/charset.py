"""Character sets: reading SpecificCharacterSet and decoding the bytes of text elements."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

from pydicom import charset as dicom_charset

#: (0008,0005) Specific Character Set.
SPECIFIC_CHARACTER_SET = 0x00080005

#: Text VRs whose bytes follow SpecificCharacterSet; the other text VRs use
#: the default repertoire.
CHARSET_VRS = frozenset({"SH", "LO", "ST", "LT", "UC", "UT", "PN"})

#: Text VRs of one value, where a backslash is part of the text.
SINGLE_VALUE_TEXT_VRS = frozenset({"ST", "LT", "UT", "UR"})


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
