"""Extraction benchmarks: the plugin against plain pydicom and plain file reads.

Every measurement here times whole sessions, and the variants of one
measurement run interleaved in the same rounds (see :mod:`.timing`), so the
ratios between them are what the report trusts. Ratios use CPU time, because
every variant here runs in this one process. The files are read once before
timing starts, so every variant reads from the page cache.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pydicom

from xnat_dicom_mappings.rules import Rule

from .generate import SIEMENS_MR_HEADER, SeriesSpec, SessionFiles
from .rules import SCAN_TYPE, SESSION_TYPE, scaled_rules, standard_rules
from .timing import Timing, interleaved_medians

Groups = list[tuple[SeriesSpec, list[Path]]]


@dataclass
class Throughput:
    """Times per session of each variant on the same files, and what the plugin found."""

    file_count: int
    seconds: dict[str, Timing]
    fields_found: int = 0
    fields_expected: int = 0
    problems: list[str] = field(default_factory=list)

    def cpu(self, name: str) -> float:
        return self.seconds[name].cpu

    def files_per_second(self, name: str) -> float:
        return self.file_count / self.cpu(name)

    def ratio(self, slower: str, faster: str) -> float:
        """Return how many times faster ``faster`` is than ``slower``, in CPU time."""
        return self.cpu(slower) / self.cpu(faster)


def scan_inputs(groups: Groups, files_of: Callable[[list[Path]], list] = list) -> list:
    """Return one ``ScanInput`` per series; ``files_of`` turns its paths into the scan's files."""
    from xnat_dicom_mappings.extractor import ScanInput

    return [
        ScanInput(
            id=spec.scan_id,
            xsi_type=SCAN_TYPE,
            files=files_of(paths),
            series_instance_uid=spec.series_instance_uid,
        )
        for spec, paths in groups
    ]


def extract(rules: list[Rule], groups: Groups, files_of: Callable[[list[Path]], list] = list,
            workers: int | None = 1):
    """Run the plugin's extraction over one session and return its ``ExtractionResult``.

    ``workers`` is passed to ``extract_session``. The default, 1, reads every
    file in this process, so that its CPU time is the whole cost. Only the
    parallel measurement requests worker processes.
    """
    from xnat_dicom_mappings.extractor import extract_session

    return extract_session(
        rules,
        session_type=SESSION_TYPE,
        scans=scan_inputs(groups, files_of),
        project="BENCH",
        session_id="BENCH_E00001",
        workers=workers,
    )


def all_paths(groups: Groups) -> list[Path]:
    return [path for _, paths in groups for path in paths]


def read_whole_files(groups: Groups) -> None:
    """Baseline (a): ``dcmread`` of every file, pixel data included."""
    for path in all_paths(groups):
        pydicom.dcmread(path)


def read_standard_attributes(ds: pydicom.Dataset) -> list:
    """Return the values that the ten standard rules map, read the usual pydicom way."""
    return [
        ds.PatientWeight,
        ds.ManufacturerModelName,
        ds.MagneticFieldStrength,
        ds.StudyDescription,
        ds.StationName,
        ds.RepetitionTime,
        ds.EchoTime,
        ds.FlipAngle,
        ds.private_block(0x0019, SIEMENS_MR_HEADER)[0x0C].value,
        ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing,
    ]


def read_headers_and_attributes(groups: Groups) -> None:
    """Baseline (b): ``dcmread(stop_before_pixels=True)`` of every file, then its ten values."""
    for path in all_paths(groups):
        read_standard_attributes(pydicom.dcmread(path, stop_before_pixels=True))


def read_bytes(groups: Groups) -> None:
    """Baseline (c), the I/O floor: every file's bytes, nothing parsed."""
    for path in all_paths(groups):
        with open(path, "rb") as file:
            file.read()


def check_result(result, rules: list[Rule], groups: Groups) -> tuple[int, int, list[str]]:
    """Count the fields the plugin filled against those the rules ask for, and list its problems.

    A benchmark of an extractor that silently finds nothing would be fast and
    worthless, so the report shows this count next to the times.
    """
    session_rules = [rule for rule in rules if rule.schema_element == SESSION_TYPE]
    scan_rules = [rule for rule in rules if rule.schema_element == SCAN_TYPE]
    expected = len({rule.field_name for rule in session_rules})
    expected += len(groups) * len({rule.field_name for rule in scan_rules})

    found = len(result.fields)
    for parameters in result.parameters.values():
        found += len(parameters)

    problems = [f"{problem.kind} {problem.field_name}: {problem.detail}" for problem in result.problems]
    return found, expected, problems


def measure_throughput(session: SessionFiles, file_count: int, rounds: int) -> Throughput:
    """Measurement 1: the plugin and baselines (a), (b), (c) on the same ``file_count`` files."""
    groups = session.first(file_count)
    rules = standard_rules()
    read_bytes(groups)

    result = extract(rules, groups)
    found, expected, problems = check_result(result, rules, groups)

    seconds = interleaved_medians(
        {
            "plugin": lambda: extract(rules, groups),
            "a_dcmread": lambda: read_whole_files(groups),
            "b_header_attributes": lambda: read_headers_and_attributes(groups),
            "c_bytes": lambda: read_bytes(groups),
        },
        rounds,
    )
    return Throughput(file_count, seconds, found, expected, problems)


def measure_datasets(session: SessionFiles, file_count: int, rounds: int) -> Throughput:
    """Measurement 2: extraction from Datasets that the host has already parsed, against (b).

    pydicom converts an element's raw bytes on first access and keeps the
    result, so a second extraction over the same Datasets would be cheaper
    than the first. The Datasets are therefore parsed afresh, untimed, before
    every timed extraction.
    """
    groups = session.first(file_count)
    rules = standard_rules()
    parsed: dict[Path, pydicom.Dataset] = {}

    def parse_all() -> None:
        parsed.clear()
        for path in all_paths(groups):
            parsed[path] = pydicom.dcmread(path)

    def datasets_of(paths: list[Path]) -> list[pydicom.Dataset]:
        return [parsed[path] for path in paths]

    parse_all()
    result = extract(rules, groups, datasets_of)
    found, expected, problems = check_result(result, rules, groups)

    seconds = interleaved_medians(
        {
            "plugin_datasets": lambda: extract(rules, groups, datasets_of),
            "b_header_attributes": lambda: read_headers_and_attributes(groups),
        },
        rounds,
        before_each={"plugin_datasets": parse_all},
    )
    parsed.clear()
    return Throughput(file_count, seconds, found, expected, problems)


@dataclass
class ScalingPoint:
    """One point of the scaling measurement."""

    file_count: int
    rule_count: int
    seconds: dict[str, Timing]
    fields_found: int = 0
    fields_expected: int = 0


def measure_file_scaling(session: SessionFiles, file_counts: tuple[int, ...], rounds: int) -> list[ScalingPoint]:
    """Measurement 6a: the plugin and baselines (b) and (c) for growing sessions, ten rules."""
    rules = standard_rules()
    points = []
    for file_count in file_counts:
        groups = session.first(file_count)
        read_bytes(groups)
        seconds = interleaved_medians(
            {
                "plugin": lambda: extract(rules, groups),
                "b_header_attributes": lambda: read_headers_and_attributes(groups),
                "c_bytes": lambda: read_bytes(groups),
            },
            rounds,
        )
        points.append(ScalingPoint(file_count, len(rules), seconds))
    return points


def measure_rule_scaling(
    session: SessionFiles, file_count: int, rule_counts: tuple[int, ...], rounds: int
) -> list[ScalingPoint]:
    """Measurement 6b: the plugin on one session with a growing number of rules."""
    groups = session.first(file_count)
    sample_file = groups[0][1][0]
    read_bytes(groups)

    rule_sets = {count: scaled_rules(count, sample_file) for count in rule_counts}
    checks = {}
    for count, rules in rule_sets.items():
        found, expected, _ = check_result(extract(rules, groups), rules, groups)
        checks[count] = (found, expected)

    seconds = interleaved_medians(
        {str(count): (lambda rules=rules: extract(rules, groups)) for count, rules in rule_sets.items()},
        rounds,
    )
    return [
        ScalingPoint(file_count, count, {"plugin": seconds[str(count)]}, *checks[count])
        for count in rule_counts
    ]
