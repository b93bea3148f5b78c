"""Grouping files, folders and zips into sessions and scans, and the CLI JSON."""

from __future__ import annotations

import io
import shutil
import zipfile

import pytest

from conftest import testdata as real_file
from dicom_bytes import write_dicom
from xnat_dicom_mappings.grouping import (UnsafeArchive, UploadTooLarge, assign_scan_ids,
                                          extract_paths, extract_uploads)
from xnat_dicom_mappings.rules import Rule


def rule(name, field_type, tag, element) -> Rule:
    return Rule(scope="Site", field_name=name, field_type=field_type, dicom_tag=tag,
                schema_element=element)


RULES = [rule("weight", "float", "PatientWeight", "xnat:mrSessionData"),
         rule("spacing", "string", "PixelSpacing", "xnat:mrScanData"),
         rule("kvp", "float", "KVP", "xnat:ctScanData")]


def test_real_files_json():
    output = extract_paths(RULES, [real_file("MR_small.dcm"), real_file("CT_small.dcm")])
    by_type = {session["xsiType"]: session for session in output["sessions"]}
    mr = by_type["xnat:mrSessionData"]
    assert mr["studyInstanceUid"] == "1.3.6.1.4.1.5962.1.2.4.20040826185059.5457"
    assert mr["fields"] == {"weight": "80.0"}
    assert mr["scans"][0]["id"] == "1"
    assert mr["scans"][0]["xsiType"] == "xnat:mrScanData"
    assert mr["scans"][0]["parameters"] == {"spacing": "0.3125\\0.3125"}
    assert by_type["xnat:ctSessionData"]["scans"][0]["parameters"] == {"kvp": "120.0"}
    assert output["unreadable"] == []


def test_folder_recursive(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    shutil.copy(real_file("MR_small.dcm"), tmp_path / "a" / "b" / "1.dcm")
    shutil.copy(real_file("zipMR.gz"), tmp_path / "a" / "2.gz")
    (tmp_path / "a" / "README").write_text("not dicom")
    output = extract_paths(RULES, [tmp_path])
    assert output["sessions"][0]["scans"][0]["fileCount"] == 2
    assert [entry["path"] for entry in output["unreadable"]] == [str(tmp_path / "a" / "README")]


def test_session_type_override():
    output = extract_paths(RULES, [real_file("MR_small.dcm")], session_type="xnat:petmrSessionData")
    assert output["sessions"][0]["xsiType"] == "xnat:petmrSessionData"
    assert output["sessions"][0]["fields"] == {}


def test_pet_wins_over_ct(tmp_path):
    pet = write_dicom(tmp_path / "pt.dcm", [], modality="PT", series_number="2",
                      series_uid="1.2.3.2")
    ct = write_dicom(tmp_path / "ct.dcm", [], modality="CT", series_number="1",
                     series_uid="1.2.3.1")
    session = extract_paths([], [pet, ct])["sessions"][0]
    assert session["xsiType"] == "xnat:petSessionData"
    assert [scan["xsiType"] for scan in session["scans"]] == ["xnat:ctScanData", "xnat:petScanData"]


def test_secondary_capture_types(tmp_path):
    path = write_dicom(tmp_path / "sc.dcm", [], modality="SC")
    session = extract_paths([], [path])["sessions"][0]
    assert session["xsiType"] == "xnat:otherDicomSessionData"
    assert session["scans"][0]["xsiType"] == "xnat:scScanData"


def test_scan_id_fallbacks():
    ids = assign_scan_ids({"1.1": "3", "1.2": "3", "1.3": None, "1.4": "007"})
    assert ids == {"1.1": "3-1", "1.2": "3-2", "1.3": "8", "1.4": "7"}


def test_sessions_split_by_study(tmp_path):
    first = write_dicom(tmp_path / "a.dcm", [], study_uid="1.2.3")
    second = write_dicom(tmp_path / "b.dcm", [], study_uid="1.2.4")
    output = extract_paths([], [first, second])
    assert [session["studyInstanceUid"] for session in output["sessions"]] == ["1.2.3", "1.2.4"]


def test_project_in_json():
    output = extract_paths(RULES, [real_file("MR_small.dcm")], project="P1")
    assert output["sessions"][0]["project"] == "P1"


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_uploads_files_and_zip():
    mr = open(real_file("MR_small.dcm"), "rb").read()
    ct = open(real_file("CT_small.dcm"), "rb").read()
    uploads = [("mr.dcm", mr), ("more.zip", _zip_bytes({"ct/1.dcm": ct, "notes.txt": b"hi"}))]
    output = extract_uploads(RULES, uploads)
    assert len(output["sessions"]) == 2
    assert [entry["path"] for entry in output["unreadable"]] == ["more.zip/notes.txt"]


def test_uploads_file_limit():
    mr = open(real_file("MR_small.dcm"), "rb").read()
    with pytest.raises(UploadTooLarge, match="more than 1 files"):
        extract_uploads(RULES, [("a.dcm", mr), ("b.dcm", mr)], max_files=1)


def test_uploads_byte_limit():
    mr = open(real_file("MR_small.dcm"), "rb").read()
    with pytest.raises(UploadTooLarge, match="bytes"):
        extract_uploads(RULES, [("a.dcm", mr)], max_bytes=1000)


def test_zip_path_escape_rejected():
    data = _zip_bytes({"../../etc/evil.dcm": b"x"})
    with pytest.raises(UnsafeArchive, match="leaves the archive"):
        extract_uploads(RULES, [("evil.zip", data)])


def test_zip_bomb_rejected():
    data = _zip_bytes({"zeros.dcm": b"\x00" * (20 * 1024 * 1024)})
    with pytest.raises(UnsafeArchive, match="zip bomb"):
        extract_uploads(RULES, [("bomb.zip", data)])


def test_zip_bomb_path_listed_unreadable(tmp_path):
    path = tmp_path / "bomb.zip"
    path.write_bytes(_zip_bytes({"zeros.dcm": b"\x00" * (20 * 1024 * 1024)}))
    output = extract_paths(RULES, [path])
    assert output["sessions"] == []
    assert "zip bomb" in output["unreadable"][0]["reason"]
