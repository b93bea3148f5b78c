"""Value converters: DICOM values as the file wrote them into a rule's field type.

The converters read the raw text (or the numbers of binary VRs) and never trust
pydicom's typing, because pydicom returns a DS that is not a number as a str
and an IS such as "14.5" as a float.

Padding is not a repair: trailing spaces and NULs are removed silently, and so
are leading spaces of numbers and free text. Other faults are mended only where
the meaning cannot change: a decimal comma, a NUL and garbage inside a value,
more than six fraction digits, spaces before a date or time. Each such repair
is listed in ``Converted.repairs``.
"""

from __future__ import annotations

import datetime as dt
import math
import numbers
import re
import struct
from dataclasses import dataclass, field
from decimal import Decimal

from .errors import ConversionError

FIELD_TYPES = ("string", "integer", "float", "boolean", "date", "time", "datetime")

#: Binary VRs whose values are integers.
INTEGER_VRS = frozenset({"US", "SS", "UL", "SL", "SV", "UV"})

#: Binary VRs whose values are floating point numbers.
FLOAT_VRS = frozenset({"FL", "FD"})

#: VRs whose values are never a number or a boolean.
NOT_NUMERIC_VRS = frozenset({"DA", "DT", "TM", "PN", "AT", "UI", "SQ"})

#: VRs that contain no date, time or date-time, so a date or time field rejects them.
NOT_TEMPORAL_VRS = frozenset({"DS", "IS", "PN", "AT", "UI", "SQ"}) | INTEGER_VRS | FLOAT_VRS

#: Range of the integer field type: the union of the SV and UV ranges.
INTEGER_MIN = -(2**63)
INTEGER_MAX = 2**64 - 1

#: Maximum number of fraction digits of a time: DICOM TM and DT allow six.
MAX_FRACTION_DIGITS = 6

#: Characters that may follow a NUL and still belong to the value, per field type.
#: A NUL followed by one of them makes the value invalid, because cutting there
#: could change its meaning. A date is complete at eight digits, so it has none.
_CONTINUATION = {
    "integer": set("0123456789.,eE+-"),
    "float": set("0123456789.,eE+-"),
    "boolean": set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"),
    "date": set(),
    "time": set("0123456789.:"),
    "datetime": set("0123456789.+-&"),
}

_BOOLEANS = {
    "true": True, "yes": True, "y": True, "t": True, "1": True,
    "false": False, "no": False, "n": False, "f": False, "0": False,
}  # fmt: skip

_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_DECIMAL_COMMA = re.compile(r"([+-]?)([0-9]+),([0-9]+)((?:[eE][+-]?[0-9]+)?)")
_NOT_FINITE = {"nan", "inf", "infinity"}

_DA = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})")
_DA_ACR_NEMA = re.compile(r"([0-9]{4})\.([0-9]{2})\.([0-9]{2})")
_TM = re.compile(r"([0-9]{2})(?:([0-9]{2})(?:([0-9]{2})(?:\.([0-9]+))?)?)?")
_TM_ACR_NEMA = re.compile(r"([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]+))?)?")
_DT = re.compile(
    r"([0-9]{4})(?:([0-9]{2})(?:([0-9]{2})(?:([0-9]{2})(?:([0-9]{2})(?:([0-9]{2})"
    r"(?:\.([0-9]+))?)?)?)?)?)?([+-][0-9]{4})?"
)


@dataclass(frozen=True)
class Converted:
    """A converted value: the typed ``value``, its ``text`` and the repairs made.

    ``value`` is a ``str``, ``int``, ``float``, ``bool``, ``datetime.date``,
    ``datetime.time`` or ``datetime.datetime`` (timezone-aware when the DT
    value has a UTC offset). ``repairs`` are short English sentences.
    """

    value: object
    text: str
    repairs: list[str] = field(default_factory=list)


def convert_value(vr, values, field_type: str, value_index: int | None = None) -> Converted:
    """Convert the values of one data element to a rule's field type.

    Parameters
    ----------
    vr : str or None
        The element's VR, such as ``"DS"``. ``None``, ``"UN"`` and VRs this
        module does not know are read as free text.
    values : list
        The element's values as the file wrote them: decoded text split on
        ``\\`` for text VRs, numbers for binary VRs.
    field_type : str
        One of :data:`FIELD_TYPES`.
    value_index : int, optional
        0-based index of the one value to convert, as in ``PixelSpacing[1]``.

    Returns
    -------
    Converted

    Raises
    ------
    ConversionError
        With ``kind="missing"`` when there is no usable value: no values, only
        empty values, a value index past the last value or a date of ``00000000``.
        With ``kind="invalid"`` when a value is there but cannot become the field type.
    ValueError
        For an unknown ``field_type`` or a negative ``value_index``.
    """
    if field_type not in FIELD_TYPES:
        raise ValueError(f"unknown field type {field_type!r}; expected one of {', '.join(FIELD_TYPES)}")
    if value_index is not None and (
        not isinstance(value_index, int) or isinstance(value_index, bool) or value_index < 0
    ):
        raise ValueError(f"value_index must be a non-negative integer, got {value_index!r}")

    vr = _normalise_vr(vr)
    items = _as_list(values)

    if value_index is not None:
        if value_index >= len(items):
            count = "no values" if not items else f"{len(items)} value{'s' if len(items) > 1 else ''}"
            raise ConversionError(
                f"Missing {field_type}: value index {value_index} asks for value "
                f"{value_index + 1}, but the element has {count}",
                kind="missing",
            )
        items = [items[value_index]]

    repairs: list[str] = []
    if field_type == "string":
        return _to_string(vr, items, repairs)

    _check_vr(vr, field_type, items)
    cleaned = [_clean_item(vr, item, field_type, repairs) for item in items]
    if all(item == "" for item in cleaned):
        raise ConversionError(f"Missing {field_type}: the element has no value", kind="missing")
    if len(cleaned) > 1:
        raw_text = "\\".join(_show_raw(item) for item in cleaned)
        raise ConversionError(
            f"Invalid {field_type} {_quote(raw_text)}: the element has {len(cleaned)} values "
            f"and the field takes one. Add a value index such as [0] to the tag to pick one",
            kind="invalid",
            raw=raw_text,
        )

    converter = _CONVERTERS[field_type]
    return converter(vr, cleaned[0], repairs)


# Input handling


def _normalise_vr(vr) -> str | None:
    if vr is None:
        return None
    text = str(vr).strip().upper()
    return text or None


def _as_list(values) -> list:
    """Return the values as a list, where a lone str or number counts as one value."""
    if values is None:
        return []
    if isinstance(values, (str, bytes, bytearray, numbers.Number)):
        return [values]
    return list(values)


def _check_vr(vr: str | None, field_type: str, items: list) -> None:
    """Reject VRs that can never hold the field type, whatever their value."""
    if vr is None:
        return
    if field_type in ("integer", "float", "boolean"):
        rejected = vr in NOT_NUMERIC_VRS
    elif field_type == "date":
        rejected = vr in NOT_TEMPORAL_VRS or vr == "TM"
    elif field_type == "time":
        rejected = vr in NOT_TEMPORAL_VRS or vr == "DA"
    else:
        rejected = vr in NOT_TEMPORAL_VRS or vr == "TM"
    if not rejected:
        return

    raw_text = "\\".join(_show_raw(item) for item in items)
    raise ConversionError(
        f"Invalid {field_type} {_quote(raw_text)}: an element of VR {vr} does not contain a "
        f"{field_type}. Choose a field type that matches the VR, such as string",
        kind="invalid",
        raw=raw_text,
    )


def _clean_item(vr: str | None, item, field_type: str, repairs: list[str]):
    """Remove the padding of one text value. Numbers pass unchanged."""
    if isinstance(item, bool) or isinstance(item, numbers.Number):
        return item
    if isinstance(item, (bytes, bytearray)):
        raise ConversionError(
            f"Invalid {field_type}: the value is {len(item)} bytes of binary data, not text. "
            f"The reader must decode text VRs before conversion",
            kind="invalid",
            raw=repr(bytes(item[:64])),
        )
    if item is None:
        return ""
    if not isinstance(item, str):
        raise ConversionError(
            f"Invalid {field_type}: a value of Python type {type(item).__name__} is neither "
            f"text nor a number",
            kind="invalid",
            raw=repr(item)[:64],
        )

    text = item.rstrip(" \x00")
    if "\x00" in text:
        text = _cut_at_nul(text, _CONTINUATION[field_type], field_type, repairs)

    stripped = text.lstrip(" ")
    if stripped != text and stripped and vr in ("DA", "TM", "DT"):
        repairs.append(f"Removed the spaces before {_quote(stripped)}.")
    return stripped


def _cut_at_nul(text: str, continuation: set[str], field_type: str, repairs: list[str]) -> str:
    """Cut a value at an inner NUL unless what follows could belong to the value."""
    head, _, tail = text.partition("\x00")
    rest = tail.lstrip("\x00")
    if rest and rest[0] in continuation:
        raise ConversionError(
            f"Invalid {field_type} {_quote(_show_raw(text))}: a NUL byte sits inside the value "
            f"and the text after it may belong to the value, so it is not cut off",
            kind="invalid",
            raw=text,
        )
    repairs.append(
        f"Removed a NUL byte and the {len(tail)} characters after {_quote(_show_raw(head))}."
    )
    return head.rstrip(" ")


def _show_raw(item) -> str:
    """Format a value for a message, escaping control characters, in at most 64 characters."""
    text = item if isinstance(item, str) else repr(item)
    printable = "".join(
        character if character.isprintable() else repr(character)[1:-1] for character in text
    )
    if len(printable) > 64:
        printable = printable[:61] + "..."
    return printable


def _quote(text: str) -> str:
    return f'"{text}"'


def _invalid(field_type: str, raw, reason: str) -> ConversionError:
    raw_text = _show_raw(raw)
    return ConversionError(
        f"Invalid {field_type} {_quote(raw_text)}: {reason}",
        kind="invalid",
        raw=raw if isinstance(raw, str) else repr(raw),
    )


def _missing(field_type: str, raw, reason: str) -> ConversionError:
    raw_text = _show_raw(raw)
    return ConversionError(
        f"Missing {field_type}: {_quote(raw_text)} {reason}",
        kind="missing",
        raw=raw if isinstance(raw, str) else repr(raw),
    )


# string


def _to_string(vr: str | None, items: list, repairs: list[str]) -> Converted:
    """Join the values with a backslash, as XNAT does, keeping them as written."""
    texts = []
    for item in items:
        texts.append(_string_item(vr, item, repairs))

    if all(text == "" for text in texts):
        raise ConversionError("Missing string: the element has no value", kind="missing")
    text = "\\".join(texts)
    return Converted(text, text, repairs)


def _string_item(vr: str | None, item, repairs: list[str]) -> str:
    if item is None:
        return ""
    if isinstance(item, bool):
        return "1" if item else "0"
    if isinstance(item, numbers.Integral):
        if vr == "AT":
            tag = int(item)
            return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
        return str(int(item))
    if isinstance(item, numbers.Real):
        number = float(item)
        if not math.isfinite(number):
            return str(number)
        if vr == "FL":
            return _float_text(_shortest_float32(number))
        return _float_text(number)
    if isinstance(item, str):
        text = item.rstrip(" \x00")
        if "\x00" in text:
            # Text after a NUL is never part of a DICOM string, and PostgreSQL
            # rejects NUL in text columns, so the string is cut there.
            text = _cut_at_nul(text, set(), "string", repairs)
        return text
    raise _invalid("string", item, f"a value of Python type {type(item).__name__} is not text")


# Numbers


def _to_integer(vr: str | None, item, repairs: list[str]) -> Converted:
    if isinstance(item, bool):
        number = int(item)
    elif isinstance(item, numbers.Integral):
        number = int(item)
    elif isinstance(item, numbers.Real):
        real = float(item)
        if not math.isfinite(real):
            raise _invalid("integer", item, "NaN and infinities are not integers")
        if not real.is_integer():
            raise _invalid("integer", item, "not a whole number, and integers are never rounded")
        number = int(real)
    else:
        decimal = _read_decimal(item, "integer", repairs)
        if decimal != decimal.to_integral_value():
            raise _invalid("integer", item, "not a whole number, and integers are never rounded")
        if not INTEGER_MIN <= decimal <= INTEGER_MAX:
            raise _invalid("integer", item, "outside the range of a 64-bit integer")
        number = int(decimal)

    if not INTEGER_MIN <= number <= INTEGER_MAX:
        raise _invalid("integer", item, "outside the range of a 64-bit integer")
    return Converted(number, str(number), repairs)


def _to_float(vr: str | None, item, repairs: list[str]) -> Converted:
    if isinstance(item, numbers.Real):
        try:
            number = float(item)
        except OverflowError:
            raise _invalid("float", item, "outside the range of a double") from None
        if not math.isfinite(number):
            raise _invalid("float", item, "NaN and infinities are not usable numbers")
        if vr == "FL":
            number = _shortest_float32(number)
    else:
        decimal = _read_decimal(item, "float", repairs)
        number = float(decimal)
        if not math.isfinite(number):
            raise _invalid("float", item, "outside the range of a double")

    if number == 0.0:
        number = 0.0  # -0.0 and 0.0 are the same weight, spacing or time
    return Converted(number, _float_text(number), repairs)


def _read_decimal(text: str, field_type: str, repairs: list[str]) -> Decimal:
    """Read DS or IS text as an exact decimal, mending a decimal comma where safe."""
    if _DECIMAL.fullmatch(text):
        return Decimal(text)

    if text.lower().lstrip("+-") in _NOT_FINITE:
        raise _invalid(field_type, text, "NaN and infinities are not usable numbers")

    match = _DECIMAL_COMMA.fullmatch(text)
    if match:
        sign, whole, fraction, exponent = match.groups()
        if 1 <= len(whole) <= 3 and not whole.startswith("0") and len(fraction) == 3:
            raise _invalid(
                field_type,
                text,
                f"the comma may be a decimal comma ({sign}{whole}.{fraction}) or a thousands "
                f"separator ({sign}{whole}{fraction}), so the value is not repaired",
            )
        mended = f"{sign}{whole}.{fraction}{exponent}"
        repairs.append(f"Read the decimal comma in {_quote(text)} as a decimal point: {mended}.")
        return Decimal(mended)

    parts = text.split(",")
    if len(parts) > 1 and all(_DECIMAL.fullmatch(part.strip(" ")) for part in parts):
        raise _invalid(
            field_type,
            text,
            f"it looks like {len(parts)} numbers separated by commas, but DICOM separates "
            f"values with a backslash and the field takes one number",
        )
    raise _invalid(field_type, text, "not a decimal number")


def _float_text(number: float) -> str:
    """Write the shortest decimal that reads back as ``number``, without an exponent."""
    text = repr(number)
    if "e" in text or "E" in text:
        text = format(Decimal(text), "f")
    if "." not in text:
        text += ".0"
    return text


def _shortest_float32(number: float) -> float:
    """Return the float with the shortest decimal that is still the same FL value.

    FL values are 32-bit, so 0.1 in an FL element reads as 0.10000000149011612
    in Python; this gives back 0.1.
    """
    try:
        target = struct.pack("<f", number)
    except OverflowError:
        return number
    for digits in range(1, 10):
        candidate = float(f"{number:.{digits}g}")
        try:
            if struct.pack("<f", candidate) == target:
                return candidate
        except OverflowError:
            # Rounding the largest FL values up can leave the 32-bit range.
            continue
    return number


# boolean


def _to_boolean(vr: str | None, item, repairs: list[str]) -> Converted:
    if isinstance(item, numbers.Real) and not isinstance(item, str):
        if item == 1:
            flag = True
        elif item == 0:
            flag = False
        else:
            raise _invalid("boolean", item, "only 1 and 0 are boolean numbers")
    else:
        key = item.lower()
        if key not in _BOOLEANS:
            raise _invalid(
                "boolean",
                item,
                "expected true, false, yes, no, y, n, t, f, 1 or 0 in any letter case",
            )
        flag = _BOOLEANS[key]
    return Converted(flag, "true" if flag else "false", repairs)


# Dates and times


def _require_text(field_type: str, item) -> str:
    if isinstance(item, str):
        return item
    raise _invalid(field_type, item, f"a number is not a {field_type}")


def _to_date(vr: str | None, item, repairs: list[str]) -> Converted:
    text = _require_text("date", item)
    if vr == "DT":
        parts = _read_datetime(text, "date")
        if parts["day"] is None:
            raise _invalid("date", text, "the DT value has no day, so it has no full date")
        date = dt.date(parts["year"], parts["month"], parts["day"])
    else:
        date = _read_date(text, "date")
    return Converted(date, date.isoformat(), repairs)


def _read_date(text: str, field_type: str) -> dt.date:
    """Read DA text, YYYYMMDD or the ACR-NEMA form YYYY.MM.DD, with a calendar check."""
    match = _DA.fullmatch(text) or _DA_ACR_NEMA.fullmatch(text)
    if not match:
        raise _invalid(field_type, text, "not a DICOM date; expected YYYYMMDD")
    year, month, day = (int(group) for group in match.groups())
    if year == month == day == 0:
        raise _missing(field_type, text, "is an empty date")
    try:
        return dt.date(year, month, day)
    except ValueError:
        raise _invalid(field_type, text, "no such day in the calendar") from None


def _to_time(vr: str | None, item, repairs: list[str]) -> Converted:
    text = _require_text("time", item)
    if vr == "DT":
        parts = _read_datetime(text, "time")
        if parts["hour"] is None:
            raise _invalid("time", text, "the DT value has no time part")
        hour, minute, second = parts["hour"], parts["minute"] or 0, parts["second"] or 0
        fraction = parts["fraction"]
    else:
        match = _TM.fullmatch(text) or _TM_ACR_NEMA.fullmatch(text)
        if not match:
            raise _invalid("time", text, "not a DICOM time; expected HHMMSS.FFFFFF or HH:MM:SS")
        hour = int(match.group(1))
        minute = int(match.group(2) or 0)
        second = int(match.group(3) or 0)
        fraction = match.group(4)

    _check_clock(text, "time", hour, minute, second)
    microsecond, fraction_text = _read_fraction(text, fraction, repairs)
    value = dt.time(hour, minute, second, microsecond)
    return Converted(value, f"{hour:02d}:{minute:02d}:{second:02d}{fraction_text}", repairs)


def _check_clock(text: str, field_type: str, hour: int, minute: int, second: int) -> None:
    if hour > 23:
        raise _invalid(field_type, text, f"hour {hour:02d} is past 23")
    if minute > 59:
        raise _invalid(field_type, text, f"minute {minute:02d} is past 59")
    if second > 59:
        # NOTE: DICOM allows second 60 for a leap second, but Python's time and
        # datetime cannot hold it, so such a value is reported as invalid.
        raise _invalid(field_type, text, f"second {second:02d} is past 59")


def _read_fraction(text: str, fraction: str | None, repairs: list[str]) -> tuple[int, str]:
    """Return the microseconds and the fraction text, such as ``.123``, of a time."""
    if not fraction:
        return 0, ""
    if len(fraction) > MAX_FRACTION_DIGITS:
        repairs.append(
            f"Cut the fraction of a second in {_quote(text)} from {len(fraction)} to "
            f"{MAX_FRACTION_DIGITS} digits."
        )
        fraction = fraction[:MAX_FRACTION_DIGITS]
    microsecond = int(fraction.ljust(MAX_FRACTION_DIGITS, "0"))
    if microsecond == 0:
        return 0, ""
    return microsecond, "." + fraction.rstrip("0")


def _to_datetime(vr: str | None, item, repairs: list[str]) -> Converted:
    text = _require_text("datetime", item)
    if vr == "DA":
        date = _read_date(text, "datetime")
        value = dt.datetime(date.year, date.month, date.day)
        return Converted(value, date.isoformat(), repairs)

    parts = _read_datetime(text, "datetime")
    return _datetime_result(text, parts, repairs)


def _read_datetime(text: str, field_type: str) -> dict:
    """Read DT text into its parts; parts the value leaves out are ``None``."""
    match = _DT.fullmatch(text)
    if not match:
        raise _invalid(
            field_type, text, "not a DICOM date-time; expected YYYYMMDDHHMMSS.FFFFFF&ZZXX"
        )
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    parts = {
        "year": int(year),
        "month": int(month) if month else None,
        "day": int(day) if day else None,
        "hour": int(hour) if hour is not None else None,
        "minute": int(minute) if minute is not None else None,
        "second": int(second) if second is not None else None,
        "fraction": fraction,
        "offset": offset,
    }

    if parts["year"] == 0 and not (parts["month"] or parts["day"]):
        raise _missing(field_type, text, "is an empty date-time")
    try:
        dt.date(parts["year"], parts["month"] or 1, parts["day"] or 1)
    except ValueError:
        raise _invalid(field_type, text, "no such day in the calendar") from None
    if parts["hour"] is not None:
        _check_clock(text, field_type, parts["hour"], parts["minute"] or 0, parts["second"] or 0)
    if offset is not None:
        minutes = (int(offset[1:3]) * 60 + int(offset[3:5])) * (-1 if offset[0] == "-" else 1)
        if int(offset[3:5]) > 59 or not -12 * 60 <= minutes <= 14 * 60:
            raise _invalid(
                field_type, text, f"UTC offset {offset} is outside -1200 to +1400"
            )
        parts["offset_minutes"] = minutes
    return parts


def _datetime_result(text: str, parts: dict, repairs: list[str]) -> Converted:
    """Write DT parts as ISO 8601 at the precision the value has."""
    iso = f"{parts['year']:04d}"
    if parts["month"] is not None:
        iso += f"-{parts['month']:02d}"
    if parts["day"] is not None:
        iso += f"-{parts['day']:02d}"

    microsecond = 0
    if parts["hour"] is not None:
        iso += f"T{parts['hour']:02d}"
        if parts["minute"] is not None:
            iso += f":{parts['minute']:02d}"
        if parts["second"] is not None:
            microsecond, fraction_text = _read_fraction(text, parts["fraction"], repairs)
            iso += f":{parts['second']:02d}{fraction_text}"

    tzinfo = None
    offset = parts["offset"]
    if offset is not None and parts["hour"] is None:
        repairs.append(
            f"Dropped the UTC offset {offset} of {_quote(text)}, because an ISO 8601 date "
            f"without a time has no offset."
        )
    elif offset is not None:
        tzinfo = dt.timezone(dt.timedelta(minutes=parts["offset_minutes"]))
        iso += f"{offset[0]}{offset[1:3]}:{offset[3:5]}"

    value = dt.datetime(
        parts["year"],
        parts["month"] or 1,
        parts["day"] or 1,
        parts["hour"] or 0,
        parts["minute"] or 0,
        parts["second"] or 0,
        microsecond,
        tzinfo=tzinfo,
    )
    return Converted(value, iso, repairs)


_CONVERTERS = {
    "integer": _to_integer,
    "float": _to_float,
    "boolean": _to_boolean,
    "date": _to_date,
    "time": _to_time,
    "datetime": _to_datetime,
}
