"""The xnat-dicom-mappings command line, in process and as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import testdata as real_file
from xnat_dicom_mappings.cli import main

ROOT = Path(__file__).resolve().parent.parent

RULES = [
    {"scope": "Site", "fieldName": "weight", "fieldType": "float", "dicomTag": "PatientWeight",
     "schemaElement": "xnat:mrSessionData"},
    {"scope": "Site", "fieldName": "spacing", "fieldType": "string", "dicomTag": "0x00280030",
     "schemaElement": "xnat:mrScanData"},
]


def write_rules(tmp_path, rules) -> str:
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(rules))
    return str(path)


def test_extract_prints_json(tmp_path, capsys):
    status = main(["extract", "--mappings", write_rules(tmp_path, RULES), real_file("MR_small.dcm")])
    output = json.loads(capsys.readouterr().out)
    assert status == 0
    assert output["sessions"][0]["fields"] == {"weight": "80.0"}
    assert output["sessions"][0]["scans"][0]["parameters"] == {"spacing": "0.3125\\0.3125"}


def test_problems_still_exit_zero(tmp_path, capsys):
    junk = tmp_path / "junk.dcm"
    junk.write_text("not dicom")
    status = main(["extract", "--mappings", write_rules(tmp_path, RULES), str(junk)])
    assert status == 0
    assert json.loads(capsys.readouterr().out)["unreadable"][0]["path"] == str(junk)


@pytest.mark.parametrize(("change", "message"), [
    ({"fieldType": "double"}, "fieldType 'double' is not valid"),
    ({"dicomTag": "PatientWieght"}, "rule 1 (weight)"),
    ({"scope": "Galaxy"}, "scope 'Galaxy' is not valid"),
    ({"schemaElement": "xnat:imageSessionData"}, "abstract type"),
    ({"conflictPolicy": "median"}, "conflictPolicy 'median'"),
])
def test_invalid_rule_rejected(tmp_path, capsys, change, message):
    rules = [dict(RULES[0], **change)]
    status = main(["extract", "--mappings", write_rules(tmp_path, rules), real_file("MR_small.dcm")])
    assert status == 2
    assert message in capsys.readouterr().err


def test_export_bundle_accepted(tmp_path, capsys):
    bundle = {"format": "xnat-dicom-mappings", "version": 1, "rules": RULES}
    status = main(["extract", "--mappings", write_rules(tmp_path, bundle), real_file("MR_small.dcm")])
    assert status == 0
    assert json.loads(capsys.readouterr().out)["sessions"][0]["fields"] == {"weight": "80.0"}


def test_single_rule_object_rejected(tmp_path, capsys):
    status = main(["extract", "--mappings", write_rules(tmp_path, RULES[0]), real_file("MR_small.dcm")])
    assert status == 2
    assert "must contain a JSON array of rules" in capsys.readouterr().err


def test_rules_not_json(tmp_path, capsys):
    path = tmp_path / "rules.json"
    path.write_text("[{")
    assert main(["extract", "--mappings", str(path), real_file("MR_small.dcm")]) == 2
    assert "not valid JSON" in capsys.readouterr().err


def test_rules_file_missing(tmp_path, capsys):
    assert main(["extract", "--mappings", str(tmp_path / "none.json"), "x"]) == 2
    assert "cannot read the rules file" in capsys.readouterr().err


def test_path_missing(tmp_path, capsys):
    status = main(["extract", "--mappings", write_rules(tmp_path, RULES), str(tmp_path / "no")])
    assert status == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_no_paths_is_usage_error(tmp_path):
    with pytest.raises(SystemExit) as raised:
        main(["extract", "--mappings", write_rules(tmp_path, RULES)])
    assert raised.value.code == 2


def test_subprocess(tmp_path):
    environment = dict(os.environ, PYTHONPATH=str(ROOT))
    completed = subprocess.run(
        [sys.executable, "-m", "xnat_dicom_mappings.cli", "extract", "--mappings",
         write_rules(tmp_path, RULES), "--project", "P1", real_file("MR_small.dcm"),
         real_file("CT_small.dcm")],
        capture_output=True, text=True, env=environment, cwd=tmp_path, timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    output = json.loads(completed.stdout)
    assert len(output["sessions"]) == 2
    assert {session["project"] for session in output["sessions"]} == {"P1"}


def test_subprocess_bad_rules(tmp_path):
    environment = dict(os.environ, PYTHONPATH=str(ROOT))
    completed = subprocess.run(
        [sys.executable, "-m", "xnat_dicom_mappings.cli", "extract", "--mappings",
         write_rules(tmp_path, [dict(RULES[0], fieldType="double")]), real_file("MR_small.dcm")],
        capture_output=True, text=True, env=environment, cwd=tmp_path, timeout=60,
    )
    assert completed.returncode == 2
    assert "fieldType 'double' is not valid" in completed.stderr
