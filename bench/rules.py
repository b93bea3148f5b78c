"""The mapping rules that the extraction benchmarks apply to the generated sessions."""

from __future__ import annotations

from pathlib import Path

import pydicom
from pydicom.dataelem import DataElement

from xnat_dicom_mappings.rules import SITE, Rule

from .generate import SIEMENS_MR_HEADER

SESSION_TYPE = "xnat:mrSessionData"
SCAN_TYPE = "xnat:mrScanData"

#: The ten rules of the throughput benchmark, as (level, field name, field type,
#: tag expression). Half are session fields and half scan parameters; one reads
#: a Siemens private tag by its creator and one a functional group attribute.
STANDARD_RULES = (
    ("session", "weight", "float", "PatientWeight"),
    ("session", "scanner", "string", "ManufacturerModelName"),
    ("session", "fieldstrength", "float", "MagneticFieldStrength"),
    ("session", "studydescription", "string", "StudyDescription"),
    ("session", "station", "string", "StationName"),
    ("scan", "tr", "float", "RepetitionTime"),
    ("scan", "te", "float", "EchoTime"),
    ("scan", "flipangle", "float", "FlipAngle"),
    ("scan", "bvalue", "integer", f'(0019,"{SIEMENS_MR_HEADER}",0C)'),
    ("scan", "pixelspacing", "string",
     "SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing"),
)

#: Tags that differ from file to file inside a series, so no rule reads them.
PER_FILE_KEYWORDS = frozenset({
    "SOPInstanceUID", "InstanceNumber", "ImagePositionPatient", "SliceLocation",
})

#: Tags that differ from series to series, so only scan-level rules read them.
PER_SERIES_TAGS = frozenset({
    "0x0020000E", "0x00200011", "0x0008103E", "0x00180080", "0x00180081", "0x00181314",
    f'(0019,"{SIEMENS_MR_HEADER}",0C)',
})

_INTEGER_VRS = frozenset({"IS", "US", "SS", "UL", "SL"})
_FLOAT_VRS = frozenset({"DS", "FD", "FL"})
_SKIPPED_VRS = frozenset({"SQ", "OB", "OW", "OF", "OD", "OL", "UN", "UT"})


def canonical(expression: str) -> str:
    """Return the canonical form of a tag expression, as the rule store keeps it."""
    from xnat_dicom_mappings.tags import canonical_tag

    return canonical_tag(expression)


def make_rule(level: str, field_name: str, field_type: str, expression: str) -> Rule:
    """Return a site rule for the session or the scan level."""
    return Rule(
        scope=SITE,
        field_name=field_name,
        field_type=field_type,
        dicom_tag=canonical(expression),
        schema_element=SESSION_TYPE if level == "session" else SCAN_TYPE,
    )


def standard_rules() -> list[Rule]:
    """Return the ten rules of the throughput benchmark."""
    return [make_rule(*spec) for spec in STANDARD_RULES]


def field_type_for(element: DataElement) -> str:
    """Return the field type that a rule on ``element`` would declare."""
    multiple = element.VM > 1
    if element.VR in _INTEGER_VRS and not multiple:
        return "integer"
    if element.VR in _FLOAT_VRS and not multiple:
        return "float"
    if element.VR == "DA":
        return "date"
    if element.VR == "TM":
        return "time"
    return "string"


def candidate_expressions(sample_file: Path) -> list[tuple[str, str]]:
    """Return (tag expression, field type) for every non-empty, per-series element of a file.

    Public elements are given as plain tags and private ones by their creator,
    so that rules on them exercise the same two paths as the standard rules.
    """
    ds = pydicom.dcmread(sample_file, stop_before_pixels=True)
    creators = {}
    for element in ds:
        if element.tag.is_private_creator:
            creators[(element.tag.group, element.tag.element)] = element.value

    candidates = []
    for element in ds:
        tag = element.tag
        if element.VR in _SKIPPED_VRS or element.keyword in PER_FILE_KEYWORDS:
            continue
        if element.is_empty or tag.group == 0x0002 or tag.is_private_creator:
            continue

        if tag.is_private:
            creator = creators.get((tag.group, tag.element >> 8))
            if creator is None:
                continue
            expression = f'({tag.group:04X},"{creator}",{tag.element & 0xFF:02X})'
        else:
            expression = f"0x{int(tag):08X}"
        candidates.append((expression, field_type_for(element)))
    return candidates


def scaled_rules(count: int, sample_file: Path) -> list[Rule]:
    """Return ``count`` rules: the standard ten first, then rules on the file's other elements.

    Past the standard rules, each further rule reads the next candidate
    element of ``sample_file``. The rules alternate between the session and
    the scan level, but a tag that differs between series always gets a scan
    rule. After the last candidate the list starts over, with new field names.
    """
    rules = standard_rules()[:count]
    candidates = candidate_expressions(sample_file)

    index = 0
    while len(rules) < count:
        expression, field_type = candidates[index % len(candidates)]
        level = "session" if index % 2 == 0 and expression not in PER_SERIES_TAGS else "scan"
        rules.append(make_rule(level, f"field{index:03d}", field_type, expression))
        index += 1
    return rules
