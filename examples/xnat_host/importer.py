"""The DICOM importer: unpacked files to archived sessions, as XNAT's import service does it.

One session per StudyInstanceUID and one scan per SeriesInstanceUID. Each
session is passed to the plugin's archive hook, and the session fields, scan
parameters and problems it returns are stored beside the files. All rows of
one upload are written in one transaction, and the files are moved into the
archive only inside it, so a failed import leaves neither rows nor files.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as DbSession

from xnat_dicom_mappings.catalogue import scan_type_for_modality, session_type_for_modalities
from xnat_dicom_mappings.extractor import ScanInput

from .models import Scan, ScanParameter, Session, SessionField, SessionProblem, StoredFile
from .upload import UnpackedMember, UploadRejected, remove_tree

log = logging.getLogger(__name__)

_LABEL_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_MAX_LABEL = 64


@dataclass
class Instance:
    """One DICOM file of the upload, with its header read once."""

    member: UnpackedMember
    dataset: pydicom.Dataset
    study_uid: str
    series_uid: str
    sop_uid: str


@dataclass
class SeriesGroup:
    series_uid: str
    instances: list[Instance] = field(default_factory=list)


@dataclass
class StudyGroup:
    study_uid: str
    series: dict[str, SeriesGroup] = field(default_factory=dict)

    @property
    def first(self) -> pydicom.Dataset:
        return next(iter(self.series.values())).instances[0].dataset


@dataclass
class ImportRequest:
    project: str
    subject: str | None
    label: str | None
    user_name: str


def read_instances(members: list[UnpackedMember]) -> tuple[list[Instance], list[dict]]:
    """Read the header of every member; return the DICOM instances and the skipped members.

    A member is skipped, with its reason, when pydicom cannot read it, when it
    lacks StudyInstanceUID, SeriesInstanceUID or SOPInstanceUID (a DICOMDIR,
    or junk that force mode read as a dataset), or when its SOPInstanceUID
    repeats an earlier member's.
    """
    instances: list[Instance] = []
    skipped: list[dict] = []
    seen: dict[str, str] = {}

    for member in members:
        # NOTE: catch_warnings changes process-wide state, so two imports that
        # run at once in different threads may log each other's warnings.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                # force=True reads files without the 128-byte preamble; the UID
                # checks below then reject junk that force mode parsed.
                dataset = pydicom.dcmread(member.path, stop_before_pixels=True, force=True)
                uids = [str(dataset.get(keyword) or "").strip()
                        for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")]
            except Exception as exc:  # pydicom raises many types on arbitrary bytes
                skipped.append({"path": member.name, "reason": f"not a DICOM file ({exc})"})
                continue

        if not all(uids):
            skipped.append({
                "path": member.name,
                "reason": "not a DICOM image: StudyInstanceUID, SeriesInstanceUID "
                          "or SOPInstanceUID is missing",
            })
            continue

        # pydicom's warnings are noise for a member that is skipped as junk,
        # but worth keeping in the log for one that is archived.
        for warning in caught:
            log.warning("reading %s: %s", member.name, warning.message)

        study_uid, series_uid, sop_uid = uids
        if sop_uid in seen:
            skipped.append({
                "path": member.name,
                "reason": f"duplicate SOPInstanceUID {sop_uid} of member {seen[sop_uid]!r}",
            })
            continue
        seen[sop_uid] = member.name

        # The extractor names files by the dataset's filename in its problems,
        # so the client sees its own member names instead of staging paths.
        dataset.filename = member.name
        instances.append(Instance(member, dataset, study_uid, series_uid, sop_uid))

    return instances, skipped


def group_studies(instances: list[Instance]) -> list[StudyGroup]:
    """Group instances by StudyInstanceUID, then SeriesInstanceUID, in upload order."""
    studies: dict[str, StudyGroup] = {}
    for instance in instances:
        study = studies.setdefault(instance.study_uid, StudyGroup(instance.study_uid))
        series = study.series.setdefault(instance.series_uid, SeriesGroup(instance.series_uid))
        series.instances.append(instance)
    return list(studies.values())


def _text(dataset: pydicom.Dataset, keyword: str) -> str:
    try:
        return str(dataset.get(keyword) or "").strip()
    except Exception:  # a malformed element must not stop the import
        return ""


def _safe_label(text: str) -> str:
    return _LABEL_UNSAFE.sub("_", text).strip("_")[:_MAX_LABEL]


def _scan_ids(study: StudyGroup) -> dict[str, str]:
    """Scan IDs by SeriesInstanceUID: the SeriesNumber, as XNAT uses it, made unique."""
    ids: dict[str, str] = {}
    used: set[str] = set()
    for series in study.series.values():
        number = _safe_label(_text(series.instances[0].dataset, "SeriesNumber"))
        candidate = number or str(len(ids) + 1)
        suffix = 1
        unique = candidate
        while unique in used:
            suffix += 1
            unique = f"{candidate}-{suffix}"
        used.add(unique)
        ids[series.series_uid] = unique
    return ids


@dataclass
class PreparedSession:
    """One study ready to store: its rows' values and the hook's result."""

    study: StudyGroup
    label: str
    subject: str
    xsi_type: str
    scan_ids: dict[str, str]
    scan_types: dict[str, str]
    result: object  # xnat_dicom_mappings.extractor.ExtractionResult


def prepare_sessions(mappings, studies: list[StudyGroup], request: ImportRequest,
                     db: DbSession) -> list[PreparedSession]:
    """Name each study's session and scans and run the archive hook on it.

    Runs before any row is written, so the plugin reads its rules while this
    host holds no write lock (SQLite allows one writer at a time).

    Raises:
        UploadRejected: EXPT_LABEL is given for several studies, a study is
            already archived in the project, or a label is taken.
    """
    if request.label and len(studies) > 1:
        raise UploadRejected(
            f"EXPT_LABEL={request.label!r} names one session, but the zip contains "
            f"{len(studies)} studies; upload them separately or leave EXPT_LABEL out"
        )

    taken_labels = set(db.scalars(
        sa.select(Session.label).where(Session.project_id == request.project)
    ))
    prepared = []
    for study in studies:
        existing = db.scalar(sa.select(Session).where(
            Session.project_id == request.project,
            Session.study_instance_uid == study.study_uid,
        ))
        if existing is not None:
            raise UploadRejected(
                f"study {study.study_uid} is already archived in project {request.project} "
                f"as session {existing.accession} ({existing.label}); delete it first",
                status=409,
            )

        label = _session_label(study, request, taken_labels)
        taken_labels.add(label)
        prepared.append(_prepare_one(mappings, study, request, label))

    return prepared


def _session_label(study: StudyGroup, request: ImportRequest, taken: set[str]) -> str:
    if request.label:
        if request.label in taken:
            raise UploadRejected(
                f"project {request.project} already has a session labelled {request.label!r}; "
                "choose another EXPT_LABEL",
                status=409,
            )
        return request.label

    # XNAT's default labelling takes the session label from PatientID.
    base = _safe_label(_text(study.first, "PatientID")) or "session"
    label = base
    suffix = 1
    while label in taken:
        suffix += 1
        label = f"{base}_{suffix}"
    return label


def _prepare_one(mappings, study: StudyGroup, request: ImportRequest, label: str) -> PreparedSession:
    modalities = {_text(series.instances[0].dataset, "Modality") for series in study.series.values()}
    session_type = session_type_for_modalities(modalities)
    scan_ids = _scan_ids(study)

    scans = []
    scan_types = {}
    for series in study.series.values():
        scan_type = scan_type_for_modality(_text(series.instances[0].dataset, "Modality"))
        scan_types[series.series_uid] = scan_type
        scans.append(ScanInput(
            id=scan_ids[series.series_uid],
            xsi_type=scan_type,
            files=[instance.dataset for instance in series.instances],
            series_instance_uid=series.series_uid,
        ))

    subject = request.subject or _safe_label(_text(study.first, "PatientName")) or "unknown"
    result = mappings.extract_session(
        project=request.project,
        session_type=session_type,
        scans=scans,
        session_id=f"{request.project}/{label}",
    )
    return PreparedSession(study, label, subject, session_type, scan_ids, scan_types, result)


def store_sessions(db: DbSession, prepared: list[PreparedSession], request: ImportRequest,
                   data_dir: Path) -> list[Session]:
    """Insert the sessions and move their files into the archive, then commit.

    On any failure the transaction is rolled back and the files already moved
    are deleted, so nothing of the upload stays behind.

    Raises:
        UploadRejected: 409 when another request archived the same label or
            study between the checks and the commit.
    """
    moved: list[Path] = []
    try:
        sessions = [_store_one(db, item, request, data_dir, moved) for item in prepared]
        db.commit()
    except IntegrityError as exc:
        db.rollback()
        for folder in moved:
            remove_tree(folder)
        raise UploadRejected(
            "another upload archived the same session label or study at the same time; "
            f"retry the import ({exc.orig.__class__.__name__})",
            status=409,
        ) from exc
    except BaseException:
        db.rollback()
        for folder in moved:
            remove_tree(folder)
        raise

    for session in sessions:
        log.info("archived session %s (%s) in project %s: %d scans, %d problems",
                 session.accession, session.label, session.project_id,
                 len(session.scans), len(session.problems))
    return sessions


def _store_one(db: DbSession, item: PreparedSession, request: ImportRequest,
               data_dir: Path, moved: list[Path]) -> Session:
    session = Session(
        project_id=request.project,
        subject_label=item.subject,
        label=item.label,
        xsi_type=item.xsi_type,
        study_instance_uid=item.study.study_uid,
        created_by=request.user_name,
    )
    db.add(session)
    db.flush()  # assigns session.pk, from which the folder name comes

    for name, value in item.result.fields.items():
        session.fields.append(SessionField(name=name, value=value))
    for position, problem in enumerate(item.result.problems):
        session.problems.append(SessionProblem(position=position, body=problem.to_json()))

    session_dir = data_dir / "archive" / request.project / session.accession
    moved.append(session_dir)
    for series in item.study.series.values():
        scan_id = item.scan_ids[series.series_uid]
        scan = Scan(
            scan_id=scan_id,
            xsi_type=item.scan_types[series.series_uid],
            series_instance_uid=series.series_uid,
            series_description=_text(series.instances[0].dataset, "SeriesDescription")[:255],
        )
        session.scans.append(scan)

        for name, value in item.result.parameters.get(scan_id, {}).items():
            scan.parameters.append(ScanParameter(name=name, value=value))

        scan_dir = session_dir / "SCANS" / scan_id / "DICOM"
        scan_dir.mkdir(parents=True, exist_ok=True)
        for instance in series.instances:
            target = scan_dir / f"{_safe_label(instance.sop_uid.replace('.', '-'))}.dcm"
            os.replace(instance.member.path, target)
            scan.files.append(StoredFile(
                path=target.relative_to(data_dir).as_posix(),
                sop_instance_uid=instance.sop_uid,
                source_name=instance.member.name,
                size=instance.member.size,
            ))

    db.flush()
    return session
