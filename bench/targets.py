"""The benchmark targets, and the one line per target that ``make bench`` ends with."""

from __future__ import annotations

from dataclasses import dataclass

#: Extraction from files: at least this many times faster than baseline (b).
EXTRACTION_SPEEDUP_GOAL = 2.0

#: Extraction from already-parsed Datasets: at most this fraction of the time of (b).
DATASETS_FRACTION_GOAL = 0.10

#: Parallel extraction pays when the speed-up over serial exceeds this.
PARALLEL_SPEEDUP_GOAL = 1.0

#: SQL statements of one archived session: with an empty cache, and with a warm one.
STATEMENTS_COLD_GOAL = 1
STATEMENTS_WARM_GOAL = 0

#: GET /xapi/dicom_mappings: at most this many times the raw query plus json.dumps.
API_RATIO_GOAL = 2.0


@dataclass(frozen=True)
class Target:
    """One target's measured value against its goal."""

    name: str
    value: str
    goal: str
    met: bool | None  # None: not measured in this run

    def line(self) -> str:
        """Return ``target NAME: VALUE (goal GOAL) met`` or ``... not met``."""
        outcome = "met" if self.met else "not met"
        return f"target {self.name}: {self.value} (goal {self.goal}) {outcome}"


def at_least(name: str, value: float | None, goal: float, unit: str = "x") -> Target:
    if value is None:
        return Target(name, "not measured", f">= {goal:g}{unit}", None)
    return Target(name, f"{value:.2f}{unit}", f">= {goal:g}{unit}", value >= goal)


def above(name: str, value: float | None, goal: float, unit: str = "x") -> Target:
    if value is None:
        return Target(name, "not measured", f"> {goal:g}{unit}", None)
    return Target(name, f"{value:.2f}{unit}", f"> {goal:g}{unit}", value > goal)


def at_most(name: str, value: float | None, goal: float, unit: str = "x", digits: int = 2) -> Target:
    if value is None:
        return Target(name, "not measured", f"<= {goal:g}{unit}", None)
    return Target(name, f"{value:.{digits}f}{unit}", f"<= {goal:g}{unit}", value <= goal)
