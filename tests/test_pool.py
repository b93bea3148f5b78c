"""Parallel extraction: worker processes give the serial result, and run only when requested or when they pay."""

from __future__ import annotations

import logging
import shutil
from concurrent.futures.process import BrokenProcessPool

import pydicom
import pytest

from conftest import testdata as real_file
from xnat_dicom_mappings import config, extractor, pool
from xnat_dicom_mappings.extractor import ScanInput, extract_session
from xnat_dicom_mappings.rules import Rule

MR_SESSION = "xnat:mrSessionData"
MR_SCAN = "xnat:mrScanData"
CT_SCAN = "xnat:ctScanData"


def rule(name, field_type, tag, element=MR_SCAN, **options) -> Rule:
    return Rule(scope="Site", field_name=name, field_type=field_type, dicom_tag=tag,
                schema_element=element, **options)


RULES = [
    rule("weight", "float", "PatientWeight", MR_SESSION),
    rule("model", "string", "ManufacturerModelName", MR_SESSION),
    rule("instance", "integer", "InstanceNumber", MR_SESSION, conflict_policy="last"),
    rule("position", "string", "ImagePositionPatient", MR_SESSION),
    rule("tr", "float", "RepetitionTime"),
    rule("spacing", "float", "PixelSpacing[1]"),
    rule("name", "integer", "PatientName"),
    rule("absent", "string", "0x00181312"),
    rule("cells", "float", '(0019,"GEMS_ACQU_01",03)', CT_SCAN),
    rule("ipp", "string", "ImagePositionPatient", CT_SCAN),
    rule("ps", "float", "PixelSpacing[0]", CT_SCAN),
]


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """A session of copies of real files: two MR scans, one CT scan with a multi-frame file, one bad file."""
    folder = tmp_path_factory.mktemp("session")
    template = pydicom.dcmread(real_file("MR_small.dcm"))
    mr_files = []
    for number in range(1, 25):
        template.InstanceNumber = number
        template.ImagePositionPatient = [0, 0, number * 1.5]
        template.SOPInstanceUID = f"1.2.826.0.1.3680043.8.498.{number}"
        if number == 20:
            template.RepetitionTime = "4100"
        path = folder / f"mr{number:02d}.dcm"
        template.save_as(path)
        mr_files.append(str(path))

    ct_files = []
    for number, name in enumerate(("CT_small.dcm", "eCT_Supplemental.dcm", "CT_small.dcm")):
        path = folder / f"ct{number}.dcm"
        shutil.copy(real_file(name), path)
        ct_files.append(str(path))
    bad = folder / "not-dicom.dcm"
    bad.write_bytes(b"this is not a DICOM file" * 10)
    ct_files.append(str(bad))

    return [ScanInput("1", MR_SCAN, mr_files[:12]), ScanInput("2", MR_SCAN, mr_files[12:]),
            ScanInput("3", CT_SCAN, ct_files)]


def extract(scans, **options):
    return extract_session(RULES, session_type=MR_SESSION, scans=scans, project="P",
                           session_id="S1", **options)


@pytest.fixture
def pool_calls(monkeypatch):
    """Record the pool sizes that the extractor requests, on a machine that seems to have 4 CPUs."""
    calls = []
    original = pool.look_up_in_pool

    def recording(tasks, path_sets, instance_number, workers):
        calls.append((len(tasks), workers))
        return original(tasks, path_sets, instance_number, workers)

    monkeypatch.setattr(pool, "look_up_in_pool", recording)
    monkeypatch.setattr(pool, "usable_cpus", lambda: 4)
    return calls


def test_parallel_equals_serial(session, caplog):
    serial = extract(session, workers=1)
    with caplog.at_level(logging.ERROR, logger="xnat_dicom_mappings.extractor"):
        parallel = extract(session, workers=2)
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert errors == []  # the pool worked, with no fallback to a serial read
    assert parallel.to_json() == serial.to_json()
    assert parallel.values == serial.values
    assert parallel.parameter_values == serial.parameter_values
    assert parallel.problems == serial.problems
    assert parallel.unreadable == serial.unreadable


def test_parallel_result_is_not_empty(session):
    result = extract(session, workers=2)
    assert result.parameters["1"]["tr"] == "4000.0"
    assert result.parameters["3"]["cells"] == "373.75"
    kinds = {problem.kind for problem in result.problems}
    assert kinds == {"conflict", "invalid", "missing", "unreadable"}


def test_parallel_with_mixed_sources(session):
    """A Dataset among the paths is read in this process, in its place in the scan."""
    mixed = list(session)
    files = list(mixed[0].files)
    files[3] = pydicom.dcmread(files[3])
    mixed[0] = ScanInput("1", MR_SCAN, files)
    assert extract(mixed, workers=2).to_json() == extract(mixed, workers=1).to_json()


def test_threshold_respected(session, pool_calls):
    path_files = sum(len(scan.files) for scan in session)
    extract(session, parallel_min_files=path_files + 1)
    assert pool_calls == []
    extract(session, parallel_min_files=path_files)
    assert pool_calls == [(path_files, 4)]


def test_default_threshold(session, pool_calls):
    extract(session)
    assert pool_calls == []
    assert extractor.PARALLEL_MIN_FILES > sum(len(scan.files) for scan in session)


def test_workers_one_forces_serial(session, pool_calls):
    extract(session, workers=1, parallel_min_files=0)
    assert pool_calls == []


def test_one_cpu_stays_serial(session, pool_calls, monkeypatch):
    monkeypatch.setattr(pool, "usable_cpus", lambda: 1)
    extract(session, parallel_min_files=0)
    assert pool_calls == []


def test_datasets_stay_serial(session, pool_calls):
    datasets = [ScanInput("1", MR_SCAN, [pydicom.dcmread(path) for path in session[0].files])]
    extract(datasets, parallel_min_files=0)
    assert pool_calls == []


def test_broken_pool_falls_back(session, monkeypatch, caplog):
    def broken(*arguments):
        raise BrokenProcessPool("a worker process was killed")

    monkeypatch.setattr(pool, "look_up_in_pool", broken)
    with caplog.at_level(logging.ERROR, logger="xnat_dicom_mappings.extractor"):
        result = extract(session, workers=2)
    assert result.to_json() == extract(session, workers=1).to_json()
    assert "killed" in caplog.text


@pytest.mark.parametrize("options", [{"workers": 0}, {"workers": 1.5}, {"workers": True},
                                     {"parallel_min_files": -1}])
def test_bad_pool_options_raise(options):
    with pytest.raises(ValueError, match="must be"):
        extract([], **options)


def test_pool_survives_calls(session):
    extract(session, workers=2)
    first = pool.get_pool(2)
    extract(session, workers=2)
    assert pool.get_pool(2) is first


def test_shutdown_pool_starts_again(session):
    extract(session, workers=2)
    pool.shutdown_pool()
    assert extract(session, workers=2).to_json() == extract(session, workers=1).to_json()


def test_config_default_matches_extractor():
    assert config.DICOM_MAPPINGS_PARALLEL_MIN_FILES == extractor.PARALLEL_MIN_FILES


def test_start_method_never_forks():
    assert pool.start_method() in ("forkserver", "spawn")
