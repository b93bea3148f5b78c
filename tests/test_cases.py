"""One test per header oddity seen in the field, each on a file the test writes itself."""

from __future__ import annotations

import struct
import zipfile

import pytest

from dicom_bytes import dataset_bytes, write_dicom
from xnat_dicom_mappings.grouping import extract_paths
from xnat_dicom_mappings.rules import Rule

SESSION = "xnat:mrSessionData"
SCAN = "xnat:mrScanData"


def rule(field_type: str, tag: str, schema_element: str = SESSION, name: str = "f") -> Rule:
    return Rule(scope="Site", field_name=name, field_type=field_type, dicom_tag=tag,
                schema_element=schema_element)


def run_one(tmp_path, elements, field_type, tag, implicit=False):
    """Write one file, extract one session rule and return (session JSON, unreadable)."""
    path = write_dicom(tmp_path / "case.dcm", elements, implicit=implicit)
    output = extract_paths([rule(field_type, tag)], [path])
    assert len(output["sessions"]) == 1
    return output["sessions"][0], output["unreadable"]


def kinds(session) -> list[str]:
    return [problem["kind"] for problem in session["problems"]]


def test_decimal_comma(tmp_path):
    session, _ = run_one(tmp_path, [(0x00101030, "DS", b"72,5")], "float", "PatientWeight")
    assert session["fields"] == {"f": "72.5"}
    assert kinds(session) == ["repaired"]


def test_comma_separator_float(tmp_path):
    elements = [(0x00280030, "DS", b"0.005865432,0.001955034")]
    session, _ = run_one(tmp_path, elements, "float", "PixelSpacing")
    assert session["fields"] == {}
    assert kinds(session) == ["invalid"]


def test_comma_separator_string(tmp_path):
    elements = [(0x00280030, "DS", b"0.005865432,0.001955034")]
    session, _ = run_one(tmp_path, elements, "string", "PixelSpacing")
    assert session["fields"] == {"f": "0.005865432,0.001955034"}
    assert session["problems"] == []


def test_decimal_in_is(tmp_path):
    session, _ = run_one(tmp_path, [(0x00181152, "IS", b"14.5")], "integer", "Exposure")
    assert session["fields"] == {}
    assert kinds(session) == ["invalid"]


def test_whole_decimal_in_is(tmp_path):
    session, _ = run_one(tmp_path, [(0x00181152, "IS", b"14.0")], "integer", "Exposure")
    assert session["fields"] == {"f": "14"}


def test_exponent(tmp_path):
    elements = [(0x00180050, "DS", b"-9.81338674e-006")]
    session, _ = run_one(tmp_path, elements, "float", "SliceThickness")
    assert session["fields"] == {"f": "-0.00000981338674"}


def test_name_in_date(tmp_path):
    session, _ = run_one(tmp_path, [(0x00100030, "DA", b"Amadeus ")], "date", "PatientBirthDate")
    assert session["fields"] == {}
    assert kinds(session) == ["invalid"]


def test_zero_date(tmp_path):
    session, _ = run_one(tmp_path, [(0x00080020, "DA", b"00000000")], "date", "StudyDate")
    assert session["fields"] == {}
    assert kinds(session) == ["missing"]


def test_empty_date(tmp_path):
    session, _ = run_one(tmp_path, [(0x00080023, "DA", b"")], "date", "ContentDate")
    assert session["fields"] == {}
    assert kinds(session) == ["missing"]


def test_month_thirteen(tmp_path):
    session, _ = run_one(tmp_path, [(0x00080020, "DA", b"20061399")], "date", "StudyDate")
    assert session["fields"] == {}
    assert kinds(session) == ["invalid"]


def test_acr_nema_date(tmp_path):
    session, _ = run_one(tmp_path, [(0x00080020, "DA", b"1997.04.24")], "date", "StudyDate")
    assert session["fields"] == {"f": "1997-04-24"}


def test_time_fraction(tmp_path):
    session, _ = run_one(tmp_path, [(0x00080032, "TM", b"045812.123")], "time", "AcquisitionTime")
    assert session["fields"] == {"f": "04:58:12.123"}


def test_seven_fraction_digits(tmp_path):
    elements = [(0x00080032, "TM", b"155431.1234567")]
    session, _ = run_one(tmp_path, elements, "time", "AcquisitionTime")
    assert session["fields"] == {"f": "15:54:31.123456"}
    assert kinds(session) == ["repaired"]


def test_colons_and_zero_fraction(tmp_path):
    elements = [(0x00080032, "TM", b"18:08:01.0000000")]
    session, _ = run_one(tmp_path, elements, "time", "AcquisitionTime")
    assert session["fields"] == {"f": "18:08:01"}
    assert kinds(session) == ["repaired"]


def test_short_time(tmp_path):
    session, _ = run_one(tmp_path, [(0x00080032, "TM", b"0930")], "time", "AcquisitionTime")
    assert session["fields"] == {"f": "09:30:00"}


def test_nul_and_garbage_after_date(tmp_path):
    elements = [(0x00080020, "DA", b"20180702\x00\x8f\xfe\x12\x07")]
    session, _ = run_one(tmp_path, elements, "date", "StudyDate")
    assert session["fields"] == {"f": "2018-07-02"}
    assert kinds(session) == ["repaired"]


def test_garbage_with_backslash(tmp_path):
    # A backslash inside the garbage must not turn it into a second value.
    elements = [(0x00080020, "DA", b"20180702\x00\x8f\\\x12\x07 ")]
    session, _ = run_one(tmp_path, elements, "date", "StudyDate")
    assert session["fields"] == {"f": "2018-07-02"}
    assert kinds(session) == ["repaired"]


def test_datetime_with_offset(tmp_path):
    elements = [(0x0008002A, "DT", b"20211207145718.123000+0100")]
    session, _ = run_one(tmp_path, elements, "datetime", "AcquisitionDateTime")
    assert session["fields"] == {"f": "2021-12-07T14:57:18.123+01:00"}


def test_date_of_datetime(tmp_path):
    elements = [(0x0008002A, "DT", b"20211207145718.123000+0100")]
    session, _ = run_one(tmp_path, elements, "date", "AcquisitionDateTime")
    assert session["fields"] == {"f": "2021-12-07"}


def test_unknown_charset_latin1(tmp_path):
    elements = [(0x00080005, "CS", b"Not Supplied"),
                (0x00100010, "PN", "Müller^Hans".encode("latin-1"))]
    session, _ = run_one(tmp_path, elements, "string", "PatientName")
    assert session["fields"] == {"f": "Müller^Hans"}
    assert kinds(session) == ["repaired"]
    assert "character set" in session["problems"][0]["detail"]


def test_nul_in_charset(tmp_path):
    elements = [(0x00080005, "CS", b"\x00ISO_IR 100"), (0x00100010, "PN", b"Doe^John")]
    session, _ = run_one(tmp_path, elements, "string", "PatientName")
    assert session["fields"] == {"f": "Doe^John"}
    assert session["problems"] == []


def test_nul_in_charset_non_ascii(tmp_path):
    elements = [(0x00080005, "CS", b"\x00ISO_IR 100"),
                (0x00100010, "PN", "Doe^Jörg".encode("latin-1"))]
    session, _ = run_one(tmp_path, elements, "string", "PatientName")
    assert session["fields"] == {"f": "Doe^Jörg"}
    assert kinds(session) == ["repaired"]


def test_nul_pad(tmp_path):
    session, _ = run_one(tmp_path, [(0x00101030, "DS", b"0\x00")], "float", "PatientWeight")
    assert session["fields"] == {"f": "0.0"}
    assert session["problems"] == []


def test_private_creator_implicit(tmp_path):
    elements = [(0x00190010, "LO", b"ACME_CUSTOM "), (0x00191001, "DS", b"3.5 ")]
    session, _ = run_one(tmp_path, elements, "float", '(0019,"ACME_CUSTOM",01)', implicit=True)
    assert session["fields"] == {"f": "3.5"}


def test_private_block_moved(tmp_path):
    elements = [(0x00190010, "LO", b"OTHER VENDOR"), (0x00191001, "DS", b"9.9 "),
                (0x00190011, "LO", b"ACME_CUSTOM "), (0x00191101, "DS", b"3.5 ")]
    session, _ = run_one(tmp_path, elements, "float", '(0019,"ACME_CUSTOM",01)', implicit=True)
    assert session["fields"] == {"f": "3.5"}


def _sequence(tag: int, items: list[bytes]) -> tuple[int, str, bytes]:
    body = b"".join(struct.pack("<HHL", 0xFFFE, 0xE000, len(item)) + item for item in items)
    return (tag, "SQ", body)


def test_enhanced_shared_groups(tmp_path):
    timing = _sequence(0x00189112, [dataset_bytes([(0x00180080, "DS", b"3516")], identity=False)])
    shared = _sequence(0x52009229, [dataset_bytes([timing], identity=False)])
    session, _ = run_one(tmp_path, [shared], "float", "RepetitionTime")
    assert session["fields"] == {"f": "3516.0"}


def test_value_index_past_end(tmp_path):
    session, _ = run_one(tmp_path, [(0x00280030, "DS", b"0.5")], "float", "PixelSpacing[1]")
    assert session["fields"] == {}
    assert kinds(session) == ["missing"]


def test_value_index(tmp_path):
    session, _ = run_one(tmp_path, [(0x00280030, "DS", b"0.5\\0.7")], "float", "PixelSpacing[1]")
    assert session["fields"] == {"f": "0.7"}


def test_nan(tmp_path):
    elements = [(0x00180087, "DS", b"NaN ")]
    session, _ = run_one(tmp_path, elements, "float", "MagneticFieldStrength")
    assert session["fields"] == {}
    assert kinds(session) == ["invalid"]


def test_boolean_y(tmp_path):
    session, _ = run_one(tmp_path, [(0x00102000, "LO", b"Y ")], "boolean", "MedicalAlerts")
    assert session["fields"] == {"f": "true"}


def test_scan_conflict(tmp_path):
    paths = []
    for number in range(1, 4):
        uid = f"1.2.826.0.1.3680043.8.498.1.1.{number}".encode()
        elements = [(0x00080018, "UI", uid), (0x00200013, "IS", str(number).encode())]
        paths.append(write_dicom(tmp_path / f"{number}.dcm", elements))
    output = extract_paths([rule("string", "SOPInstanceUID", SCAN)], paths)
    session = output["sessions"][0]
    assert session["scans"][0]["parameters"] == {}
    conflict = session["problems"][0]
    assert conflict["kind"] == "conflict"
    assert len(conflict["values"]) == 3
    assert conflict["scanId"] == "4"


@pytest.mark.parametrize("absent", [1, 2, 3])
def test_tag_absent_in_one_file(tmp_path, absent):
    paths = []
    for number in range(1, 4):
        elements = [(0x00200013, "IS", str(number).encode())]
        if number != absent:
            elements.append((0x0008103E, "LO", b"t1_mprage"))
        paths.append(write_dicom(tmp_path / f"{number}.dcm", elements))
    output = extract_paths([rule("string", "SeriesDescription", SCAN)], paths)
    session = output["sessions"][0]
    assert session["scans"][0]["parameters"] == {"f": "t1_mprage"}
    assert session["problems"] == []


def test_zip_with_text_file(tmp_path):
    archive = tmp_path / "upload.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as output:
        for number in range(1, 4):
            path = write_dicom(tmp_path / f"{number}.dcm", [(0x00101030, "DS", b"68")])
            output.write(path, f"series/{number}.dcm")
        output.writestr("series/x.dcm", "this is a text file, not DICOM\n")
    result = extract_paths([rule("float", "PatientWeight")], [archive])
    assert result["sessions"][0]["fields"] == {"f": "68.0"}
    assert result["sessions"][0]["scans"][0]["fileCount"] == 3
    assert [entry["path"] for entry in result["unreadable"]] == [f"{archive}/series/x.dcm"]


def test_stray_byte_without_preamble(tmp_path):
    path = tmp_path / "stray.dcm"
    path.write_bytes(b"\x00" + dataset_bytes([(0x00080005, "CS", b"ISO_IR 100"),
                                               (0x00101030, "DS", b"68")]))
    result = extract_paths([rule("float", "PatientWeight")], [path])
    assert result["sessions"] == []
    assert [entry["path"] for entry in result["unreadable"]] == [str(path)]
    assert "not a DICOM file" in result["unreadable"][0]["reason"]


def test_no_preamble_is_read(tmp_path):
    path = tmp_path / "bare.dcm"
    path.write_bytes(dataset_bytes([(0x00080005, "CS", b"ISO_IR 100"),
                                    (0x00101030, "DS", b"68")]))
    result = extract_paths([rule("float", "PatientWeight")], [path])
    assert result["unreadable"] == []
    assert result["sessions"][0]["fields"] == {"f": "68.0"}
