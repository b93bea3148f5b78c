"""extract_session: rule selection, combining across files, policies and problems."""

from __future__ import annotations

import logging

import pydicom
import pytest

from conftest import testdata as real_file
from dicom_bytes import write_dicom
from xnat_dicom_mappings.extractor import ExtractionResult, Problem, ScanInput, extract_session
from xnat_dicom_mappings.rules import Rule

MR_SESSION = "xnat:mrSessionData"
MR_SCAN = "xnat:mrScanData"


def rule(name, field_type, tag, element=MR_SCAN, **options) -> Rule:
    return Rule(scope=options.pop("scope", "Site"), field_name=name, field_type=field_type,
                dicom_tag=tag, schema_element=element, **options)


def three_files(tmp_path, values, tag=0x00180080, vr="DS"):
    paths = []
    for number, value in enumerate(values, 1):
        elements = [(0x00200013, "IS", str(4 - number).encode())]
        if value is not None:
            elements.append((tag, vr, value))
        paths.append(write_dicom(tmp_path / f"f{number}.dcm", elements))
    return paths


def test_real_mr_session_and_scan():
    rules = [rule("weight", "float", "PatientWeight", MR_SESSION),
             rule("spacing", "string", "PixelSpacing"), rule("tr", "float", "RepetitionTime")]
    scan = ScanInput("1", MR_SCAN, [real_file("MR_small.dcm")])
    result = extract_session(rules, session_type=MR_SESSION, scans=[scan], session_id="S1")
    assert result.fields == {"weight": "80.0"}
    assert result.values == {"weight": 80.0}
    assert result.parameters == {"1": {"spacing": "0.3125\\0.3125", "tr": "4000.0"}}
    assert result.problems == []


def test_real_ct_private_tag():
    rules = [rule("cells", "float", '(0019,"GEMS_ACQU_01",03)', "xnat:ctScanData")]
    scan = ScanInput("1", "xnat:ctScanData", [real_file("CT_small.dcm")])
    result = extract_session(rules, session_type="xnat:ctSessionData", scans=[scan])
    assert result.parameters == {"1": {"cells": "373.75"}}


def test_dataset_input():
    dataset = pydicom.dcmread(real_file("MR_small.dcm"))
    scan = ScanInput("1", MR_SCAN, [dataset])
    result = extract_session([rule("tr", "float", "RepetitionTime")], session_type=MR_SESSION,
                             scans=[scan])
    assert result.parameters == {"1": {"tr": "4000.0"}}


def test_exact_schema_element():
    rules = [rule("tr", "float", "RepetitionTime", "xnat:imageScanData"),
             rule("w", "float", "PatientWeight", "xnat:ctSessionData")]
    scan = ScanInput("1", MR_SCAN, [real_file("MR_small.dcm")])
    result = extract_session(rules, session_type=MR_SESSION, scans=[scan])
    assert result.fields == {}
    assert result.parameters == {}


def test_project_rule_replaces_site_rule():
    rules = [rule("tr", "float", "RepetitionTime"),
             rule("tr", "string", "EchoTime", scope="Project", scope_object_id="P1")]
    scan = ScanInput("1", MR_SCAN, [real_file("MR_small.dcm")])
    with_project = extract_session(rules, session_type=MR_SESSION, scans=[scan], project="P1")
    without = extract_session(rules, session_type=MR_SESSION, scans=[scan])
    assert with_project.parameters == {"1": {"tr": "240.0000"}}
    assert without.parameters == {"1": {"tr": "4000.0"}}


def test_session_combines_over_scans(tmp_path):
    first = write_dicom(tmp_path / "a.dcm", [(0x00101030, "DS", b"68")])
    second = write_dicom(tmp_path / "b.dcm", [(0x00101030, "DS", b"68.0")], series_number="5")
    scans = [ScanInput("4", MR_SCAN, [first]), ScanInput("5", MR_SCAN, [second])]
    result = extract_session([rule("w", "float", "PatientWeight", MR_SESSION)],
                             session_type=MR_SESSION, scans=scans)
    assert result.fields == {"w": "68.0"}


@pytest.mark.parametrize(("policy", "expected"), [
    ("first", "30.0"), ("last", "10.0"), ("min", "10.0"), ("max", "30.0"),
    ("all", "30.0\\20.0\\10.0"),
])
def test_conflict_policies(tmp_path, policy, expected):
    paths = three_files(tmp_path, [b"10", b"20", b"30"])
    scan = ScanInput("4", MR_SCAN, paths)
    result = extract_session([rule("tr", "float", "RepetitionTime", conflict_policy=policy)],
                             session_type=MR_SESSION, scans=[scan])
    assert result.parameters == {"4": {"tr": expected}}


def test_unique_conflict_counts(tmp_path):
    paths = three_files(tmp_path, [b"10", b"10.0", b"30"])
    scan = ScanInput("4", MR_SCAN, paths)
    result = extract_session([rule("tr", "float", "RepetitionTime")], session_type=MR_SESSION,
                             scans=[scan])
    assert result.parameters == {}
    problem = result.problems[0]
    assert problem.kind == "conflict"
    assert set(problem.values) == {"10.0", "30.0"}
    assert "in 2 files" in problem.detail
    assert len(problem.files) == 3


def test_missing_everywhere(tmp_path):
    paths = three_files(tmp_path, [None, None, None])
    result = extract_session([rule("tr", "float", "RepetitionTime")], session_type=MR_SESSION,
                             scans=[ScanInput("4", MR_SCAN, paths)])
    assert [p.kind for p in result.problems] == ["missing"]
    assert result.problems[0].scan_id == "4"


def test_invalid_file_does_not_hide_others(tmp_path):
    paths = three_files(tmp_path, [b"10", b"abc", b"10"])
    result = extract_session([rule("tr", "float", "RepetitionTime")], session_type=MR_SESSION,
                             scans=[ScanInput("4", MR_SCAN, paths)])
    assert result.parameters == {"4": {"tr": "10.0"}}
    assert [p.kind for p in result.problems] == ["invalid"]
    assert result.problems[0].values == ("abc ",)  # raw, with the padding space


def test_unreadable_file_reported(tmp_path):
    good = write_dicom(tmp_path / "a.dcm", [(0x00180080, "DS", b"10")])
    bad = tmp_path / "b.dcm"
    bad.write_bytes(b"garbage that is not DICOM at all")
    result = extract_session([rule("tr", "float", "RepetitionTime")], session_type=MR_SESSION,
                             scans=[ScanInput("4", MR_SCAN, [good, str(bad)])])
    assert result.parameters == {"4": {"tr": "10.0"}}
    assert result.unreadable[0]["path"] == str(bad)
    assert [p.kind for p in result.problems] == ["unreadable"]


def test_bad_rule_tag_is_problem():
    scan = ScanInput("1", MR_SCAN, [real_file("MR_small.dcm")])
    result = extract_session([rule("x", "float", "NoSuchKeyword")], session_type=MR_SESSION,
                             scans=[scan])
    assert result.problems[0].kind == "invalid"
    assert "NoSuchKeyword" in result.problems[0].detail


def test_per_frame_conflict_real_file():
    scan = ScanInput("3", "xnat:ctScanData", [real_file("eCT_Supplemental.dcm")])
    rules = [rule("ipp", "string", "ImagePositionPatient", "xnat:ctScanData"),
             rule("ps", "float", "PixelSpacing[0]", "xnat:ctScanData")]
    result = extract_session(rules, session_type="xnat:ctSessionData", scans=[scan])
    assert result.parameters == {"3": {"ps": "0.388672"}}
    assert [p.kind for p in result.problems] == ["conflict"]
    assert "frame" in result.problems[0].detail


def test_logs_summary_and_problems(tmp_path, caplog):
    paths = three_files(tmp_path, [b"10", b"20", b"30"])
    with caplog.at_level(logging.INFO, logger="xnat_dicom_mappings.extractor"):
        extract_session([rule("tr", "float", "RepetitionTime")], session_type=MR_SESSION,
                        scans=[ScanInput("4", MR_SCAN, paths)], session_id="XNAT_E00001")
    levels = [(record.levelname, "XNAT_E00001" in record.getMessage()) for record in caplog.records]
    assert levels == [("INFO", True), ("WARNING", True)]


def test_to_json_keys():
    problem = Problem("scan", "4", "tr", "0x00180080", "missing", "no value", (), ())
    result = ExtractionResult(fields={"a": "1"}, problems=[problem], session_id="S")
    data = result.to_json()
    assert data["fields"] == {"a": "1"}
    assert list(data["problems"][0]) == ["level", "scanId", "fieldName", "dicomTag", "kind",
                                         "detail", "values", "files"]


def test_each_file_read_once(tmp_path, monkeypatch):
    from xnat_dicom_mappings import extractor

    calls = []
    original = extractor.read_header
    monkeypatch.setattr(extractor, "read_header",
                        lambda source, *args, **kwargs: calls.append(source) or original(source, *args, **kwargs))
    paths = three_files(tmp_path, [b"10", b"10", b"10"])
    rules = [rule("tr", "float", "RepetitionTime"), rule("d", "string", "RepetitionTime", MR_SESSION)]
    extract_session(rules, session_type=MR_SESSION, scans=[ScanInput("4", MR_SCAN, paths)])
    assert sorted(calls) == sorted(paths)


@pytest.mark.parametrize(("arguments", "error"), [
    ({"rules": "x", "session_type": MR_SESSION, "scans": []}, TypeError),
    ({"rules": [], "session_type": None, "scans": []}, TypeError),
    ({"rules": [], "session_type": MR_SESSION, "scans": ["a.dcm"]}, TypeError),
    ({"rules": [], "session_type": MR_SESSION,
      "scans": [ScanInput("1", MR_SCAN, []), ScanInput("1", MR_SCAN, [])]}, ValueError),
    ({"rules": [], "session_type": MR_SESSION, "scans": [ScanInput("1", MR_SCAN, "a.dcm")]},
     TypeError),
])
def test_misuse_raises(arguments, error):
    rules = arguments.pop("rules")
    with pytest.raises(error):
        extract_session(rules, **arguments)
