"""Parallel extraction: the extractor's own process pool against a serial run.

``extract_session(workers=N)`` reads the files given by path in a pool of N
worker processes (``forkserver``) that it keeps running between calls, and
``workers=1`` reads them in the calling process. Both return the same result,
which each measurement checks before timing.
"""

from __future__ import annotations

from dataclasses import dataclass

from xnat_dicom_mappings import pool
from xnat_dicom_mappings.extractor import PARALLEL_MIN_FILES

from .extraction import extract, read_bytes
from .generate import SessionFiles
from .machine import usable_cores
from .rules import standard_rules
from .timing import Timing, interleaved_medians

#: Worker processes of the parallel variants: one per usable core, and at
#: least two, so that the parallel variants always use the pool.
WORKERS = max(2, usable_cores())

#: Iterations of the control loop: about 0.1 s of pure Python work on one core.
CONTROL_ITERATIONS = 3_000_000


@dataclass
class ParallelPoint:
    """Serial and parallel times for one session size; only wall-clock time counts here."""

    file_count: int
    workers: int
    seconds: dict[str, Timing]
    automatic_parallel: bool  # whether extract_session(workers=None) uses the pool at this size

    def wall(self, variant: str) -> float:
        return self.seconds[variant].wall

    def speedup(self, variant: str) -> float:
        return self.wall("serial") / self.wall(variant)

    def control_speedup(self) -> float:
        """Return the running pool's speed-up on a pure CPU loop: what the free cores allowed."""
        return self.wall("control_serial") / self.wall("control_pool")


def spin(iterations: int) -> int:
    """Run a pure Python loop of ``iterations`` steps; the control workload."""
    total = 0
    for step in range(iterations):
        total += step
    return total


def spin_in_pool(workers: int) -> None:
    """Split the control loop across the workers of the extractor's running pool."""
    executor = pool.get_pool(workers)
    list(executor.map(spin, [CONTROL_ITERATIONS // workers] * workers))


def measure_parallel(session: SessionFiles, file_counts: tuple[int, ...], rounds: int) -> list[ParallelPoint]:
    """Measurement 3: ``workers=1`` against a new pool per session and the pool kept running.

    "New pool" stops the extractor's pool before each timed call (untimed),
    so the call starts the worker processes and they import the package.
    A control in the same rounds runs a pure CPU loop serially and split
    across the running pool: its speed-up shows how many cores other jobs
    left free.
    """
    rules = standard_rules()
    points = []
    for file_count in file_counts:
        groups = session.first(file_count)
        read_bytes(groups)
        serial = extract(rules, groups, workers=1)
        parallel = extract(rules, groups, workers=WORKERS)
        if parallel.to_json() != serial.to_json():
            raise AssertionError(f"parallel and serial extraction differ on {file_count} files")

        seconds = interleaved_medians(
            {
                "serial": lambda: extract(rules, groups, workers=1),
                "new_pool": lambda: extract(rules, groups, workers=WORKERS),
                "running_pool": lambda: extract(rules, groups, workers=WORKERS),
                "control_serial": lambda: spin(CONTROL_ITERATIONS),
                "control_pool": lambda: spin_in_pool(WORKERS),
            },
            rounds,
            before_each={"new_pool": pool.shutdown_pool},
        )
        automatic = usable_cores() > 1 and file_count >= PARALLEL_MIN_FILES
        points.append(ParallelPoint(file_count, WORKERS, seconds, automatic))
    pool.shutdown_pool()
    return points
