"""XNAT's standard image session and scan types (xsi types)."""

from __future__ import annotations

#: Concrete session types, with the scan type that XNAT gives their scans.
SESSION_TYPES: dict[str, str] = {
    "xnat:mrSessionData": "xnat:mrScanData",
    "xnat:ctSessionData": "xnat:ctScanData",
    "xnat:petSessionData": "xnat:petScanData",
    "xnat:petmrSessionData": "xnat:mrScanData",
    "xnat:usSessionData": "xnat:usScanData",
    "xnat:crSessionData": "xnat:crScanData",
    "xnat:dxSessionData": "xnat:dxScanData",
    "xnat:dx3DCraniofacialSessionData": "xnat:dx3DCraniofacialScanData",
    "xnat:mgSessionData": "xnat:mgScanData",
    "xnat:nmSessionData": "xnat:nmScanData",
    "xnat:xaSessionData": "xnat:xaScanData",
    "xnat:xa3DSessionData": "xnat:xa3DScanData",
    "xnat:rfSessionData": "xnat:rfScanData",
    "xnat:rtSessionData": "xnat:rtImageScanData",
    "xnat:opSessionData": "xnat:opScanData",
    "xnat:optSessionData": "xnat:optScanData",
    "xnat:ioSessionData": "xnat:ioScanData",
    "xnat:esSessionData": "xnat:esScanData",
    "xnat:esvSessionData": "xnat:esvScanData",
    "xnat:gmSessionData": "xnat:gmScanData",
    "xnat:gmvSessionData": "xnat:gmvScanData",
    "xnat:smSessionData": "xnat:smScanData",
    "xnat:xcSessionData": "xnat:xcScanData",
    "xnat:xcvSessionData": "xnat:xcvScanData",
    "xnat:ecgSessionData": "xnat:ecgScanData",
    "xnat:epsSessionData": "xnat:epsScanData",
    "xnat:hdSessionData": "xnat:hdScanData",
    "xnat:srSessionData": "xnat:srScanData",
    "xnat:otherDicomSessionData": "xnat:otherDicomScanData",
}

#: Concrete scan types.
SCAN_TYPES: frozenset[str] = frozenset(SESSION_TYPES.values()) | {
    "xnat:scScanData",
    "xnat:srScanData",
    "xnat:otherDicomScanData",
    "xnat:segScanData",
}

#: Abstract parents. XNAT matches a mapping's schema element exactly, so a rule
#: on one of these would never apply to any archived session or scan.
ABSTRACT_TYPES: dict[str, str] = {
    "xnat:imageSessionData": "session",
    "xnat:experimentData": "session",
    "xnat:subjectAssessorData": "session",
    "xnat:imageAssessorData": "session",
    "xnat:imageScanData": "scan",
}

#: DICOM Modality (0008,0060) to the XNAT session and scan types that XNAT's
#: importer creates for it.
MODALITY_TYPES: dict[str, tuple[str, str]] = {
    "MR": ("xnat:mrSessionData", "xnat:mrScanData"),
    "CT": ("xnat:ctSessionData", "xnat:ctScanData"),
    "PT": ("xnat:petSessionData", "xnat:petScanData"),
    "US": ("xnat:usSessionData", "xnat:usScanData"),
    "CR": ("xnat:crSessionData", "xnat:crScanData"),
    "DX": ("xnat:dxSessionData", "xnat:dxScanData"),
    "MG": ("xnat:mgSessionData", "xnat:mgScanData"),
    "NM": ("xnat:nmSessionData", "xnat:nmScanData"),
    "XA": ("xnat:xaSessionData", "xnat:xaScanData"),
    "RF": ("xnat:rfSessionData", "xnat:rfScanData"),
    "RTIMAGE": ("xnat:rtSessionData", "xnat:rtImageScanData"),
    "OP": ("xnat:opSessionData", "xnat:opScanData"),
    "OPT": ("xnat:optSessionData", "xnat:optScanData"),
    "IO": ("xnat:ioSessionData", "xnat:ioScanData"),
    "ES": ("xnat:esSessionData", "xnat:esScanData"),
    "GM": ("xnat:gmSessionData", "xnat:gmScanData"),
    "SM": ("xnat:smSessionData", "xnat:smScanData"),
    "XC": ("xnat:xcSessionData", "xnat:xcScanData"),
    "ECG": ("xnat:ecgSessionData", "xnat:ecgScanData"),
    "EPS": ("xnat:epsSessionData", "xnat:epsScanData"),
    "HD": ("xnat:hdSessionData", "xnat:hdScanData"),
    "SC": ("xnat:otherDicomSessionData", "xnat:scScanData"),
    "SR": ("xnat:otherDicomSessionData", "xnat:srScanData"),
    "SEG": ("xnat:otherDicomSessionData", "xnat:segScanData"),
    "OT": ("xnat:otherDicomSessionData", "xnat:otherDicomScanData"),
}

#: Session types in the order that decides a study with several modalities;
#: the first one present wins, so PET wins over CT in a PET/CT study.
SESSION_PRIORITY: tuple[str, ...] = (
    "PT", "MR", "CT", "NM", "XA", "RF", "US", "MG", "DX", "CR", "RTIMAGE",
    "OP", "OPT", "IO", "ES", "GM", "SM", "XC", "ECG", "EPS", "HD",
)

#: Both levels, canonical spelling: ``{"xnat:mrSessionData": "session", ...}``.
SCHEMA_ELEMENTS: dict[str, str] = {
    **{name: "session" for name in SESSION_TYPES},
    **{name: "scan" for name in SCAN_TYPES},
}


def session_type_for_modalities(modalities) -> str:
    """Return the session xsi type for the set of Modality values of a study."""
    present = {str(m).strip().upper() for m in modalities if m}
    if "PT" in present and "MR" in present:
        return "xnat:petmrSessionData"

    for modality in SESSION_PRIORITY:
        if modality in present:
            return MODALITY_TYPES[modality][0]

    return "xnat:otherDicomSessionData"


def scan_type_for_modality(modality) -> str:
    """Return the scan xsi type for a series' Modality; unknown gives otherDicom."""
    key = str(modality or "").strip().upper()
    if key in MODALITY_TYPES:
        return MODALITY_TYPES[key][1]
    return "xnat:otherDicomScanData"
