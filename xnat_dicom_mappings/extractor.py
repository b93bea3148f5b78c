"""Session fields and scan parameters from the DICOM files of one session.

:func:`extract_session` applies the rules in force to the files of each scan:
session rules over every file of the session, scan rules over the files of
their scan. Every value that could not be filled, and every repair, is a
:class:`Problem` in the result; a bad file, tag or value never raises.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence as SequenceABC
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from pydicom.dataset import Dataset

from .convert import convert_value
from .errors import ConversionError, DicomMappingsError, TagSyntaxError
from . import pool
from .reader import ElementValue, Header, ParseCache, UnreadableFile, read_header
from .rules import CONFLICT_POLICIES, Rule, effective_rules, rules_for_type
from .tags import TagPath, parse_tag

logger = logging.getLogger(__name__)

#: (0020,0013) Instance Number, which orders files for the "first" and "last" policies.
INSTANCE_NUMBER = 0x00200013

#: Files given by path that a session needs before ``extract_session(workers=None)``
#: reads them in a pool of worker processes; hosts set
#: ``DICOM_MAPPINGS_PARALLEL_MIN_FILES``. It was chosen from the wall-clock
#: speed-up of 2 workers over serial with the pool already running, measured
#: on 2 cores (Xeon, Python 3.11.7, pydicom 3.0.2) with the ten rules of
#: ``bench/``. Two runs gave 0.80x and 1.21x at 50 files, 1.32x and 1.42x at
#: 100, 1.49x and 1.52x at 200, 1.56x and 1.51x at 500, and 1.64x and 1.71x
#: at 2,000. Below 200 files the gain was a few milliseconds and not reliable.
#: The first parallel call of a process also starts the pool, which took 0.25
#: to 0.3 s there. BENCHMARKS.md has the numbers of the latest ``make bench``.
PARALLEL_MIN_FILES = 200

PROBLEM_KINDS = ("missing", "invalid", "conflict", "repaired", "unreadable")


@dataclass(frozen=True)
class ScanInput:
    """One scan of a session: its id, its xsi type and its files.

    ``files`` are paths, open binary files, pydicom Datasets (used without a
    second read) or :class:`~.reader.Header` objects already read with every
    tag the rules need.
    """

    id: str
    xsi_type: str
    files: Sequence
    series_instance_uid: str | None = None


@dataclass(frozen=True)
class Problem:
    """A value that could not be filled, or was filled after a repair.

    ``level`` is "session" or "scan"; ``values`` are the raw or converted
    values involved and ``files`` the files they came from.
    """

    level: str
    scan_id: str | None
    field_name: str | None
    dicom_tag: str | None
    kind: str
    detail: str
    values: tuple = ()
    files: tuple = ()

    def to_json(self) -> dict:
        return {
            "level": self.level,
            "scanId": self.scan_id,
            "fieldName": self.field_name,
            "dicomTag": self.dicom_tag,
            "kind": self.kind,
            "detail": self.detail,
            "values": [_json_value(value) for value in self.values],
            "files": list(self.files),
        }


@dataclass
class ExtractionResult:
    """Session fields and scan parameters as text and as typed values, plus the problems."""

    fields: dict[str, str] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    parameters: dict[str, dict[str, str]] = field(default_factory=dict)
    parameter_values: dict[str, dict[str, Any]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    unreadable: list[dict] = field(default_factory=list)
    session_id: str | None = None
    project: str | None = None
    session_type: str | None = None

    def to_json(self) -> dict:
        """Return the result as JSON-ready data, with text values only."""
        return {
            "sessionId": self.session_id,
            "project": self.project,
            "sessionType": self.session_type,
            "fields": dict(self.fields),
            "parameters": {scan: dict(values) for scan, values in self.parameters.items()},
            "problems": [problem.to_json() for problem in self.problems],
            "unreadable": [dict(entry) for entry in self.unreadable],
        }


@dataclass
class _Observation:
    """One converted value of one rule in one file (or in some frames of it)."""

    file: str
    order: tuple
    raw: tuple
    text: str
    value: Any
    frames: tuple[int, ...] = ()


@dataclass
class _ParsedRule:
    rule: Rule
    path: TagPath | None


def extract_session(rules: Iterable[Rule], *, session_type: str, scans: Sequence[ScanInput],
                    project: str | None = None, session_id: str | None = None,
                    workers: int | None = None,
                    parallel_min_files: int | None = None) -> ExtractionResult:
    """Compute the session fields and scan parameters of one session.

    Session rules apply when their schema element is exactly
    ``session_type``, and scan rules when it is exactly the scan's xsi type.
    Site rules apply everywhere, and ``project``'s rules replace them as
    :func:`~.rules.effective_rules` defines. Each file is read once. Raises
    TypeError or ValueError only for arguments of the wrong type or shape.

    ``workers`` is the number of worker processes that read the files given
    by path (Datasets, open files and Headers are read in this process).
    ``None`` uses one per usable CPU, but only when there are at least two
    and the session has at least ``parallel_min_files`` such files
    (default :data:`PARALLEL_MIN_FILES`). 1 reads every file in this
    process. The result is the same either way. The pool keeps running for later calls;
    :func:`~.pool.shutdown_pool` stops it.
    """
    rules = _check_arguments(rules, session_type, scans, project, session_id)
    workers = _check_workers(workers, parallel_min_files)
    label = session_id or "(no session id)"
    result = ExtractionResult(session_id=session_id, project=project, session_type=session_type)

    in_force = effective_rules(rules, project)
    session_rules = [_parse_rule(rule) for rule in rules_for_type(in_force, session_type)]
    scan_rules = {scan.id: [_parse_rule(rule) for rule in rules_for_type(in_force, scan.xsi_type)]
                  for scan in scans}

    for parsed in session_rules:
        if parsed.path is None:
            result.problems.append(_bad_tag_problem(parsed.rule, "session", None))
    for scan in scans:
        for parsed in scan_rules[scan.id]:
            if parsed.path is None:
                result.problems.append(_bad_tag_problem(parsed.rule, "scan", scan.id))

    headers = _read_scans(scans, session_rules, scan_rules, result, workers, parallel_min_files, label)

    all_headers = [header for scan in scans for header in headers[scan.id]]
    orders = _file_orders(all_headers)
    for parsed in session_rules:
        if parsed.path is not None:
            _apply_rule(parsed, all_headers, "session", None, result, orders)

    for scan in scans:
        for parsed in scan_rules[scan.id]:
            if parsed.path is not None:
                _apply_rule(parsed, headers[scan.id], "scan", scan.id, result, orders)

    _log(result, label, scans, all_headers)
    return result


def _check_arguments(rules, session_type, scans, project, session_id) -> list[Rule]:
    if isinstance(rules, (str, bytes)) or not isinstance(rules, Iterable):
        raise TypeError(f"rules must be an iterable of Rule, not {type(rules).__name__}")
    rules = list(rules)
    for rule in rules:
        if not isinstance(rule, Rule):
            raise TypeError(f"rules must contain Rule objects, not {type(rule).__name__}")

    if not isinstance(session_type, str) or not session_type:
        raise TypeError("session_type must be a non-empty xsi type such as 'xnat:mrSessionData'")
    for name, value in (("project", project), ("session_id", session_id)):
        if value is not None and not isinstance(value, str):
            raise TypeError(f"{name} must be a string or None, not {type(value).__name__}")

    if isinstance(scans, (str, bytes)) or not isinstance(scans, SequenceABC):
        raise TypeError(f"scans must be a sequence of ScanInput, not {type(scans).__name__}")
    seen = set()
    for scan in scans:
        if not isinstance(scan, ScanInput):
            raise TypeError(f"scans must contain ScanInput objects, not {type(scan).__name__}")
        if not isinstance(scan.id, str) or not isinstance(scan.xsi_type, str):
            raise TypeError(f"scan id and xsi_type must be strings, got {scan.id!r}, {scan.xsi_type!r}")
        if isinstance(scan.files, (str, bytes)) or not isinstance(scan.files, SequenceABC):
            raise TypeError(f"files of scan {scan.id} must be a sequence of files, "
                            f"not {type(scan.files).__name__}")
        if scan.id in seen:
            raise ValueError(f"scan id {scan.id!r} appears twice; each scan needs its own id")
        seen.add(scan.id)
    return rules


def _check_workers(workers, parallel_min_files) -> int | None:
    if workers is not None and (not isinstance(workers, int) or isinstance(workers, bool) or workers < 1):
        raise ValueError(f"workers must be a positive integer or None, not {workers!r}")
    if parallel_min_files is not None and (
        not isinstance(parallel_min_files, int) or isinstance(parallel_min_files, bool) or parallel_min_files < 0
    ):
        raise ValueError(f"parallel_min_files must be a non-negative integer or None, not {parallel_min_files!r}")
    return workers


def _parse_rule(rule: Rule) -> _ParsedRule:
    try:
        return _ParsedRule(rule, parse_tag(rule.dicom_tag))
    except TagSyntaxError:
        return _ParsedRule(rule, None)


def _bad_tag_problem(rule: Rule, level: str, scan_id: str | None) -> Problem:
    try:
        parse_tag(rule.dicom_tag)
        reason = "the tag cannot be read"
    except TagSyntaxError as exc:
        reason = str(exc)
    return Problem(level, scan_id, rule.field_name, str(rule.dicom_tag), "invalid",
                   f"the rule's dicomTag is not valid: {reason}", (str(rule.dicom_tag),), ())


# Reading


def _file_label(source, scan_id: str, position: int) -> str:
    if isinstance(source, Header):
        return source.name
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    if isinstance(source, Dataset):
        filename = getattr(source, "filename", None)
        if isinstance(filename, str) and filename:
            return filename
    name = getattr(source, "name", None)
    if isinstance(name, str) and name:
        return name
    return f"scan {scan_id} file {position + 1}"


def _read_scans(scans, session_rules, scan_rules, result, workers: int | None,
                parallel_min_files: int | None, session_label: str) -> dict[str, list[Header]]:
    """Read every file once with the tags of the session rules and of its scan's rules.

    Files given by path are read in the worker processes of :mod:`.pool`
    when :func:`_pool_size` returns more than 1. Each of them comes back as a
    :class:`~.pool.LookedUpFile` in place of its Header.
    """
    session_paths = [parsed.path for parsed in session_rules if parsed.path is not None]
    headers: dict[str, list[Header]] = {}
    cache = ParseCache()
    paths_of = {scan.id: session_paths + [p.path for p in scan_rules[scan.id] if p.path is not None]
                for scan in scans}
    read_elsewhere = _read_in_pool(scans, paths_of, workers, parallel_min_files, session_label)

    for scan_index, scan in enumerate(scans):
        paths = paths_of[scan.id]
        headers[scan.id] = []
        if not paths:
            continue

        for position, source in enumerate(scan.files):
            label = _file_label(source, scan.id, position)
            if isinstance(source, Header):
                headers[scan.id].append(source)
                continue
            try:
                header = read_elsewhere.get((scan_index, position))
                if isinstance(header, UnreadableFile):
                    raise header
                if header is None:
                    header = read_header(source, paths, extra_tags=(INSTANCE_NUMBER,), name=label,
                                         cache=cache)
            except UnreadableFile as exc:
                result.unreadable.append({"path": label, "reason": exc.reason})
                result.problems.append(Problem("scan", scan.id, None, None, "unreadable",
                                               f"{label} is unreadable: {exc.reason}", (), (label,)))
                continue
            headers[scan.id].append(header)
    return headers


def _pool_size(path_files: int, workers: int | None, parallel_min_files: int | None) -> int:
    """Return how many worker processes should read ``path_files`` files, or 1 to read them here."""
    if workers is not None:
        return workers if path_files > 0 else 1
    minimum = PARALLEL_MIN_FILES if parallel_min_files is None else parallel_min_files
    cpus = pool.usable_cpus()
    if cpus < 2 or path_files < max(minimum, 2):
        return 1
    return cpus


def _read_in_pool(scans, paths_of: dict, workers: int | None, parallel_min_files: int | None,
                  session_label: str) -> dict:
    """Read the files given by path in the pool when it pays, and return their outcomes by (scan index, position).

    Returns an empty dict when the files are to be read in this process,
    and also when the pool fails (a worker killed by the system, say),
    after logging the error, so that the serial read takes over.
    """
    path_sets: list[tuple] = []
    set_index: dict[str, int] = {}
    tasks = []
    for scan_index, scan in enumerate(scans):
        paths = paths_of[scan.id]
        if not paths:
            continue
        for position, source in enumerate(scan.files):
            if isinstance(source, (str, os.PathLike)):
                if scan.id not in set_index:
                    set_index[scan.id] = len(path_sets)
                    path_sets.append(tuple(paths))
                tasks.append(pool.FileTask(scan_index, position, _file_label(source, scan.id, position),
                                           os.fspath(source), set_index[scan.id]))

    size = _pool_size(len(tasks), workers, parallel_min_files)
    if size < 2:
        return {}
    try:
        return pool.look_up_in_pool(tasks, path_sets, INSTANCE_NUMBER, size)
    except (BrokenProcessPool, OSError) as exc:
        logger.error("session %s: the pool of %d worker processes failed (%s), so this process "
                     "reads the %d files itself", session_label, size, exc, len(tasks))
        pool.shutdown_pool()
        return {}


# Combining values


def _apply_rule(parsed: _ParsedRule, headers: list[Header], level: str, scan_id: str | None,
                result: ExtractionResult, orders: dict[int, tuple]) -> None:
    """Look up one rule's tag path in ``headers`` and record its value or its problems.

    ``orders`` maps id() of each header to its order key (see :func:`_file_orders`).
    """
    rule, path = parsed.rule, parsed.path
    observations: list[_Observation] = []
    failures: dict[tuple[str, str], dict] = {}
    conversions: dict[tuple, Any] = {}
    tag_seen = False

    for header in headers:
        try:
            found = header.lookup(path)
        except DicomMappingsError as exc:
            _collect(failures, "invalid", str(exc), (), header.name)
            continue
        if not found:
            continue
        tag_seen = True

        order = orders[id(header)]
        for element in found:
            _observe(element, rule, path, header.name, order, observations, failures, conversions)

    for (kind, detail), entry in failures.items():
        result.problems.append(Problem(level, scan_id, rule.field_name, path.canonical, kind,
                                       detail, tuple(entry["values"]), tuple(entry["files"])))

    if not tag_seen:
        where = "the session" if level == "session" else f"scan {scan_id}"
        result.problems.append(Problem(
            level, scan_id, rule.field_name, path.canonical, "missing",
            f"no file of {where} has {path.canonical}", (), (),
        ))
        return
    if not observations:
        return

    outcome = _combine(rule, observations)
    if isinstance(outcome, Problem):
        result.problems.append(Problem(level, scan_id, rule.field_name, path.canonical,
                                       outcome.kind, outcome.detail, outcome.values, outcome.files))
        return

    text, value = outcome
    if level == "session":
        result.fields[rule.field_name] = text
        result.values[rule.field_name] = value
    else:
        result.parameters.setdefault(scan_id, {})[rule.field_name] = text
        result.parameter_values.setdefault(scan_id, {})[rule.field_name] = value


def _observe(element: ElementValue, rule: Rule, path: TagPath, file: str, order: tuple,
             observations: list, failures: dict, conversions: dict) -> None:
    """Convert one element's values for ``rule`` and record the value, its repairs or its failure.

    ``conversions`` keeps the outcome of each distinct (VR, values) of the
    rule, so that a value that many files share is converted once.
    """
    raw = tuple(element.values)
    for repair in element.repairs:
        _collect(failures, "repaired", repair, raw, file)

    key = _conversion_key(element.vr, raw)
    outcome = conversions.get(key) if key is not None else None
    if outcome is None:
        outcome = _convert(element.vr, raw, rule.field_type, path.value_index)
        if key is not None:
            conversions[key] = outcome

    if isinstance(outcome, _Failure):
        detail = _with_frames(outcome.detail, element) if outcome.with_frames else outcome.detail
        _collect(failures, outcome.kind, detail, raw, file)
        return

    for repair in outcome.repairs:
        _collect(failures, "repaired", repair, raw, file)
    observations.append(_Observation(file, order, raw, outcome.text, outcome.value,
                                     element.frames))


@dataclass(frozen=True)
class _Failure:
    """A conversion that failed: the problem's kind and detail."""

    kind: str
    detail: str
    with_frames: bool  # True when the detail names the frames of the element that failed


def _conversion_key(vr: str, raw: tuple) -> tuple | None:
    """Return the cache key of a conversion, or None when the values must not share one.

    Only text and integers are keyed: floats that compare equal can still
    convert differently (0.0 and -0.0, NaN), and 1 == 1.0 == True in a dict.
    """
    for value in raw:
        kind = type(value)
        if kind is not str and kind is not int:
            return None
    return (vr, raw)


def _convert(vr: str, raw: tuple, field_type: str, value_index: int | None):
    """Return the Converted value of ``raw``, or a _Failure when it cannot be converted."""
    try:
        return convert_value(vr, list(raw), field_type, value_index)
    except ConversionError as exc:
        kind = exc.kind if exc.kind in ("invalid", "missing") else "invalid"
        return _Failure(kind, str(exc), True)
    except (ValueError, TypeError, ArithmeticError) as exc:
        # NOTE: the converter documents only ConversionError; any other error
        # is reported as invalid so that one value never stops a session.
        return _Failure("invalid", f"the value cannot be converted: {exc}", False)


def _with_frames(detail: str, element: ElementValue) -> str:
    if not element.frames:
        return detail
    return f"{detail} (frames {_frame_list(element.frames)})"


def _frame_list(frames: tuple[int, ...]) -> str:
    if len(frames) > 6:
        return f"{frames[0]}, {frames[1]}, {frames[2]}, ... {frames[-1]} ({len(frames)} frames)"
    return ", ".join(str(frame) for frame in frames)


def _collect(failures: dict, kind: str, detail: str, raw: tuple, file: str) -> None:
    entry = failures.setdefault((kind, detail), {"values": [], "files": []})
    for value in raw:
        if value not in entry["values"]:
            entry["values"].append(value)
    if file not in entry["files"]:
        entry["files"].append(file)


def _file_orders(headers: list[Header]) -> dict[int, tuple]:
    """Return the order key of every header, by id() of the header, computed once per file."""
    return {id(header): _file_order(header) for header in headers}


def _file_order(header: Header) -> tuple:
    """Order key of a file: InstanceNumber (files without one last), then the file name."""
    text = header.text(INSTANCE_NUMBER)
    try:
        number = float(text) if text is not None else math.inf
    except ValueError:
        number = math.inf
    if math.isnan(number):
        number = math.inf
    return (number, header.name)


def _combine(rule: Rule, observations: list[_Observation]):
    """Apply the rule's conflict policy; return (text, value) or a Problem without its level."""
    policy = rule.conflict_policy if rule.conflict_policy in CONFLICT_POLICIES else "unique"
    ordered = sorted(observations, key=lambda item: (item.order, item.frames))
    distinct: dict[str, _Observation] = {}
    for observation in ordered:
        distinct.setdefault(observation.text, observation)

    if len(distinct) == 1:
        only = ordered[0]
        return only.text, only.value

    if policy == "first":
        return ordered[0].text, ordered[0].value
    if policy == "last":
        return ordered[-1].text, ordered[-1].value
    if policy == "all":
        texts = list(distinct)
        return "\\".join(texts), [distinct[text].value for text in texts]
    if policy in ("min", "max"):
        try:
            chosen = (min if policy == "min" else max)(distinct.values(), key=lambda item: item.value)
        except TypeError:
            return _conflict(ordered, distinct, f"the values cannot be ordered for policy {policy}")
        return chosen.text, chosen.value

    return _conflict(ordered, distinct, "policy unique keeps no value")


def _conflict(ordered: list[_Observation], distinct: dict, reason: str) -> Problem:
    pieces = []
    for text in distinct:
        with_text = [item for item in ordered if item.text == text]
        files = {item.file for item in with_text}
        frames = sum(len(item.frames) for item in with_text)
        plural = "s" if len(files) != 1 else ""
        piece = f'"{text}" in {len(files)} file{plural}'
        if frames:
            piece += f" ({frames} frame{'s' if frames != 1 else ''})"
        pieces.append(piece)

    files = []
    for item in ordered:
        if item.file not in files:
            files.append(item.file)
    detail = f"{len(distinct)} distinct values: {', '.join(pieces)}; {reason}"
    return Problem("", None, None, None, "conflict", detail, tuple(distinct), tuple(files))


def _log(result: ExtractionResult, label: str, scans, headers) -> None:
    parameter_count = sum(len(values) for values in result.parameters.values())
    logger.info(
        "session %s: %d session fields, %d scan parameters over %d scans, %d files read, "
        "%d problems, %d unreadable files",
        label, len(result.fields), parameter_count, len(scans), len(headers),
        len(result.problems), len(result.unreadable),
    )
    for problem in result.problems:
        where = "session" if problem.level == "session" else f"scan {problem.scan_id}"
        logger.warning("session %s, %s, field %s, tag %s: %s: %s", label, where,
                       problem.field_name, problem.dicom_tag, problem.kind, problem.detail)


def _json_value(value):
    if isinstance(value, (str, int, float, bool)) or value is None:
        if isinstance(value, float) and not math.isfinite(value):
            return str(value)
        return value
    return str(value)
