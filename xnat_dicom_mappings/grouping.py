"""Files, folders and zip archives to sessions and scans, and their extraction as JSON.

Files are grouped into sessions by StudyInstanceUID and into scans by
SeriesInstanceUID. A scan's id is its SeriesNumber, as in XNAT, with this
fallback: a series without SeriesNumber gets the next number after the
highest SeriesNumber of its session, and series that share a SeriesNumber
get the suffixes ``-1``, ``-2``, ... in the order of their SeriesInstanceUID.
"""

from __future__ import annotations

import io
import os
import posixpath
import zipfile
from dataclasses import dataclass, field
from typing import Iterable

from . import catalogue
from .errors import DicomMappingsError, TagSyntaxError
from .extractor import ScanInput, extract_session
from .reader import Header, UnreadableFile, read_header
from .rules import Rule
from .tags import TagPath, parse_tag

STUDY_INSTANCE_UID = 0x0020000D
SERIES_INSTANCE_UID = 0x0020000E
SERIES_NUMBER = 0x00200011
MODALITY = 0x00080060
INSTANCE_NUMBER = 0x00200013
#: The first bytes of a zip archive (a local file header).
ZIP_MAGIC = b"PK\x03\x04"

GROUPING_TAGS = (STUDY_INSTANCE_UID, SERIES_INSTANCE_UID, SERIES_NUMBER, MODALITY, INSTANCE_NUMBER)

#: Largest total uncompressed size of one zip archive's members, in bytes.
MAX_ZIP_BYTES = 8 * 1024**3

#: Largest ratio of uncompressed to compressed size of one zip member. DICOM
#: files compress by a factor of 2 to 10; zip bombs reach thousands.
MAX_COMPRESSION_RATIO = 200

#: Default limits of :func:`extract_uploads`: file count and total bytes.
MAX_UPLOAD_FILES = 5000
MAX_UPLOAD_BYTES = 2 * 1024**3


class UnsafeArchive(DicomMappingsError, ValueError):
    """A zip archive that is rejected: a member path escapes it, or it looks like a zip bomb."""


class UploadTooLarge(DicomMappingsError, ValueError):
    """Uploads with more files or more bytes than the limits passed in."""


@dataclass
class _Source:
    """One file to read: a label for reports and a way to open it."""

    label: str
    path: str | None = None
    data: bytes | None = None
    archive: zipfile.ZipFile | None = None
    member: zipfile.ZipInfo | None = None


@dataclass
class _Collected:
    sources: list[_Source] = field(default_factory=list)
    unreadable: list[dict] = field(default_factory=list)
    archives: list[zipfile.ZipFile] = field(default_factory=list)

    def close(self) -> None:
        for archive in self.archives:
            archive.close()


def extract_paths(rules: Iterable[Rule], paths: Iterable, project: str | None = None,
                  session_type: str | None = None) -> dict:
    """Extract every session found under ``paths`` and return the command line's JSON.

    ``paths`` are files, folders (searched recursively) and zip archives.
    ``session_type``, when given, replaces the session type derived from the
    study's modalities. Unreadable files and rejected archives are listed
    under ``"unreadable"``; they never stop the other files.
    """
    rules = list(rules)
    if isinstance(paths, (str, bytes, os.PathLike)):
        raise TypeError("paths must be a list of paths, not a single path")
    collected = _Collected()
    try:
        for path in paths:
            _collect_path(os.fspath(path), collected)
        return _extract(rules, collected, project, session_type)
    finally:
        collected.close()


def extract_uploads(rules: Iterable[Rule], uploads: Iterable[tuple[str, bytes]],
                    project: str | None = None, session_type: str | None = None, *,
                    max_files: int = MAX_UPLOAD_FILES, max_bytes: int = MAX_UPLOAD_BYTES,
                    max_ratio: float = MAX_COMPRESSION_RATIO) -> dict:
    """Extract uploaded files, given as (filename, bytes) pairs, and return the same JSON.

    A pair whose bytes are a zip archive is opened and its members read.
    ``max_files`` caps the number of files (zip members counted one by one)
    and ``max_bytes`` the total uncompressed bytes; exceeding either raises
    :class:`UploadTooLarge`. An unsafe zip archive raises :class:`UnsafeArchive`.
    """
    rules = list(rules)
    collected = _Collected()
    total_bytes = 0
    try:
        for name, data in uploads:
            if not isinstance(name, str) or not isinstance(data, (bytes, bytearray)):
                raise TypeError("uploads must be (filename, bytes) pairs")
            data = bytes(data)

            if zipfile.is_zipfile(io.BytesIO(data)):
                archive = zipfile.ZipFile(io.BytesIO(data))
                collected.archives.append(archive)
                members = _safe_members(archive, name, max_bytes - total_bytes, max_ratio)
                for member in members:
                    collected.sources.append(_Source(f"{name}/{member.filename}", archive=archive,
                                                     member=member))
                    total_bytes += member.file_size
            else:
                collected.sources.append(_Source(name, data=data))
                total_bytes += len(data)

            if len(collected.sources) > max_files:
                raise UploadTooLarge(
                    f"the upload has more than {max_files} files; send at most {max_files} "
                    "files at a time"
                )
            if total_bytes > max_bytes:
                raise UploadTooLarge(
                    f"the upload is larger than {max_bytes} bytes once unzipped; "
                    f"send at most {max_bytes} bytes at a time"
                )
        return _extract(rules, collected, project, session_type)
    finally:
        collected.close()


# Collecting sources


def _collect_path(path: str, collected: _Collected) -> None:
    if os.path.isdir(path):
        for folder, subfolders, files in os.walk(path):
            subfolders.sort()
            for name in sorted(files):
                _collect_file(os.path.join(folder, name), collected)
        return
    if not os.path.exists(path):
        collected.unreadable.append({"path": path, "reason": "no such file or folder"})
        return
    _collect_file(path, collected)


def _collect_file(path: str, collected: _Collected) -> None:
    try:
        with open(path, "rb") as stream:
            is_zip = stream.read(4) == ZIP_MAGIC
    except OSError as exc:
        collected.unreadable.append({"path": path, "reason": f"cannot open the file: {exc.strerror}"})
        return
    if not is_zip:
        collected.sources.append(_Source(path, path=path))
        return
    try:
        archive = zipfile.ZipFile(path)
        members = _safe_members(archive, path, MAX_ZIP_BYTES, MAX_COMPRESSION_RATIO)
    except (UnsafeArchive, zipfile.BadZipFile, OSError) as exc:
        collected.unreadable.append({"path": path, "reason": str(exc)})
        return
    collected.archives.append(archive)
    for member in members:
        collected.sources.append(_Source(f"{path}/{member.filename}", archive=archive,
                                         member=member))


def _safe_members(archive: zipfile.ZipFile, label: str, max_bytes: int,
                  max_ratio: float) -> list[zipfile.ZipInfo]:
    """Return the file members of an archive after the path, size and ratio checks."""
    members = []
    total = 0
    for member in archive.infolist():
        if member.is_dir():
            continue
        name = member.filename.replace("\\", "/")
        normalised = posixpath.normpath(name)
        if name.startswith("/") or normalised.startswith("..") or ":" in name.split("/")[0]:
            raise UnsafeArchive(
                f"zip archive {label} is rejected: member {member.filename!r} has a path that "
                "leaves the archive"
            )
        total += member.file_size
        if total > max_bytes:
            raise UnsafeArchive(
                f"zip archive {label} is rejected: its members hold more than {max_bytes} "
                "bytes uncompressed"
            )
        if member.file_size > 1024 * 1024 and member.file_size > max_ratio * max(member.compress_size, 1):
            raise UnsafeArchive(
                f"zip archive {label} is rejected: member {member.filename!r} expands "
                f"{member.file_size / max(member.compress_size, 1):.0f} times, more than the "
                f"maximum ratio {max_ratio:g} (a zip bomb)"
            )
        members.append(member)
    return members


def _read_source(source: _Source, paths: list[TagPath]) -> Header:
    if source.path is not None:
        return read_header(source.path, paths, extra_tags=GROUPING_TAGS, name=source.label)
    if source.data is not None:
        return read_header(io.BytesIO(source.data), paths, extra_tags=GROUPING_TAGS,
                           name=source.label)
    try:
        with source.archive.open(source.member) as stream:
            if stream.read(4) == ZIP_MAGIC:
                raise UnreadableFile("a zip archive inside a zip archive is not opened")
            stream.seek(0)
            return read_header(stream, paths, extra_tags=GROUPING_TAGS, name=source.label)
    except (zipfile.BadZipFile, RuntimeError, NotImplementedError) as exc:
        # zipfile raises these for a bad CRC, an encrypted member or an unknown compression.
        raise UnreadableFile(f"the zip member cannot be read: {exc}") from exc


# Grouping


def _extract(rules: list[Rule], collected: _Collected, project, session_type) -> dict:
    paths = []
    for rule in rules:
        try:
            paths.append(parse_tag(rule.dicom_tag))
        except TagSyntaxError:
            continue  # extract_session reports the rule's tag as invalid

    headers = []
    unreadable = list(collected.unreadable)
    for source in collected.sources:
        try:
            headers.append(_read_source(source, paths))
        except UnreadableFile as exc:
            unreadable.append({"path": source.label, "reason": exc.reason})

    studies: dict[str | None, list[Header]] = {}
    for header in headers:
        studies.setdefault(header.text(STUDY_INSTANCE_UID), []).append(header)

    sessions = []
    for study_uid in sorted(studies, key=lambda uid: (uid is None, uid or "")):
        sessions.append(_session_json(rules, study_uid, studies[study_uid], project, session_type))
        unreadable.extend(sessions[-1].pop("_unreadable"))
    return {"sessions": sessions, "unreadable": unreadable}


def _session_json(rules, study_uid, headers: list[Header], project, session_type) -> dict:
    series: dict[str | None, list[Header]] = {}
    for header in headers:
        series.setdefault(header.text(SERIES_INSTANCE_UID), []).append(header)

    scan_ids = assign_scan_ids({uid: files[0].text(SERIES_NUMBER) for uid, files in series.items()})
    modalities = {header.text(MODALITY) for header in headers} - {None}
    xsi_type = session_type or catalogue.session_type_for_modalities(modalities)

    scans = []
    for uid in sorted(series, key=lambda uid: _scan_sort_key(scan_ids[uid])):
        files = sorted(series[uid], key=lambda header: header.name)
        modality = next((header.text(MODALITY) for header in files if header.text(MODALITY)), None)
        scans.append(ScanInput(scan_ids[uid], catalogue.scan_type_for_modality(modality), files, uid))

    result = extract_session(rules, session_type=xsi_type, scans=scans, project=project,
                             session_id=study_uid)
    return {
        "studyInstanceUid": study_uid,
        "xsiType": xsi_type,
        "project": project,
        "fields": dict(result.fields),
        "scans": [
            {
                "id": scan.id,
                "seriesInstanceUid": scan.series_instance_uid,
                "xsiType": scan.xsi_type,
                "fileCount": len(scan.files),
                "parameters": dict(result.parameters.get(scan.id, {})),
            }
            for scan in scans
        ],
        "problems": [problem.to_json() for problem in result.problems],
        "_unreadable": result.unreadable,
    }


def assign_scan_ids(series_numbers: dict[str | None, str | None]) -> dict[str | None, str]:
    """Return a unique scan id for each SeriesInstanceUID, from its SeriesNumber.

    A series without SeriesNumber gets the next integer after the highest
    SeriesNumber of the session; series sharing a SeriesNumber get the
    suffixes ``-1``, ``-2``, ... in the order of their SeriesInstanceUID.
    """
    ordered = sorted(series_numbers, key=lambda uid: (uid is None, uid or ""))
    numbers = {uid: _normalise_number(series_numbers[uid]) for uid in ordered}

    counts: dict[str, int] = {}
    for number in numbers.values():
        if number is not None:
            counts[number] = counts.get(number, 0) + 1

    highest = max((int(n) for n in counts if n.lstrip("-").isdigit()), default=0)
    ids: dict[str | None, str] = {}
    used: set[str] = set()
    suffixes: dict[str, int] = {}
    for uid in ordered:
        number = numbers[uid]
        if number is None:
            highest += 1
            while str(highest) in counts or str(highest) in used:
                highest += 1
            candidate = str(highest)
        elif counts[number] > 1:
            suffixes[number] = suffixes.get(number, 0) + 1
            candidate = f"{number}-{suffixes[number]}"
        else:
            candidate = number
        used.add(candidate)
        ids[uid] = candidate
    return ids


def _normalise_number(text: str | None) -> str | None:
    if text is None or not text.strip():
        return None
    text = text.strip()
    try:
        return str(int(text))
    except ValueError:
        return text


def _scan_sort_key(scan_id: str) -> tuple:
    head = scan_id.split("-")[0]
    if head.isdigit():
        return (0, int(head), scan_id)
    return (1, 0, scan_id)
