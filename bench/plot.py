"""The scaling plot: extraction time against files per session and against rules."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: the plot only goes to a PNG file

import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

from .extraction import ScalingPoint  # noqa: E402

LABELS = {
    "plugin": "plugin (extract_session)",
    "b_header_attributes": "(b) dcmread(stop_before_pixels) + attributes",
    "c_bytes": "(c) read bytes only",
}


def write_scaling_plot(file_points: list[ScalingPoint], rule_points: list[ScalingPoint], path: Path, machine: str) -> None:
    """Write a two-panel PNG: CPU seconds against files (log-log) and against rules."""
    path.parent.mkdir(parents=True, exist_ok=True)
    figure, (by_files, by_rules) = plt.subplots(1, 2, figsize=(11, 4.5))

    file_counts = [point.file_count for point in file_points]
    for variant, label in LABELS.items():
        seconds = [point.seconds[variant].cpu for point in file_points]
        by_files.plot(file_counts, seconds, marker="o", label=label)
    by_files.set_xscale("log")
    by_files.set_yscale("log")
    by_files.set_xlabel("files per session")
    by_files.set_ylabel("CPU seconds per session (median)")
    by_files.set_title(f"{file_points[0].rule_count} rules, growing sessions")
    by_files.grid(True, which="both", alpha=0.3)
    by_files.legend(fontsize=8)

    rule_counts = [point.rule_count for point in rule_points]
    by_rules.plot(rule_counts, [point.seconds["plugin"].cpu for point in rule_points], marker="o", label=LABELS["plugin"])
    by_rules.set_xlabel("rules")
    by_rules.set_ylabel("CPU seconds per session (median)")
    by_rules.set_ylim(bottom=0)
    by_rules.set_title(f"{rule_points[0].file_count} files, growing rule sets")
    by_rules.grid(True, alpha=0.3)
    by_rules.legend(fontsize=8)

    figure.suptitle(machine, fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
