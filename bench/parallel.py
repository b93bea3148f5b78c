"""Parallel extraction: one session's files split across worker processes.

The extractor has no parallel mode of its own. The benchmark therefore splits
the files of a session into one contiguous chunk per worker, so a scan may be
cut in two. It runs ``extract_session`` on each chunk in a
``ProcessPoolExecutor`` and returns the chunks' results. Combining those results into one session is the
same rule-by-rule comparison that a single call makes, and is not timed here.
"""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from xnat_dicom_mappings.rules import Rule

from .extraction import Groups, extract, read_bytes
from .generate import SessionFiles
from .machine import usable_cores
from .rules import standard_rules
from .timing import Timing, interleaved_medians

#: Worker processes of the parallel variant: one per usable core, and at
#: least two, so that the parallel variant always splits the session.
WORKERS = max(2, usable_cores())

#: Iterations of the control loop: about 0.1 s of pure Python work on one core.
CONTROL_ITERATIONS = 3_000_000


@dataclass
class ParallelPoint:
    """Serial and parallel times for one session size; only wall-clock time counts here."""

    file_count: int
    workers: int
    seconds: dict[str, Timing]
    worker_cpu: list[float]  # CPU seconds of each worker's chunk in one more run of the running pool

    def wall(self, variant: str) -> float:
        return self.seconds[variant].wall

    def speedup(self, variant: str) -> float:
        return self.wall("serial") / self.wall(variant)

    def control_speedup(self) -> float:
        """Return the running pool's speed-up on a pure CPU loop: what the free cores allowed."""
        return self.wall("control_serial") / self.wall("control_pool")

    def idle_estimate(self) -> float:
        """Estimate the running pool's speed-up on otherwise idle cores.

        The estimate is serial CPU time over the busiest worker's CPU time, so
        it leaves out the time to hand chunks to workers and results back.
        """
        return self.seconds["serial"].cpu / max(self.worker_cpu)


def split_groups(groups: Groups, parts: int) -> list[Groups]:
    """Split a session's files into ``parts`` contiguous chunks of nearly equal size."""
    flat = [(spec, path) for spec, paths in groups for path in paths]
    size = -(-len(flat) // parts)
    chunks = []
    for start in range(0, len(flat), size):
        chunk: Groups = []
        for spec, path in flat[start:start + size]:
            if chunk and chunk[-1][0] is spec:
                chunk[-1][1].append(path)
            else:
                chunk.append((spec, [path]))
        chunks.append(chunk)
    return chunks


def extract_chunk(rules: list[Rule], chunk: Groups) -> tuple[dict, dict, int, float]:
    """Extract one chunk in a worker; return its fields, parameters, problem count and CPU seconds."""
    start = time.process_time()
    result = extract(rules, chunk)
    return result.fields, result.parameters, len(result.problems), time.process_time() - start


def spin(iterations: int) -> int:
    """Run a pure Python loop of ``iterations`` steps; the control workload."""
    total = 0
    for step in range(iterations):
        total += step
    return total


def spin_in_pool(pool: ProcessPoolExecutor, workers: int) -> None:
    """Split the control loop across the workers of ``pool``."""
    list(pool.map(spin, [CONTROL_ITERATIONS // workers] * workers))


def extract_in_pool(pool: ProcessPoolExecutor, rules: list[Rule], groups: Groups, workers: int) -> list:
    """Extract a session's chunks in ``pool`` and return each chunk's result."""
    chunks = split_groups(groups, workers)
    futures = [pool.submit(extract_chunk, rules, chunk) for chunk in chunks]
    return [future.result() for future in futures]


def extract_in_new_pool(rules: list[Rule], groups: Groups, workers: int) -> list:
    """Start a pool, extract a session's chunks in it and shut it down."""
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        return extract_in_pool(pool, rules, groups, workers)


def measure_parallel(session: SessionFiles, file_counts: tuple[int, ...], rounds: int) -> list[ParallelPoint]:
    """Measurement 3: serial extraction against a new pool per session and a pool kept running.

    The pools fork, so a worker starts with the modules already imported; a
    pool that uses spawn would pay for the imports on every start. A control
    in the same rounds runs a pure CPU loop serially and split across the
    running pool: its speed-up shows how many cores other jobs left free.
    """
    rules = standard_rules()
    points = []
    with ProcessPoolExecutor(WORKERS, mp_context=multiprocessing.get_context("fork")) as warm_pool:
        for file_count in file_counts:
            groups = session.first(file_count)
            read_bytes(groups)
            extract_in_pool(warm_pool, rules, groups, WORKERS)

            seconds = interleaved_medians(
                {
                    "serial": lambda: extract(rules, groups),
                    "new_pool": lambda: extract_in_new_pool(rules, groups, WORKERS),
                    "running_pool": lambda: extract_in_pool(warm_pool, rules, groups, WORKERS),
                    "control_serial": lambda: spin(CONTROL_ITERATIONS),
                    "control_pool": lambda: spin_in_pool(warm_pool, WORKERS),
                },
                rounds,
            )
            worker_cpu = [chunk_result[3] for chunk_result in extract_in_pool(warm_pool, rules, groups, WORKERS)]
            points.append(ParallelPoint(file_count, WORKERS, seconds, worker_cpu))
    return points
