"""The page's profile findings, written from the profiled numbers of the same run.

The reasoning below describes the extractor and reader as they stand, with
the numbers filled in from this run's pyinstrument samples. A step that is
missing from the profile (after a rename, say) is reported as missing, so
a stale paragraph shows itself.
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
        "makes several calls for each: `tell()`, `read(8)`, `Struct.unpack`, `ReadPlan.wants()`, the `stop()` "
        "closure, `seek()` past an unwanted value, and a `RawDataElement` namedtuple for a kept one. Skipping the "
        "private blobs already works: each CSA header costs one `seek`, and "
        f"{bytes_text}. The cost is per element, not per byte.",
        "",
        f"2. **Applying the rules** (`_apply_rule`: {share(paths, '_apply_rule')}) does "
        f"{lookups:,} look-ups ({rule_count} rules x {file_count:,} files):",
        f"   - `Header.lookup` ({share(paths, 'Header.lookup')}) includes `Header._sequence` "
        f"({share(paths, 'Header._sequence')}): for the functional-group rule, pydicom's `read_sequence` parses "
        "the Shared Functional Groups Sequence and its Pixel Measures Sequence again in every file.",
        f"   - `_observe` ({share(paths, '_observe')}) calls `convert_value` once per file and rule, although a "
        "session field has the same raw value in every file of the session.",
        f"   - `_file_order` ({share(paths, '_file_order')}) decodes InstanceNumber once per rule and file, "
        "although the order key depends only on the file.",
        "",
        f"3. **Datasets supplied by the host**: nothing is read (`_read_scans`: {share(datasets, '_read_scans')}), "
        f"so `_apply_rule` ({share(datasets, '_apply_rule')}) is the whole cost. There `_get` "
        f"({share(datasets, '_get')}) calls `tag in dataset` and then `dataset.get_item(BaseTag(tag))`, so "
        "pydicom converts the tag twice per element. "
        f"`_file_order` ({share(datasets, '_file_order')}) and `Header._sequence` "
        f"({share(datasets, 'Header._sequence')}) cost here as they do from paths.",
        "",
        "### Changes the profile suggests",
        "",
        "These are proposals for the reader and extractor; the benchmarks have not measured them.",
        "",
        "- Compute each file's order key once, when its header is read, and keep it on the `Header`: this removes "
        f"{rule_count - 1} of every {rule_count} `_file_order` calls with {rule_count} rules.",
        "- Convert each distinct raw value once per rule: key the `convert_value` result by (VR, raw values, "
        "field type, value index), so a session field seen in every file is converted once instead of once per "
        "file. Record repairs and problems per file from the cached result, as now.",
        "- In `_get`, call `Dataset.get_item(tag)` alone: in pydicom 3.0.2 it returns `None` for an absent tag, so "
        "the `in` test, which converts the tag a second time, is not needed.",
        "- In `_read_elements`, read the header region with one `read()` and walk it with `struct.unpack_from` at "
        "integer offsets, instead of `tell()`/`read()`/`seek()` per element; test whole groups against the "
        "requested groups before calling `wants()`, and fold `stop()` into the loop.",
        "- Keep the parsed items of a sequence on the `Header` the first time a path enters it, so that several "
        "rules on one functional group parse it once per file.",
        "",
    ]
