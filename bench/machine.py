"""A one-line description of the machine and software that a table was measured on."""

from __future__ import annotations

import os
import platform
from functools import lru_cache
from importlib.metadata import version


@lru_cache(maxsize=1)
def cpu_model() -> str:
    """Return the CPU model name from /proc/cpuinfo, or the platform's processor string."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def usable_cores() -> int:
    """Return the number of cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def describe(extra: str = "") -> str:
    """Return the machine line printed above each table, with ``extra`` appended."""
    line = (
        f"Machine: {usable_cores()} cores ({cpu_model()}), "
        f"Python {platform.python_version()}, pydicom {version('pydicom')}"
    )
    if extra:
        line += f", {extra}"
    return line
