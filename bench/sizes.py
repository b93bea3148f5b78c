"""Benchmark sizes: how many files, rules and rounds each run uses."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Size:
    """The workload of one benchmark run."""

    name: str
    session_files: int  # files of the throughput, Datasets and profile sessions
    files_per_series: int
    parallel_files: tuple[int, ...]
    scaling_files: tuple[int, ...]
    scaling_rules: tuple[int, ...]
    rule_scaling_files: int  # session size of the rule scaling
    api_rules: int  # rules stored for GET /xapi/dicom_mappings
    put_requests: int  # PUT /update requests timed per round
    rounds: int  # timed rounds per variant; the report gives the median
    scaling_rounds: int  # timed rounds per point of the scaling measurement

    @property
    def generated_files(self) -> int:
        return max((self.session_files, self.rule_scaling_files, *self.parallel_files, *self.scaling_files))


SIZES = {
    # The workload of the benchmark page. Runs on a shared 2-core machine took 3.5 to 6 minutes.
    "default": Size(
        name="default",
        session_files=2000,
        files_per_series=500,
        parallel_files=(50, 100, 200, 500, 2000),
        scaling_files=(100, 500, 1000, 2000, 5000, 10000),
        scaling_rules=(1, 10, 50, 100, 200),
        rule_scaling_files=2000,
        api_rules=10_000,
        put_requests=50,
        rounds=5,
        scaling_rounds=3,
    ),
    # A tenth of the default, for trying a change to the benchmarks.
    "small": Size(
        name="small",
        session_files=200,
        files_per_series=50,
        parallel_files=(50, 200),
        scaling_files=(50, 100, 200, 500, 1000),
        scaling_rules=(1, 10, 50, 200),
        rule_scaling_files=200,
        api_rules=1000,
        put_requests=20,
        rounds=3,
        scaling_rounds=3,
    ),
    # Proves that every measurement still runs; the numbers mean nothing.
    "tiny": Size(
        name="tiny",
        session_files=12,
        files_per_series=4,
        parallel_files=(6, 12),
        scaling_files=(4, 12),
        scaling_rules=(1, 12),
        rule_scaling_files=8,
        api_rules=30,
        put_requests=3,
        rounds=1,
        scaling_rounds=1,
    ),
}
