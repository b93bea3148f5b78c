"""Tests of the value converters: field cases, each field type, repairs, properties."""

from __future__ import annotations

import datetime as dt
import math
import struct
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xnat_dicom_mappings.convert import FIELD_TYPES, Converted, convert_value
from xnat_dicom_mappings.errors import ConversionError

UTC_PLUS_1 = dt.timezone(dt.timedelta(hours=1))

# Values seen in real headers: (case, vr, values, field type, value index, text, repaired).
FIELD_CASES = [
    ("decimal comma", "DS", ["72,5"], "float", None, "72.5", True),
    ("comma kept in string", "DS", ["0.005865432,0.001955034"], "string", None,
     "0.005865432,0.001955034", False),
    ("whole IS", "IS", ["14.0"], "integer", None, "14", False),
    ("exponent DS", "DS", ["-9.81338674e-006"], "float", None, "-0.00000981338674", False),
    ("ACR-NEMA date", "DA", ["1997.04.24"], "date", None, "1997-04-24", False),
    ("time fraction", "TM", ["045812.123"], "time", None, "04:58:12.123", False),
    ("seven fraction digits", "TM", ["155431.1234567"], "time", None, "15:54:31.123456", True),
    ("colon time zero fraction", "TM", ["18:08:01.0000000"], "time", None, "18:08:01", True),
    ("short time", "TM", ["0930"], "time", None, "09:30:00", False),
    ("NUL and garbage after date", "DA", ["20180702\x00\x89\xfe\x07junk"], "date", None,
     "2018-07-02", True),
    ("DT with offset", "DT", ["20211207145718.123000+0100"], "datetime", None,
     "2021-12-07T14:57:18.123+01:00", False),
    ("date of DT", "DT", ["20211207145718.123000+0100"], "date", None, "2021-12-07", False),
    ("zero with NUL pad", "DS", ["0\x00"], "float", None, "0.0", False),
    ("second value", "DS", ["0.5", "0.7"], "float", 1, "0.7", False),
    ("Y is true", "LO", ["Y"], "boolean", None, "true", False),
]  # fmt: skip

FIELD_FAILURES = [
    ("comma as separator", "DS", ["0.005865432,0.001955034"], "float", None, "invalid",
     "2 numbers separated by commas"),
    ("decimal IS", "IS", ["14.5"], "integer", None, "invalid", "never rounded"),
    ("name in date", "DA", ["Amadeus "], "date", None, "invalid", "not a DICOM date"),
    ("zero date", "DA", ["00000000"], "date", None, "missing", "empty date"),
    ("empty date", "DA", [""], "date", None, "missing", "no value"),
    ("month 13", "DA", ["20061399"], "date", None, "invalid", "calendar"),
    ("index past end", "DS", ["0.5"], "float", 1, "missing", "has 1 value"),
    ("NaN", "DS", ["NaN"], "float", None, "invalid", "NaN"),
]  # fmt: skip


@pytest.mark.parametrize(
    "case, vr, values, field_type, index, text, repaired",
    FIELD_CASES,
    ids=[row[0] for row in FIELD_CASES],
)
def test_field_case_text(case, vr, values, field_type, index, text, repaired):
    assert convert_value(vr, values, field_type, index).text == text


@pytest.mark.parametrize(
    "case, vr, values, field_type, index, text, repaired",
    FIELD_CASES,
    ids=[row[0] for row in FIELD_CASES],
)
def test_field_case_repair(case, vr, values, field_type, index, text, repaired):
    assert bool(convert_value(vr, values, field_type, index).repairs) == repaired


@pytest.mark.parametrize(
    "case, vr, values, field_type, index, kind, fragment",
    FIELD_FAILURES,
    ids=[row[0] for row in FIELD_FAILURES],
)
def test_field_case_failure(case, vr, values, field_type, index, kind, fragment):
    with pytest.raises(ConversionError, match=fragment) as caught:
        convert_value(vr, values, field_type, index)
    assert caught.value.kind == kind


# Typed values

TYPED = [
    ("IS", ["14"], "integer", 14),
    ("DS", ["72,5"], "float", 72.5),
    ("LO", ["no"], "boolean", False),
    ("DA", ["20180702"], "date", dt.date(2018, 7, 2)),
    ("TM", ["045812.123"], "time", dt.time(4, 58, 12, 123000)),
    ("DT", ["20211207145718.123000+0100"], "datetime",
     dt.datetime(2021, 12, 7, 14, 57, 18, 123000, tzinfo=UTC_PLUS_1)),
    ("PN", ["Müller^Hans"], "string", "Müller^Hans"),
]  # fmt: skip


@pytest.mark.parametrize("vr, values, field_type, value", TYPED)
def test_typed_value(vr, values, field_type, value):
    assert convert_value(vr, values, field_type).value == value


@pytest.mark.parametrize("vr, values, field_type, value", TYPED)
def test_typed_value_type(vr, values, field_type, value):
    assert type(convert_value(vr, values, field_type).value) is type(value)


def test_converted_fields():
    assert convert_value("IS", ["7"], "integer") == Converted(7, "7", [])


# string

STRINGS = [
    ("LO", ["SIEMENS  "], "SIEMENS"),
    ("LO", ["  leading kept"], "  leading kept"),
    ("UI", ["1.2.840.10008.1.2\x00"], "1.2.840.10008.1.2"),
    ("DS", ["0.5", "0.5"], "0.5\\0.5"),
    ("CS", ["ORIGINAL", "PRIMARY", "M", "ND "], "ORIGINAL\\PRIMARY\\M\\ND"),
    ("CS", ["A", ""], "A\\"),
    ("PN", ["Doe^John^^Dr"], "Doe^John^^Dr"),
    ("PN", ["Yamada^Tarou=山田^太郎"], "Yamada^Tarou=山田^太郎"),
    ("US", [512], "512"),
    ("US", [512, 512], "512\\512"),
    ("FD", [2.0], "2.0"),
    ("FD", [1e-05], "0.00001"),
    ("FL", [0.10000000149011612], "0.1"),
    ("AT", [0x00101030], "(0010,1030)"),
]


@pytest.mark.parametrize("vr, values, text", STRINGS)
def test_string_text(vr, values, text):
    assert convert_value(vr, values, "string").text == text


def test_string_value_index():
    assert convert_value("CS", ["ORIGINAL", "PRIMARY"], "string", 1).text == "PRIMARY"


def test_string_nul_cut():
    result = convert_value("LO", ["ACME\x00\x01\x02"], "string")
    assert result.text == "ACME"
    assert result.repairs


@pytest.mark.parametrize("values", [[], [""], ["   "], ["\x00\x00"], ["", " "], None])
def test_string_missing(values):
    with pytest.raises(ConversionError) as caught:
        convert_value("LO", values, "string")
    assert caught.value.kind == "missing"


def test_string_bytes_invalid():
    with pytest.raises(ConversionError, match="not text") as caught:
        convert_value("OB", [object()], "string")
    assert caught.value.kind == "invalid"


# integer

INTEGERS = [
    ("IS", ["14"], 14),
    ("IS", ["  -3 "], -3),
    ("IS", ["+7"], 7),
    ("IS", ["0014"], 14),
    ("DS", ["14.000"], 14),
    ("DS", ["1e3"], 1000),
    ("DS", ["14,0"], 14),
    ("US", [65535], 65535),
    ("SS", [-32768], -32768),
    ("UL", [4294967295], 4294967295),
    ("SL", [-5], -5),
    ("SV", [-(2**63)], -(2**63)),
    ("UV", [2**64 - 1], 2**64 - 1),
    ("FD", [3.0], 3),
    ("LO", ["42"], 42),
    (None, ["42"], 42),
]


@pytest.mark.parametrize("vr, values, value", INTEGERS)
def test_integer_value(vr, values, value):
    assert convert_value(vr, values, "integer").value == value


@pytest.mark.parametrize("vr, values, value", INTEGERS)
def test_integer_text(vr, values, value):
    assert convert_value(vr, values, "integer").text == str(value)


INTEGER_FAILURES = [
    ("IS", ["14.5"], "never rounded"),
    ("DS", ["72,5"], "never rounded"),
    ("DS", ["1e-3"], "never rounded"),
    ("IS", ["1,234"], "thousands separator"),
    ("IS", ["abc"], "not a decimal number"),
    ("IS", ["1 2"], "not a decimal number"),
    ("IS", ["١٢"], "not a decimal number"),
    ("IS", ["1_000"], "not a decimal number"),
    ("IS", ["14\x005"], "NUL byte"),
    ("US", [512, 256], "2 values"),
    ("IS", ["1", "2"], "Add a value index"),
    ("FD", [2.5], "never rounded"),
    ("FD", [math.inf], "infinities"),
    ("DS", ["1e30"], "64-bit"),
    ("UV", [2**64], "64-bit"),
    ("DA", ["20180702"], "VR DA"),
    ("TM", ["1200"], "VR TM"),
    ("PN", ["12"], "VR PN"),
]


@pytest.mark.parametrize("vr, values, fragment", INTEGER_FAILURES)
def test_integer_invalid(vr, values, fragment):
    with pytest.raises(ConversionError, match=fragment) as caught:
        convert_value(vr, values, "integer")
    assert caught.value.kind == "invalid"


def test_integer_index_picks():
    assert convert_value("US", [512, 256], "integer", 1).value == 256


# float

FLOATS = [
    ("DS", ["72.5"], "72.5"),
    ("DS", ["2"], "2.0"),
    ("DS", ["0.0001"], "0.0001"),
    ("DS", ["1e-4"], "0.0001"),
    ("DS", ["1E+22"], "10000000000000000000000.0"),
    ("DS", [".5"], "0.5"),
    ("DS", ["5."], "5.0"),
    ("DS", ["  3516 "], "3516.0"),
    ("DS", ["-0"], "0.0"),
    ("DS", ["0,005"], "0.005"),
    ("DS", ["1234,567"], "1234.567"),
    ("DS", ["0.1000000000000000055511151231257827"], "0.1"),
    ("IS", ["14"], "14.0"),
    ("IS", ["14.5"], "14.5"),
    ("FL", [0.10000000149011612], "0.1"),
    ("FL", [3516.0], "3516.0"),
    ("FD", [0.1], "0.1"),
    ("FD", [-9.81338674e-06], "-0.00000981338674"),
    ("US", [512], "512.0"),
]


@pytest.mark.parametrize("vr, values, text", FLOATS)
def test_float_text(vr, values, text):
    assert convert_value(vr, values, "float").text == text


FLOAT_FAILURES = [
    ("DS", ["NaN"], "NaN"),
    ("DS", ["nan"], "NaN"),
    ("DS", ["-Infinity"], "infinities"),
    ("DS", ["inf"], "infinities"),
    ("FD", [math.nan], "NaN"),
    ("FD", [math.inf], "infinities"),
    ("DS", ["1e400"], "range of a double"),
    ("DS", ["1,234"], "thousands separator"),
    ("DS", ["-1,234"], "thousands separator"),
    ("DS", ["1,2,3"], "3 numbers separated by commas"),
    ("DS", ["72.5 kg"], "not a decimal number"),
    ("DS", ["0x10"], "not a decimal number"),
    ("DS", ["72.5\x00\x001"], "NUL byte"),
    ("DS", ["0.5", "0.7"], "2 values"),
    ("DT", ["20211207"], "VR DT"),
]


@pytest.mark.parametrize("vr, values, fragment", FLOAT_FAILURES)
def test_float_invalid(vr, values, fragment):
    with pytest.raises(ConversionError, match=fragment) as caught:
        convert_value(vr, values, "float")
    assert caught.value.kind == "invalid"


def test_float_repair_names_value():
    assert "72,5" in convert_value("DS", ["72,5"], "float").repairs[0]


def test_float_nul_garbage_repaired():
    result = convert_value("DS", ["72.5\x00\x89junk"], "float")
    assert result.text == "72.5"
    assert result.repairs


# boolean

BOOLEANS = [
    ("true", "true"), ("TRUE", "true"), ("Yes", "true"), ("y", "true"), ("T", "true"),
    ("1", "true"), ("false", "false"), ("NO", "false"), ("n", "false"), ("f", "false"),
    ("0", "false"), ("  Y ", "true"),
]  # fmt: skip


@pytest.mark.parametrize("raw, text", BOOLEANS)
def test_boolean_text(raw, text):
    assert convert_value("CS", [raw], "boolean").text == text


@pytest.mark.parametrize("number, text", [(1, "true"), (0, "false")])
def test_boolean_number(number, text):
    assert convert_value("US", [number], "boolean").text == text


@pytest.mark.parametrize(
    "vr, values", [("CS", ["maybe"]), ("CS", ["2"]), ("CS", ["1.0"]), ("US", [2]), ("CS", ["on"])]
)
def test_boolean_invalid(vr, values):
    with pytest.raises(ConversionError, match="boolean") as caught:
        convert_value(vr, values, "boolean")
    assert caught.value.kind == "invalid"


# date

DATES = [
    ("DA", "20180702", "2018-07-02"),
    ("DA", "20000229", "2000-02-29"),
    ("DA", "1997.04.24", "1997-04-24"),
    ("DT", "20211207", "2021-12-07"),
    ("DT", "20211207145718", "2021-12-07"),
    ("DT", "20211207145718.123-0500", "2021-12-07"),
    ("LO", "20180702", "2018-07-02"),
    (None, "20180702", "2018-07-02"),
]


@pytest.mark.parametrize("vr, raw, text", DATES)
def test_date_text(vr, raw, text):
    assert convert_value(vr, [raw], "date").text == text


DATE_FAILURES = [
    ("DA", "20190229", "invalid", "calendar"),
    ("DA", "20180700", "invalid", "calendar"),
    ("DA", "2018072", "invalid", "YYYYMMDD"),
    ("DA", "2018-07-02", "invalid", "YYYYMMDD"),
    ("DA", "20180702120000", "invalid", "YYYYMMDD"),
    ("DA", "0000.00.00", "missing", "empty date"),
    ("DA", "00000000", "missing", "empty date"),
    ("DT", "00000000000000", "missing", "empty date-time"),
    ("DT", "202112", "invalid", "no day"),
    ("DT", "20211307", "invalid", "calendar"),
    ("TM", "120000", "invalid", "VR TM"),
    ("DS", "20180702", "invalid", "VR DS"),
]


@pytest.mark.parametrize("vr, raw, kind, fragment", DATE_FAILURES)
def test_date_failure(vr, raw, kind, fragment):
    with pytest.raises(ConversionError, match=fragment) as caught:
        convert_value(vr, [raw], "date")
    assert caught.value.kind == kind


def test_date_leading_space_repaired():
    result = convert_value("DA", [" 20180702"], "date")
    assert result.text == "2018-07-02"
    assert result.repairs


def test_date_number_invalid():
    with pytest.raises(ConversionError, match="a number is not a date"):
        convert_value(None, [20180702], "date")


# time

TIMES = [
    ("TM", "07", "07:00:00"),
    ("TM", "0930", "09:30:00"),
    ("TM", "093015", "09:30:15"),
    ("TM", "093015.5", "09:30:15.5"),
    ("TM", "093015.500000", "09:30:15.5"),
    ("TM", "093015.000001", "09:30:15.000001"),
    ("TM", "093015.000000", "09:30:15"),
    ("TM", "09:30", "09:30:00"),
    ("TM", "09:30:15", "09:30:15"),
    ("TM", "09:30:15.25", "09:30:15.25"),
    ("TM", "235959.999999", "23:59:59.999999"),
    ("DT", "20211207145718.123000+0100", "14:57:18.123"),
    ("DT", "2021120714", "14:00:00"),
    ("SH", "1200", "12:00:00"),
]


@pytest.mark.parametrize("vr, raw, text", TIMES)
def test_time_text(vr, raw, text):
    assert convert_value(vr, [raw], "time").text == text


TIME_FAILURES = [
    ("TM", "240000", "invalid", "hour 24"),
    ("TM", "126000", "invalid", "minute 60"),
    ("TM", "120060", "invalid", "second 60"),
    ("TM", "123", "invalid", "HHMMSS"),
    ("TM", "1230.5", "invalid", "HHMMSS"),
    ("TM", "12:3", "invalid", "HHMMSS"),
    ("TM", "noon", "invalid", "HHMMSS"),
    ("TM", "1200\x0030", "invalid", "NUL byte"),
    ("DT", "20211207", "invalid", "no time part"),
    ("DA", "20211207", "invalid", "VR DA"),
    ("TM", "", "missing", "no value"),
]


@pytest.mark.parametrize("vr, raw, kind, fragment", TIME_FAILURES)
def test_time_failure(vr, raw, kind, fragment):
    with pytest.raises(ConversionError, match=fragment) as caught:
        convert_value(vr, [raw], "time")
    assert caught.value.kind == kind


def test_time_nul_garbage_repaired():
    result = convert_value("TM", ["120000\x00\xff\xfe"], "time")
    assert result.text == "12:00:00"
    assert result.repairs


# datetime

DATETIMES = [
    ("DT", "2021", "2021", dt.datetime(2021, 1, 1)),
    ("DT", "202112", "2021-12", dt.datetime(2021, 12, 1)),
    ("DT", "20211207", "2021-12-07", dt.datetime(2021, 12, 7)),
    ("DT", "2021120714", "2021-12-07T14", dt.datetime(2021, 12, 7, 14)),
    ("DT", "202112071457", "2021-12-07T14:57", dt.datetime(2021, 12, 7, 14, 57)),
    ("DT", "20211207145718", "2021-12-07T14:57:18", dt.datetime(2021, 12, 7, 14, 57, 18)),
    ("DT", "20211207145718.5", "2021-12-07T14:57:18.5",
     dt.datetime(2021, 12, 7, 14, 57, 18, 500000)),
    ("DT", "20211207145718-0500", "2021-12-07T14:57:18-05:00",
     dt.datetime(2021, 12, 7, 14, 57, 18, tzinfo=dt.timezone(dt.timedelta(hours=-5)))),
    ("DT", "20211207145718+1400", "2021-12-07T14:57:18+14:00",
     dt.datetime(2021, 12, 7, 14, 57, 18, tzinfo=dt.timezone(dt.timedelta(hours=14)))),
    ("DT", "20211207145718+0000", "2021-12-07T14:57:18+00:00",
     dt.datetime(2021, 12, 7, 14, 57, 18, tzinfo=dt.timezone.utc)),
    ("DA", "20211207", "2021-12-07", dt.datetime(2021, 12, 7)),
]  # fmt: skip


@pytest.mark.parametrize("vr, raw, text, value", DATETIMES)
def test_datetime_text(vr, raw, text, value):
    assert convert_value(vr, [raw], "datetime").text == text


@pytest.mark.parametrize("vr, raw, text, value", DATETIMES)
def test_datetime_value(vr, raw, text, value):
    assert convert_value(vr, [raw], "datetime").value == value


def test_datetime_seven_digits_repaired():
    result = convert_value("DT", ["20211207145718.1234567"], "datetime")
    assert result.text == "2021-12-07T14:57:18.123456"
    assert result.repairs


def test_datetime_date_offset_dropped():
    result = convert_value("DT", ["20211207+0100"], "datetime")
    assert result.text == "2021-12-07"
    assert "UTC offset" in result.repairs[0]


DATETIME_FAILURES = [
    ("DT", "2021-12-07T14:57:18", "invalid", "YYYYMMDDHHMMSS"),
    ("DT", "20211207145718+1500", "invalid", "UTC offset"),
    ("DT", "20211207145718-1300", "invalid", "UTC offset"),
    ("DT", "20211207145718+0160", "invalid", "UTC offset"),
    ("DT", "20211207250000", "invalid", "hour 25"),
    ("DT", "0000", "missing", "empty date-time"),
    ("TM", "120000", "invalid", "VR TM"),
]


@pytest.mark.parametrize("vr, raw, kind, fragment", DATETIME_FAILURES)
def test_datetime_failure(vr, raw, kind, fragment):
    with pytest.raises(ConversionError, match=fragment) as caught:
        convert_value(vr, [raw], "datetime")
    assert caught.value.kind == kind


# Arguments and common rules


@pytest.mark.parametrize("field_type", FIELD_TYPES)
def test_no_values_missing(field_type):
    with pytest.raises(ConversionError) as caught:
        convert_value("LO", [], field_type)
    assert caught.value.kind == "missing"


@pytest.mark.parametrize("field_type", FIELD_TYPES)
def test_padding_only_missing(field_type):
    with pytest.raises(ConversionError) as caught:
        convert_value(None, ["  ", "\x00"], field_type)
    assert caught.value.kind == "missing"


@pytest.mark.parametrize("field_type", FIELD_TYPES)
def test_index_past_end_missing(field_type):
    with pytest.raises(ConversionError, match="value index 2") as caught:
        convert_value("LO", ["a", "b"], field_type, 2)
    assert caught.value.kind == "missing"


def test_error_carries_raw():
    with pytest.raises(ConversionError) as caught:
        convert_value("IS", ["14.5"], "integer")
    assert caught.value.raw == "14.5"


def test_unknown_field_type():
    with pytest.raises(ValueError, match="unknown field type"):
        convert_value("DS", ["1"], "number")


@pytest.mark.parametrize("index", [-1, 1.0, True, "1"])
def test_bad_value_index(index):
    with pytest.raises(ValueError, match="value_index"):
        convert_value("DS", ["1"], "float", index)


def test_lone_string_one_value():
    assert convert_value("DS", "0.5", "float").text == "0.5"


def test_vr_letter_case():
    assert convert_value("ds", ["0.5"], "float").text == "0.5"


# Property tests

_VRS = [
    None, "AE", "AS", "AT", "CS", "DA", "DS", "DT", "FL", "FD", "IS", "LO", "LT", "OB", "PN",
    "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC", "UI", "UL", "UN", "UR", "US", "UT", "UV",
    "US or SS", "XX",
]  # fmt: skip
_DICOM_TEXT = st.text(alphabet=st.sampled_from(list("0123456789.,:+-eE &^ \x00\\YNyn")), max_size=30)
_ANY_TEXT = st.text(max_size=30)


@given(
    st.sampled_from(_VRS),
    st.lists(st.one_of(_DICOM_TEXT, _ANY_TEXT), max_size=3),
    st.sampled_from(FIELD_TYPES),
    st.none() | st.integers(0, 3),
)
def test_random_text_only_conversion_error(vr, values, field_type, index):
    try:
        result = convert_value(vr, values, field_type, index)
    except ConversionError as error:
        assert error.kind in ("invalid", "missing")
        return
    assert isinstance(result.text, str)
    assert "\x00" not in result.text


@given(
    st.sampled_from(_VRS),
    st.lists(
        st.one_of(st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True)),
        max_size=3,
    ),
    st.sampled_from(FIELD_TYPES),
)
def test_random_numbers_only_conversion_error(vr, values, field_type):
    try:
        convert_value(vr, values, field_type)
    except ConversionError as error:
        assert error.kind in ("invalid", "missing")


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_float_text_reads_back(number):
    result = convert_value("DS", [repr(number)], "float")
    assert float(result.text) == number
    assert "e" not in result.text
    assert "." in result.text


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_float_text_is_shortest(number):
    # repr() gives the shortest decimal that reads back, and the text is that decimal.
    text = convert_value("FD", [number], "float").text
    assert Decimal(text) == Decimal(repr(number + 0.0))


@given(st.floats(width=32, allow_nan=False, allow_infinity=False))
def test_fl_reads_back_as_float32(number):
    value = convert_value("FL", [number], "float").value
    assert struct.pack("<f", value) == struct.pack("<f", number + 0.0)


@given(st.integers(-(2**63), 2**64 - 1))
def test_integer_round_trip(number):
    assert convert_value("IS", [str(number)], "integer").value == number


@given(st.dates(min_value=dt.date(1, 1, 1)))
def test_date_round_trip(date):
    result = convert_value("DA", [date.strftime("%Y%m%d").rjust(8, "0")], "date")
    assert result.value == date


@given(st.times())
def test_time_round_trip(time):
    raw = f"{time.hour:02d}{time.minute:02d}{time.second:02d}.{time.microsecond:06d}"
    result = convert_value("TM", [raw], "time")
    assert result.value == time
    assert dt.time.fromisoformat(result.text) == time


@given(
    st.datetimes(min_value=dt.datetime(1, 1, 1)),
    st.none() | st.integers(-12 * 60, 14 * 60),
)
def test_datetime_round_trip(moment, offset_minutes):
    raw = moment.strftime("%Y%m%d%H%M%S").rjust(14, "0") + f".{moment.microsecond:06d}"
    expected = moment
    if offset_minutes is not None:
        sign = "-" if offset_minutes < 0 else "+"
        raw += f"{sign}{abs(offset_minutes) // 60:02d}{abs(offset_minutes) % 60:02d}"
        expected = moment.replace(tzinfo=dt.timezone(dt.timedelta(minutes=offset_minutes)))
    result = convert_value("DT", [raw], "datetime")
    assert result.value == expected
    assert dt.datetime.fromisoformat(result.text) == expected
