"""Command line of the benchmarks: generate the files, run every measurement, write the page."""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pydicom

from .extraction import (
    Throughput,
    ScalingPoint,
    measure_datasets,
    measure_file_scaling,
    measure_rule_scaling,
    measure_throughput,
)
from .generate import write_session
from .machine import describe
from .parallel import ParallelPoint, measure_parallel
from .profiling import Profile, profile_extraction
from .service import (
    DEFAULT_PG_URL,
    ApiResult,
    StatementCounts,
    fresh_database,
    measure_api,
    measure_statements,
    pg_available,
)
from .sizes import SIZES, Size

logger = logging.getLogger("bench")

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent

#: Environment variable that picks the size when ``--size`` is not given.
SIZE_VARIABLE = "XDM_BENCH_SIZE"


@dataclass
class Results:
    """Everything one run measured; the report and the target lines are made from it."""

    size: Size
    machine: str
    started: datetime
    commit: str | None
    pg_reason: str | None = None  # why PostgreSQL was not measured, or None
    elements_per_file: int = 0  # top-level elements before the pixel data in a generated file
    file_bytes: int = 0  # size of a generated file
    throughput: Throughput | None = None
    datasets: Throughput | None = None
    parallel: list[ParallelPoint] = field(default_factory=list)
    statements: list[StatementCounts] = field(default_factory=list)
    api: list[ApiResult] = field(default_factory=list)
    file_scaling: list[ScalingPoint] = field(default_factory=list)
    rule_scaling: list[ScalingPoint] = field(default_factory=list)
    profile: Profile | None = None
    section_seconds: dict[str, float] = field(default_factory=dict)
    section_load: dict[str, float] = field(default_factory=dict)  # 1-minute load average at each part's end
    load_average: dict[str, tuple[float, float, float]] = field(default_factory=dict)  # "start", "end"


def current_commit() -> str | None:
    """Return the short commit hash of the checkout, with ``+changes`` when the tree is dirty."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPOSITORY_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPOSITORY_ROOT, capture_output=True, text=True, check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{commit}+changes" if dirty else commit


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark extraction and the REST API, write BENCHMARKS.md and print one line per target.",
    )
    parser.add_argument(
        "--size",
        choices=sorted(SIZES),
        default=os.environ.get(SIZE_VARIABLE, "default"),
        help=f"workload: default (2,000-file sessions, scaling up to 10,000 files), small or tiny; "
        f"default: ${SIZE_VARIABLE} or 'default'",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=REPOSITORY_ROOT,
        help="directory that receives BENCHMARKS.md and docs/bench-scaling.png; default: the repository root",
    )
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("DICOM_MAPPINGS_TEST_PG_URL", DEFAULT_PG_URL),
        help="SQLAlchemy URL of the PostgreSQL server; each run creates and drops its own schema there",
    )
    parser.add_argument("--no-postgresql", action="store_true", help="measure rule look-ups and the API on SQLite only")
    parser.add_argument("--workdir", type=Path, default=None, help="where the generated files go; default: a new temporary directory")
    return parser.parse_args(argv)


def run_section(results: Results, name: str, function, *args):
    """Run one measurement, log its duration and keep it in ``results.section_seconds``."""
    logger.info("%s: started", name)
    start = time.perf_counter()
    value = function(*args)
    results.section_seconds[name] = time.perf_counter() - start
    results.section_load[name] = os.getloadavg()[0]
    logger.info("%s: done in %.1f s", name, results.section_seconds[name])
    return value


def run_all(size: Size, workdir: Path, pg_url: str | None) -> Results:
    """Generate the session and run every measurement of ``size`` in ``workdir``."""
    results = Results(size=size, machine=describe(), started=datetime.now(timezone.utc), commit=current_commit())
    results.load_average["start"] = os.getloadavg()

    if pg_url is not None:
        results.pg_reason = pg_available(pg_url)
        if results.pg_reason is not None:
            logger.warning("PostgreSQL is not measured: %s", results.pg_reason)
            pg_url = None
    else:
        results.pg_reason = "--no-postgresql was given"

    session = run_section(
        results, "generate files", write_session, workdir / "session", size.generated_files, size.files_per_series
    )
    sample_file = session.paths[0][0]
    results.elements_per_file = len(pydicom.dcmread(sample_file, stop_before_pixels=True))
    results.file_bytes = sample_file.stat().st_size

    results.throughput = run_section(results, "throughput", measure_throughput, session, size.session_files, size.rounds)
    results.datasets = run_section(results, "datasets", measure_datasets, session, size.session_files, size.rounds)
    results.parallel = run_section(results, "parallel", measure_parallel, session, size.parallel_files, size.rounds)

    databases = ["SQLite"] + (["PostgreSQL"] if pg_url is not None else [])
    for database in databases:
        with fresh_database(database, workdir, pg_url) as url:
            counts = run_section(
                results, f"statements {database}", measure_statements, database, url, session.first(size.session_files)
            )
            results.statements.append(counts)
        with fresh_database(database, workdir, pg_url) as url:
            api = run_section(
                results, f"api {database}", measure_api,
                database, url, size.api_rules, size.put_requests, size.rounds, sample_file,
            )
            results.api.append(api)

    results.file_scaling = run_section(
        results, "file scaling", measure_file_scaling, session, size.scaling_files, size.scaling_rounds
    )
    results.rule_scaling = run_section(
        results, "rule scaling", measure_rule_scaling,
        session, size.rule_scaling_files, size.scaling_rules, size.scaling_rounds,
    )
    results.profile = run_section(results, "profile", profile_extraction, session, size.session_files)
    results.load_average["end"] = os.getloadavg()
    return results


def main(argv: list[str] | None = None) -> int:
    from .report import target_lines, write_report  # here, because report imports Results from this module

    arguments = parse_arguments(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    # The extension logs one line per session and per rule change, thousands in a run.
    for name in ("xnat_dicom_mappings", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    size = SIZES[arguments.size]
    pg_url = None if arguments.no_postgresql else arguments.pg_url

    if arguments.workdir is not None:
        arguments.workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="xdm-bench-", dir=arguments.workdir) as workdir:
        results = run_all(size, Path(workdir), pg_url)

    page = write_report(results, arguments.output)
    logger.info("wrote %s", page)
    for line in target_lines(results):
        print(line, flush=True)
    return 0
