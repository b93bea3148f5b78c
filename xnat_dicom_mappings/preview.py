"""Preview: what the rules would extract from uploaded DICOM files, storing nothing."""

from __future__ import annotations

import json
import logging
from dataclasses import replace

from flask import current_app, jsonify, request
from marshmallow import ValidationError
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge, UnsupportedMediaType

from .grouping import UnsafeArchive, UploadTooLarge, extract_uploads
from .rules import Rule
from .schemas import RuleSchema, canonical_schema_element

logger = logging.getLogger(__name__)


def run_preview():
    """Run the stored rules, plus the candidate rules sent along, on the uploaded files.

    The form fields are ``files`` (DICOM files or zips, repeated), and the
    optional ``project``, ``sessionType`` and ``rules`` (a JSON array of
    rules in the API's format). A candidate with the id of a stored rule
    replaces that rule, so an edit can be previewed before it is saved.
    """
    ext = current_app.extensions["dicom_mappings"]
    settings = ext.settings

    if request.mimetype != "multipart/form-data":
        content_type = request.headers.get("Content-Type") or "none"
        raise UnsupportedMediaType(
            f"Send the files as multipart/form-data in the field 'files', not {content_type}."
        )

    uploads = []
    for storage in request.files.getlist("files"):
        uploads.append((storage.filename or "upload", storage.read()))
    if not uploads:
        raise BadRequest("No files were sent; add DICOM files or zips in the form field 'files'.")

    project = _project(ext, request.form.get("project"))
    session_type = _session_type(ext, request.form.get("sessionType"))
    candidates = _candidate_rules(ext, request.form.get("rules"))

    rules = _rules_with_candidates(ext.rules(), candidates)
    try:
        result = extract_uploads(
            rules, uploads, project=project, session_type=session_type,
            max_files=settings["DICOM_MAPPINGS_PREVIEW_MAX_FILES"],
            max_bytes=settings["DICOM_MAPPINGS_PREVIEW_MAX_BYTES"],
        )
    except UploadTooLarge as exc:
        raise RequestEntityTooLarge(f"The preview upload is too large: {exc}.") from exc
    except UnsafeArchive as exc:
        raise BadRequest(f"The zip file was rejected: {exc}.") from exc

    logger.info(
        "preview of %d uploaded file(s) gave %d session(s) and %d unreadable file(s)",
        len(uploads), len(result["sessions"]), len(result["unreadable"]),
    )
    return jsonify(result)


def _project(ext, text: str | None) -> str | None:
    if not text:
        return None

    canonical = ext.host.canonical_project(text)
    if canonical is None:
        raise ValidationError({"project": [f"Project {text!r} does not exist; give an existing project ID or leave it empty."]})
    return canonical


def _session_type(ext, text: str | None) -> str | None:
    if not text:
        return None

    try:
        canonical = canonical_schema_element(ext.host, text)
    except ValidationError as exc:
        raise ValidationError({"sessionType": exc.messages if isinstance(exc.messages, list) else [str(exc.messages)]}) from exc
    if ext.host.schema_elements().get(canonical) != "session":
        raise ValidationError({"sessionType": [f"{canonical} is a scan type; give a session type such as xnat:mrSessionData."]})
    return canonical


def _candidate_rules(ext, text: str | None) -> list[Rule]:
    if not text:
        return []

    try:
        data = json.loads(text)
    except RecursionError as exc:
        raise ValidationError({"rules": ["The rules field is nested too deeply; send a flat JSON array of rule objects."]}) from exc
    except ValueError as exc:
        raise ValidationError({"rules": [f"The rules field is not valid JSON: {exc}."]}) from exc
    if not isinstance(data, list):
        raise ValidationError({"rules": ["The rules field must be a JSON array of rules."]})

    schema = RuleSchema(host=ext.host)
    candidates = []
    for position, item in enumerate(data):
        try:
            candidates.append(schema.load(item))
        except ValidationError as exc:
            raise ValidationError({f"rules[{position}]": exc.messages}) from exc
    return candidates


def _rules_with_candidates(stored: list[Rule], candidates: list[Rule]) -> list[Rule]:
    """Return the stored rules with each candidate replacing the stored rule of its id."""
    replaced = {rule.id for rule in candidates if rule.id}
    rules = [rule for rule in stored if rule.id not in replaced]

    # Unsaved candidates get negative ids so that they never collide with stored ones.
    for position, rule in enumerate(candidates, start=1):
        rules.append(rule if rule.id else replace(rule, id=-position))
    return rules
