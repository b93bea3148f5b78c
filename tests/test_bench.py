"""The benchmarks at their tiny size: they run, write the page and the plot, and print the targets.

Times are never asserted: a tiny run only proves that every measurement still works.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent

TARGET_LINE = re.compile(r"^target (?P<name>[a-z0-9_]+): (?P<value>.+) \(goal (?P<goal>.+)\) (?P<outcome>met|not met)$")

EXPECTED_TARGETS = {
    "extraction_speedup_vs_header_read",
    "datasets_cost_fraction_of_header_read",
    "parallel_speedup_12_files",
    "sql_statements_cold_sqlite",
    "sql_statements_warm_sqlite",
    "sql_statements_cold_postgresql",
    "sql_statements_warm_postgresql",
    "api_get_ratio_sqlite",
    "api_get_ratio_postgresql",
}

SECTIONS = (
    "## Targets",
    "## 1. Extraction throughput",
    "## 2. Datasets supplied by the host",
    "## 3. Parallel extraction",
    "## 4. Rule look-ups per archived session",
    "## 5. REST API",
    "## 6. Scaling",
    "## Profile",
)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """Run ``python -m bench --size tiny`` once into a temporary directory."""
    output = tmp_path_factory.mktemp("bench-output")
    workdir = tmp_path_factory.mktemp("bench-work")
    completed = subprocess.run(
        [sys.executable, "-m", "bench", "--size", "tiny", "--output", str(output), "--workdir", str(workdir)],
        cwd=REPOSITORY_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(REPOSITORY_ROOT)},
    )
    return completed, output, workdir


def test_bench_exits_zero(tiny_run):
    completed, _, _ = tiny_run
    assert completed.returncode == 0, completed.stderr[-4000:]


def test_bench_prints_target_lines(tiny_run):
    completed, _, _ = tiny_run
    lines = completed.stdout.strip().splitlines()
    assert lines, completed.stderr[-4000:]
    for line in lines:
        assert TARGET_LINE.match(line), line


def test_bench_prints_every_target(tiny_run):
    completed, _, _ = tiny_run
    names = {match["name"] for match in map(TARGET_LINE.match, completed.stdout.splitlines()) if match}
    assert names == EXPECTED_TARGETS


def test_bench_writes_every_section(tiny_run):
    _, output, _ = tiny_run
    page = (output / "BENCHMARKS.md").read_text(encoding="utf-8")
    for heading in SECTIONS:
        assert heading in page


def test_bench_states_machine_above_tables(tiny_run):
    _, output, _ = tiny_run
    page = (output / "BENCHMARKS.md").read_text(encoding="utf-8")
    machine_lines = [line for line in page.splitlines() if line.startswith("Machine: ")]
    assert len(machine_lines) >= 6
    assert all("cores" in line and "Python" in line and "pydicom" in line for line in machine_lines)


def test_bench_writes_scaling_plot(tiny_run):
    _, output, _ = tiny_run
    plot = output / "docs" / "bench-scaling.png"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "(docs/bench-scaling.png)" in (output / "BENCHMARKS.md").read_text(encoding="utf-8")


def test_bench_checks_extracted_fields(tiny_run):
    _, output, _ = tiny_run
    page = (output / "BENCHMARKS.md").read_text(encoding="utf-8")
    checks = re.findall(r"Check of the plugin's result: (\d+) of (\d+)", page)
    assert checks
    for found, expected in checks:
        assert found == expected


def test_bench_removes_generated_files(tiny_run):
    _, _, workdir = tiny_run
    assert list(workdir.iterdir()) == []
