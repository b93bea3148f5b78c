"""Profiles of one extraction: cProfile for call counts and self time, pyinstrument for shares.

cProfile charges a fixed overhead to every Python call, which inflates code
made of many small calls. pyinstrument samples the stack every millisecond,
so its shares of wall-clock time are closer to an unprofiled run. The report
shows both.
"""

from __future__ import annotations

import cProfile
import pstats
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from pyinstrument import Profiler

import pydicom

from .extraction import Groups, all_paths, extract, read_bytes
from .generate import SessionFiles
from .rules import standard_rules


#: Steps of an extraction whose sampled time the report gives, as
#: (file name, qualified function name, description).
STEPS = (
    ("extractor.py", "extract_session", "the whole extraction"),
    ("extractor.py", "_read_scans", "reading the files: `read_header` per file"),
    ("elements.py", "_read_elements", "the header reader's element loop"),
    ("extractor.py", "_apply_rule", "applying the rules to the headers read"),
    ("reader.py", "Header.lookup", "looking up each rule's tag path in each header"),
    ("reader.py", "Header._sequence", "parsing sequence items (the functional groups)"),
    ("extractor.py", "_observe", "converting and recording each value (`convert_value`)"),
    ("extractor.py", "_file_order", "the order key of each file (InstanceNumber), once per file"),
    ("values.py", "_get", "fetching one element from a header or Dataset (`_get`)"),
)


#: A line number after a file name in pyinstrument's call tree, such as ``reader.py:197``.
LINE_NUMBER = re.compile(r"(\.py):\d+")


@dataclass(frozen=True)
class FunctionCost:
    """One function's line in a cProfile table."""

    name: str
    calls: int
    self_seconds: float
    cumulative_seconds: float


@dataclass
class Profile:
    """The results of profiling one extraction."""

    file_count: int
    total_seconds: float  # cProfile's total, profiler overhead included
    by_self_time: list[FunctionCost]
    by_cumulative_time: list[FunctionCost]
    sampled_text: str  # pyinstrument's call tree, as text
    sampled_steps: dict[str, float]  # sampled seconds of each of STEPS, by qualified function name
    datasets_text: str  # pyinstrument's call tree of an extraction from parsed Datasets
    datasets_steps: dict[str, float]


def short_name(filename: str, line: int, function: str) -> str:
    """Return ``package/module.py(function)``, without the site-packages prefix.

    The line number is left out, so that the page does not point at lines
    that later changes move.
    """
    if filename == "~":
        return function
    path = Path(filename)
    for marker in ("site-packages", "lib"):
        if marker in path.parts:
            index = len(path.parts) - 1 - path.parts[::-1].index(marker)
            return f"{'/'.join(path.parts[index + 1:])}({function})"
    try:
        path = path.relative_to(Path.cwd())
    except ValueError:
        pass
    return f"{path}({function})"


def top_functions(stats: pstats.Stats, key: int, count: int) -> list[FunctionCost]:
    """Return the ``count`` most expensive functions; ``key`` 2 sorts by self time, 3 by cumulative."""
    rows = []
    for (filename, line, function), (_, calls, self_time, cumulative, _) in stats.stats.items():
        rows.append(FunctionCost(short_name(filename, line, function), calls, self_time, cumulative))
    rows.sort(key=lambda row: row.self_seconds if key == 2 else row.cumulative_seconds, reverse=True)
    return rows[:count]


def call_tree(text: str) -> str:
    """Return pyinstrument's text output from the first line of the tree, without banner or line numbers."""
    lines = [LINE_NUMBER.sub(r"\1", line) for line in text.strip().splitlines()]
    for index, line in enumerate(lines):
        if line[:1].isdigit():
            return "\n".join(lines[index:])
    return "\n".join(lines)


def step_seconds(root) -> dict[str, float]:
    """Sum pyinstrument's sampled time of each function of STEPS over the whole call tree.

    A frame nested inside a frame of the same function is not counted again.
    """
    step_keys = {(file_name, qualified) for file_name, qualified, _ in STEPS}
    totals = {qualified: 0.0 for _, qualified, _ in STEPS}

    def visit(frame, open_steps: frozenset) -> None:
        qualified = f"{frame.class_name}.{frame.function}" if frame.class_name else frame.function
        key = (Path(frame.file_path or "").name, qualified)
        if key in step_keys and qualified not in open_steps:
            totals[qualified] += frame.time
            open_steps = open_steps | {qualified}
        for child in frame.children:
            visit(child, open_steps)

    if root is not None:
        visit(root, frozenset())
    return totals


def sample(function, *args) -> tuple[str, dict[str, float]]:
    """Run ``function(*args)`` under pyinstrument; return the call tree text and the steps' seconds."""
    sampler = Profiler(interval=0.001)
    sampler.start()
    function(*args)
    sampler.stop()
    text = call_tree(sampler.output_text(unicode=False, color=False, show_all=False))
    return text, step_seconds(sampler.last_session.root_frame())


def profile_extraction(session: SessionFiles, file_count: int, rows: int = 15) -> Profile:
    """Profile the plugin's extraction of ``file_count`` files with the ten standard rules."""
    groups: Groups = session.first(file_count)
    rules = standard_rules()
    read_bytes(groups)
    extract(rules, groups)

    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.runcall(extract, rules, groups)
    total = time.perf_counter() - start
    stats = pstats.Stats(profiler, stream=sys.stderr)

    sampled_text, sampled_steps = sample(extract, rules, groups)

    parsed = {path: pydicom.dcmread(path) for path in all_paths(groups)}
    datasets_text, datasets_steps = sample(extract, rules, groups, lambda paths: [parsed[path] for path in paths])
    parsed.clear()

    return Profile(
        file_count=file_count,
        total_seconds=total,
        by_self_time=top_functions(stats, 2, rows),
        by_cumulative_time=top_functions(stats, 3, rows),
        sampled_text=sampled_text,
        sampled_steps=sampled_steps,
        datasets_text=datasets_text,
        datasets_steps=datasets_steps,
    )
