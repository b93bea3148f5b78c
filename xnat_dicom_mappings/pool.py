"""Parallel reading of a session's DICOM files in a pool of worker processes.

:func:`look_up_in_pool` reads files given by path in worker processes and
looks up the rules' tag paths there. Each file comes back as a
:class:`LookedUpFile`, which has the ``lookup`` and ``text`` methods of a
:class:`~.reader.Header`, so the extractor combines the values with the
same code as in a serial run.

The pool uses the ``forkserver`` start method (``spawn`` where there is
none), because forking a threaded web server can copy a lock that another
thread holds. The pool is started on first use and kept running, because
starting it costs more than reading a few hundred files. :func:`shutdown_pool`
stops it, and runs at interpreter exit.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Sequence

from .errors import DicomMappingsError
from .reader import ElementValue, ParseCache, UnreadableFile, read_header
from .tags import TagPath

logger = logging.getLogger(__name__)

_pool: ProcessPoolExecutor | None = None
_pool_workers = 0
_pool_lock = threading.Lock()


def usable_cpus() -> int:
    """Return the number of CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def start_method() -> str:
    """Return ``forkserver`` where the platform has it, else ``spawn``."""
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


def get_pool(workers: int) -> ProcessPoolExecutor:
    """Return the running pool of ``workers`` processes.

    Starts the pool when there is none, and replaces a pool of another size.
    """
    global _pool, _pool_workers
    with _pool_lock:
        if _pool is not None and _pool_workers != workers:
            _pool.shutdown(wait=True)
            _pool = None
        if _pool is None:
            context = multiprocessing.get_context(start_method())
            _pool = ProcessPoolExecutor(workers, mp_context=context)
            _pool_workers = workers
            logger.info("started a pool of %d worker processes (%s)", workers, start_method())
        return _pool


def shutdown_pool() -> None:
    """Stop the worker processes of the running pool, if any. The next parallel call starts a new pool."""
    global _pool
    with _pool_lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=True)
        logger.info("stopped the pool of %d worker processes", _pool_workers)


atexit.register(shutdown_pool)


class LookedUpFile:
    """The look-ups of one file, made in a worker process: a stand-in for its Header.

    ``outcomes`` maps the canonical form of each tag path to the values
    found, or to the message of the error that the look-up raised.
    """

    def __init__(self, name: str, instance_number: str | None, outcomes: dict[str, tuple | str]):
        self.name = name
        self.instance_number = instance_number
        self.outcomes = outcomes

    def lookup(self, path: TagPath) -> list[ElementValue]:
        """Return the values found for ``path``, or raise DicomMappingsError with the look-up's message."""
        outcome = self.outcomes[path.canonical]
        if isinstance(outcome, str):
            raise DicomMappingsError(outcome)
        return list(outcome)

    def text(self, tag: int) -> str | None:
        """Return the Instance Number text, the only top-level text the extractor requests."""
        return self.instance_number


@dataclass(frozen=True)
class FileTask:
    """One file to read in a worker: its place in the session and the tag paths to look up."""

    scan_index: int
    position: int
    label: str
    path: str
    path_set: int  # index into the chunk's tuple of tag path lists


def look_up_in_pool(tasks: list[FileTask], path_sets: list[tuple[TagPath, ...]], instance_number: int,
                    workers: int) -> dict[tuple[int, int], LookedUpFile | UnreadableFile]:
    """Read and look up ``tasks`` in the pool, and return each file's outcome by (scan index, position).

    The files are cut into one contiguous chunk per worker, so that the
    files of a series, which often share sequence bytes, meet in one
    worker's :class:`~.reader.ParseCache`.
    """
    pool = get_pool(workers)
    size = -(-len(tasks) // workers)
    chunks = [tasks[start:start + size] for start in range(0, len(tasks), size)]
    futures = [pool.submit(_look_up_chunk, chunk, path_sets, instance_number) for chunk in chunks]

    outcomes: dict[tuple[int, int], LookedUpFile | UnreadableFile] = {}
    for chunk, future in zip(chunks, futures):
        for task, outcome in zip(chunk, future.result()):
            outcomes[(task.scan_index, task.position)] = outcome
    return outcomes


def _look_up_chunk(chunk: Sequence[FileTask], path_sets: list[tuple[TagPath, ...]],
                   instance_number: int) -> list[LookedUpFile | UnreadableFile]:
    """Read each file of ``chunk`` and look up its tag paths, in a worker process."""
    cache = ParseCache()
    outcomes: list[LookedUpFile | UnreadableFile] = []
    for task in chunk:
        paths = path_sets[task.path_set]
        try:
            header = read_header(task.path, paths, extra_tags=(instance_number,), name=task.label,
                                 cache=cache)
        except UnreadableFile as exc:
            outcomes.append(exc)
            continue

        found: dict[str, tuple | str] = {}
        for path in paths:
            try:
                found[path.canonical] = tuple(header.lookup(path))
            except DicomMappingsError as exc:
                found[path.canonical] = str(exc)
        outcomes.append(LookedUpFile(header.name, header.text(instance_number), found))
    return outcomes
