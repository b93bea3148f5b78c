"""The host's REST routes under /data, modelled on XNAT's, and a small home page."""

from __future__ import annotations

import logging
import re
import tempfile
from pathlib import Path

import sqlalchemy as sa
from flask import Blueprint, abort, current_app, jsonify, render_template_string, request
from werkzeug.exceptions import HTTPException

from xnat_dicom_mappings.catalogue import SESSION_TYPES

from .auth import api_admin_required, api_login_required, current_user_name
from .importer import (ImportRequest, group_studies, prepare_sessions, read_instances,
                       store_sessions)
from .models import CustomVariable, Project, Session
from .upload import UploadRejected, receive_body, remove_tree, unpack_upload

log = logging.getLogger(__name__)

bp = Blueprint("views", __name__)

#: XNAT's rule for project IDs and labels: letters, digits, "_" and "-".
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

#: Custom variable names, as XNAT stores them: lowercase, starting with a letter.
_FIELD_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,254}$")

_FIELD_TYPES = ("string", "integer", "float", "boolean", "date", "time", "datetime")

_ZIP_TYPES = ("application/zip", "application/x-zip-compressed")


def _state():
    return current_app.extensions["xnat_host"]


def _db():
    from .app import db_session

    return db_session()


def json_error(error: HTTPException):
    """Return every error under /data as JSON, in the plugin API's error shape."""
    response = jsonify({"status": error.code, "error": error.name, "message": error.description})
    response.status_code = error.code
    if error.code == 401:
        response.headers["WWW-Authenticate"] = 'Basic realm="XNAT"'
    return response


def _json_body() -> dict:
    if not request.data:
        return {}
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400, description="the request body must be a JSON object")
    return body


def _project_or_404(project_id: str) -> Project:
    canonical = _state().host.canonical_project(project_id)
    project = _db().get(Project, canonical) if canonical else None
    if project is None:
        abort(404, description=f"project {project_id!r} does not exist; "
                               f"create it with PUT /data/projects/{project_id}")
    return project


def _project_json(project: Project) -> dict:
    return {
        "ID": project.id,
        "name": project.name,
        "description": project.description,
        "URI": f"/data/projects/{project.id}",
    }


def _result_set(rows: list[dict]) -> dict:
    # XNAT wraps lists in a ResultSet with the count as a string.
    return {"ResultSet": {"Result": rows, "totalRecords": str(len(rows))}}


@bp.get("/")
def index():
    return render_template_string(
        """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>XNAT reference host</title></head>
<body>
<h1>XNAT reference host</h1>
{% if current_user.is_authenticated %}
<p>Signed in as {{ current_user.username }}.</p>
<ul>
  <li><a href="{{ url_for('views.list_projects') }}">Projects (JSON)</a></li>
  {% if current_user.is_admin %}<li><a href="{{ admin_url }}">DICOM mappings</a></li>{% endif %}
</ul>
<form method="post" action="{{ url_for('auth.logout') }}">
  <input type="hidden" name="csrf_token" value="{{ token }}">
  <button type="submit">Sign out</button>
</form>
{% else %}
<p><a href="{{ url_for('auth.login') }}">Sign in</a></p>
{% endif %}
</body></html>""",
        admin_url=current_app.config.get("DICOM_MAPPINGS_ADMIN_URL", "/admin/dicom-mappings"),
        token=_csrf_token(),
    )


def _csrf_token() -> str:
    from xnat_dicom_mappings.security import csrf_token

    return csrf_token()


@bp.get("/data/projects")
@api_login_required
def list_projects():
    projects = _db().scalars(sa.select(Project).order_by(Project.id))
    return jsonify(_result_set([_project_json(p) for p in projects]))


@bp.get("/data/projects/<project_id>")
@api_login_required
def get_project(project_id: str):
    return jsonify({"items": [_project_json(_project_or_404(project_id))]})


@bp.put("/data/projects/<project_id>")
@api_admin_required
def put_project(project_id: str):
    """Create a project, or update its name and description; 201 when created.

    Name and description come from the JSON body or, as XNAT clients send
    them, from the ``name`` and ``description`` query parameters.
    """
    if not _ID.match(project_id):
        abort(400, description=f"project ID {project_id!r} is invalid; use 1 to 64 letters, "
                               "digits, '_' or '-'")

    body = _json_body()
    name = str(body.get("name") or request.args.get("name") or project_id)
    description = str(body.get("description") or request.args.get("description") or "")

    db = _db()
    existing = _state().host.canonical_project(project_id)
    if existing is not None and existing != project_id:
        abort(409, description=f"project {existing!r} already exists and differs only in letter case")

    project = db.get(Project, project_id)
    created = project is None
    if created:
        project = Project(id=project_id, name=name, description=description)
        db.add(project)
    else:
        project.name = name
        project.description = description
    db.commit()

    if created:
        log.info("user %s created project %s", current_user_name(), project_id)
    response = jsonify(_project_json(project))
    response.status_code = 201 if created else 200
    response.headers["Location"] = f"/data/projects/{project.id}"
    return response


@bp.get("/data/projects/<project_id>/custom_variables")
@api_login_required
def list_custom_variables(project_id: str):
    project = _project_or_404(project_id)
    rows = _db().scalars(
        sa.select(CustomVariable)
        .where(CustomVariable.project_id == project.id)
        .order_by(CustomVariable.session_type, CustomVariable.name)
    )
    return jsonify(_result_set([_custom_variable_json(row) for row in rows]))


def _custom_variable_json(variable: CustomVariable) -> dict:
    return {
        "project": variable.project_id,
        "sessionType": variable.session_type,
        "name": variable.name,
        "type": variable.field_type,
        "URI": f"/data/projects/{variable.project_id}/custom_variables/"
               f"{variable.session_type}/{variable.name}",
    }


@bp.put("/data/projects/<project_id>/custom_variables/<session_type>/<name>")
@api_admin_required
def put_custom_variable(project_id: str, session_type: str, name: str):
    """Define custom variable ``name`` for sessions of ``session_type``; 201 when new.

    The JSON body may give ``{"type": "float"}``; the default type is string.
    """
    project = _project_or_404(project_id)
    canonical_types = {key.lower(): key for key in SESSION_TYPES}
    session_type = canonical_types.get(session_type.lower(), "")
    if not session_type:
        abort(400, description=f"{request.view_args['session_type']!r} is not a session xsi type; "
                               "use one such as xnat:mrSessionData")

    name = name.lower()
    if not _FIELD_NAME.match(name):
        abort(400, description=f"custom variable name {name!r} is invalid; use lowercase "
                               "letters, digits, '_' or '-', starting with a letter")

    field_type = str(_json_body().get("type") or "string").lower()
    if field_type not in _FIELD_TYPES:
        abort(400, description=f"type {field_type!r} is invalid; use one of {', '.join(_FIELD_TYPES)}")

    db = _db()
    variable = db.scalar(sa.select(CustomVariable).where(
        CustomVariable.project_id == project.id,
        CustomVariable.session_type == session_type,
        CustomVariable.name == name,
    ))
    created = variable is None
    if created:
        variable = CustomVariable(project_id=project.id, session_type=session_type, name=name)
        db.add(variable)
    variable.field_type = field_type
    db.commit()

    response = jsonify(_custom_variable_json(variable))
    response.status_code = 201 if created else 200
    return response


@bp.post("/data/services/import")
@api_login_required
def import_zip():
    """Archive a zip of DICOM files: one session per study, one scan per series.

    Query parameters as in XNAT: ``PROJECT_ID`` (required), ``SUBJECT_ID`` and
    ``EXPT_LABEL`` (one study only). Returns 200 with the archived sessions and
    the members that were skipped.
    """
    project_id = request.args.get("PROJECT_ID", "").strip()
    if not project_id:
        abort(400, description="the PROJECT_ID query parameter is missing; name the project to archive into")
    project = _project_or_404(project_id)

    subject = request.args.get("SUBJECT_ID", "").strip() or None
    label = request.args.get("EXPT_LABEL", "").strip() or None
    for name, value in (("SUBJECT_ID", subject), ("EXPT_LABEL", label)):
        if value is not None and not _ID.match(value):
            abort(400, description=f"{name} {value!r} is invalid; use 1 to 64 letters, digits, '_' or '-'")

    if request.mimetype not in _ZIP_TYPES:
        abort(415, description=f"Content-Type {request.mimetype or 'none'!r} is not accepted; "
                               "send the zip as the body with Content-Type application/zip")

    state = _state()
    import_request = ImportRequest(project.id, subject, label, current_user_name())
    staging_root = state.data_dir / "tmp"
    staging_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="import-", dir=staging_root))
    try:
        return _archive_upload(state, import_request, staging)
    except UploadRejected as exc:
        log.warning("import into project %s by %s rejected: %s",
                    project.id, import_request.user_name, exc.message)
        abort(exc.status, description=exc.message)
    finally:
        remove_tree(staging)


def _archive_upload(state, import_request: ImportRequest, staging: Path):
    with receive_body(request.stream, request.content_length, state.limits, staging) as body:
        members = unpack_upload(body, state.limits, staging)

    instances, skipped = read_instances(members)
    if not instances:
        raise UploadRejected(
            f"the zip contains no DICOM files ({len(skipped)} members skipped: "
            + "; ".join(f"{item['path']}: {item['reason']}" for item in skipped[:5])
            + ")"
        )

    db = _db()
    prepared = prepare_sessions(state.mappings, group_studies(instances), import_request, db)
    sessions = store_sessions(db, prepared, import_request, state.data_dir)

    archived = []
    for session, item in zip(sessions, prepared):
        archived.append({
            "id": session.accession,
            "label": session.label,
            "project": session.project_id,
            "subject": session.subject_label,
            "xsiType": session.xsi_type,
            "studyInstanceUid": session.study_instance_uid,
            "uri": f"/data/experiments/{session.accession}",
            "scans": [scan.scan_id for scan in session.scans],
            "problems": len(session.problems),
            "unreadable": list(item.result.unreadable),
        })
    return jsonify({"project": import_request.project, "sessions": archived, "skipped": skipped})


@bp.get("/data/experiments/<experiment_id>")
@api_login_required
def get_experiment(experiment_id: str):
    """Return an archived session with its fields, scans, parameters and problems."""
    requested = request.args.get("format", "json").lower()
    if requested != "json":
        abort(400, description=f"format={requested} is not supported; use format=json")

    pk = Session.pk_from_accession(experiment_id)
    session = _db().get(Session, pk) if pk is not None else None
    if session is None:
        abort(404, description=f"session {experiment_id!r} does not exist")

    return jsonify({
        "id": session.accession,
        "label": session.label,
        "project": session.project_id,
        "xsiType": session.xsi_type,
        "studyInstanceUid": session.study_instance_uid,
        "fields": {field.name: field.value for field in session.fields},
        "scans": [
            {
                "id": scan.scan_id,
                "xsiType": scan.xsi_type,
                "seriesInstanceUid": scan.series_instance_uid,
                "parameters": {parameter.name: parameter.value for parameter in scan.parameters},
            }
            for scan in session.scans
        ],
        "problems": [problem.body for problem in session.problems],
    })


@bp.get("/data/projects/<project_id>/experiments")
@api_login_required
def list_experiments(project_id: str):
    project = _project_or_404(project_id)
    sessions = _db().scalars(
        sa.select(Session).where(Session.project_id == project.id).order_by(Session.pk)
    )
    rows = [
        {
            "ID": session.accession,
            "label": session.label,
            "project": session.project_id,
            "subject_label": session.subject_label,
            "xsiType": session.xsi_type,
            "URI": f"/data/experiments/{session.accession}",
        }
        for session in sessions
    ]
    return jsonify(_result_set(rows))

