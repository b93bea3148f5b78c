"""Timing helpers: interleaved rounds and medians, so that variants share the machine's noise.

Each call is timed twice: wall-clock time (``time.perf_counter``) and the
process's CPU time, user plus system (``time.process_time``). On a machine
that other jobs share, a single-threaded variant's CPU time changes much
less than its wall-clock time, which grows with the other jobs' load. Work
done in other processes (worker processes, a database
server) shows only in wall-clock time.
"""

from __future__ import annotations

import gc
import statistics
import time
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Timing:
    """Median wall-clock and CPU seconds of one variant over the rounds of a measurement."""

    wall: float
    cpu: float


def time_call(function: Callable[[], object]) -> Timing:
    """Return the wall-clock and CPU seconds of one call of ``function``, after a full garbage collection."""
    gc.collect()
    wall_start = time.perf_counter()
    cpu_start = time.process_time()
    function()
    cpu = time.process_time() - cpu_start
    wall = time.perf_counter() - wall_start
    return Timing(wall=wall, cpu=cpu)


def interleaved_medians(
    variants: dict[str, Callable[[], object]],
    rounds: int,
    before_each: dict[str, Callable[[], object]] | None = None,
) -> dict[str, Timing]:
    """Time every variant once per round and return each variant's medians.

    The variants run one after another inside each round, in an order that
    rotates from round to round, so that a slow spell of a shared machine
    falls on all of them alike. ``before_each`` maps a variant to an untimed
    set-up call, such as parsing the Datasets that the variant then reads.
    """
    names = list(variants)
    samples: dict[str, list[Timing]] = {name: [] for name in names}

    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            if before_each and name in before_each:
                before_each[name]()
            samples[name].append(time_call(variants[name]))

    return {
        name: Timing(
            wall=statistics.median(sample.wall for sample in values),
            cpu=statistics.median(sample.cpu for sample in values),
        )
        for name, values in samples.items()
    }
