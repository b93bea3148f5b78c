"""The page's profile findings, written from the profiled numbers of the same run.

The reasoning below describes the extractor and reader as they stand, with
the numbers filled in from this run's pyinstrument samples. A step that is
missing from the profile (after a rename, say) is reported as missing, so
a stale paragraph shows itself. The changes listed at the end were measured
once, when they were made, and are not measured again by this run.
"""

from __future__ import annotations

from .profiling import Profile


def share(steps: dict[str, float], name: str) -> str:
    """Return "0.123 s, 45%" for one step of a profile, or "not in this profile"."""
    total = steps.get("extract_session") or 0.0
    seconds = steps.get(name, 0.0)
    if total <= 0 or seconds <= 0:
        return "not in this profile"
    return f"{seconds:.3f} s, {seconds / total:.0%}"


#: The changes made after the first profile, with their measured effect.
#: One script timed the code before and after each change on the 2,000
#: generated files with the ten rules, in 5 alternating rounds. The numbers
#: are the median CPU time of the whole extraction on the 2-core Xeon of this
#: page (Python 3.11.7, pydicom 3.0.2). Each change was measured against the code with the changes
#: above it.
MEASURED_CHANGES = (
    "- `_get` calls `Dataset.get_item` alone, without the `tag in dataset` test (pydicom 3.0 returns `None` "
    "for an absent tag): Datasets 440 ms to 384 ms.",
    "- The order key of each file (InstanceNumber, file name) is computed once per file in `_file_orders`, "
    "not once per rule and file: Datasets 394 ms to 320 ms, paths 583 ms to 539 ms.",
    "- `_observe` converts each distinct (VR, values) once per rule and replays its repairs and problems for "
    "every file that has it; only text and integer values are keyed, because floats that compare equal "
    "(0.0 and -0.0) may convert differently: Datasets 320 ms to 240 ms, paths 539 ms to 466 ms.",
    "- A `ParseCache` shared by the headers of one session parses the items of a sequence once per distinct "
    "bytes, so the Shared Functional Groups Sequence of a series is parsed once, not once per file "
    "(each header already parsed it once, not once per rule): Datasets 229 ms to 135 ms, paths 437 ms to "
    "338 ms.",
    "- The same cache decodes each distinct raw value once per session (keyed by its bytes, tag, VR, byte "
    "order, character set, location and private creator): Datasets 152 ms to 120 ms, paths 346 ms to "
    "324 ms.",
    "- Not done: reading the header region with one `read()` and walking it with `struct.unpack_from`. The "
    "element loop is now most of the time from paths (above), so this is the next change to try, but it "
    "must keep the loop's checks of truncated files and streams of unknown size.",
)


def findings(
    profile: Profile, file_count: int, rule_count: int, elements_per_file: int, bytes_fraction: float | None
) -> list[str]:
    """Return the paragraphs of the page's "What the profile shows" section.

    ``bytes_fraction`` is the CPU time of baseline (c) over the plugin's, from the throughput measurement.
    """
    if bytes_fraction is None:
        bytes_text = "measurement 1 did not run"
    else:
        bytes_text = f"(c) shows that the bytes themselves take {bytes_fraction:.0%} of the plugin's CPU time"
    paths = profile.sampled_steps
    datasets = profile.datasets_steps
    lookups = file_count * rule_count
    return [
        "### What the profile shows",
        "",
        "Shares below are of the sampled extraction from paths unless a line says Datasets.",
        "",
        f"1. **Reading the files** (`_read_scans`: {share(paths, '_read_scans')}) includes "
        f"`_read_elements` ({share(paths, '_read_elements')}), the reader's loop over top-level elements in "
        f"Python. A generated file has {elements_per_file} top-level elements before the pixel data, and the loop "
        "makes several calls for each: `read(8)`, `Struct.unpack`, `ReadPlan.wants()`, the `stop()` closure, "
        "`seek()` past an unwanted value, and a `RawDataElement` namedtuple for a kept one. Skipping the "
        "private blobs already works: each CSA header costs one `seek`, and "
        f"{bytes_text}. The cost is per element, not per byte.",
        "",
        f"2. **Applying the rules** (`_apply_rule`: {share(paths, '_apply_rule')}) does "
        f"{lookups:,} look-ups ({rule_count} rules x {file_count:,} files):",
        f"   - `Header.lookup` ({share(paths, 'Header.lookup')}) walks each tag path; parsing the functional "
        f"groups (`Header._sequence`: {share(paths, 'Header._sequence')}) happens once per distinct sequence "
        "value, which is once per series here, because the session's `ParseCache` keeps the parsed items.",
        f"   - `_observe` ({share(paths, '_observe')}) converts each distinct value once per rule.",
        f"   - `_file_order` ({share(paths, '_file_order')}) runs once per file.",
        "",
        f"3. **Datasets supplied by the host**: nothing is read (`_read_scans`: {share(datasets, '_read_scans')}), "
        f"so `_apply_rule` ({share(datasets, '_apply_rule')}) is the whole cost. Its largest part is "
        f"`_get` ({share(datasets, '_get')}), that is `Dataset.get_item`, which converts each tag to a "
        "`BaseTag` and compares it with pydicom's own `BaseTag.__eq__`.",
        "",
        "### Changes made after the first profile",
        "",
        *MEASURED_CHANGES,
        "",
    ]
