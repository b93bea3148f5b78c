"""The administration page: a blueprint that renders the rules editor."""

from __future__ import annotations

import logging

from flask import Blueprint, current_app, jsonify, render_template, request, url_for
from flask_login import current_user

from . import catalogue, config
from .errors import TagSyntaxError
from .rules import CONFLICT_POLICIES, FIELD_TYPES
from .security import csrf_token
from .tags import tag_info

logger = logging.getLogger(__name__)

#: Sent with every page of the blueprint. Scripts and styles come only from
#: this origin, so an inline script or event handler would be blocked.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'self'",
    ]
)



def create_admin_blueprint(ext) -> Blueprint:
    """Build the blueprint of the administration page for the extension ``ext``.

    The extension registers it at ``DICOM_MAPPINGS_ADMIN_URL``. Every route
    but the static assets needs an administrator: an anonymous user gets the
    host's login page through ``login_manager.unauthorized()`` and any other
    user a 403 page.
    """
    blueprint = Blueprint(
        "dicom_mappings_admin",
        __name__,
        template_folder="templates",
        static_folder="static",
        static_url_path="/static",
    )

    @blueprint.before_request
    def require_administrator():
        if request.endpoint == f"{blueprint.name}.static":
            return None

        if not current_user.is_authenticated:
            return current_app.login_manager.unauthorized()

        if not ext.host.is_admin(current_user):
            logger.warning(
                "Rejected %s %s: user %s is not an administrator",
                request.method,
                request.path,
                ext.host.user_name(current_user),
            )
            if request.endpoint == f"{blueprint.name}.tag_info":
                return _json_error(403, "Forbidden", "Only administrators may use this page.")
            return render_template("dicom_mappings/forbidden.html"), 403

        return None

    @blueprint.after_request
    def add_security_headers(response):
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        if response.mimetype == "text/html":
            response.headers["Cache-Control"] = "no-store"
        return response

    @blueprint.get("/")
    def index():
        schema_elements = _schema_elements(ext)
        return render_template(
            "dicom_mappings/admin.html",
            csrf_token=csrf_token(),
            csrf_header=_setting(ext, "DICOM_MAPPINGS_CSRF_HEADER"),
            api_url=_api_url(ext),
            tag_info_url=url_for(f"{blueprint.name}.tag_info"),
            projects=_projects(ext),
            session_types=sorted(n for n, level in schema_elements.items() if level == "session"),
            scan_types=sorted(n for n, level in schema_elements.items() if level == "scan"),
            field_types=FIELD_TYPES,
            conflict_policies=CONFLICT_POLICIES,
            user_name=ext.host.user_name(current_user),
        )

    @blueprint.get("/tag-info", endpoint="tag_info")
    def describe_tag():
        text = request.args.get("tag", "").strip()
        if not text:
            return _json_error(400, "Bad Request", "The query parameter 'tag' is missing.")

        try:
            info = tag_info(text)
        except TagSyntaxError as exc:
            return _json_error(400, "Bad Request", str(exc), {"tag": [str(exc)]})

        return jsonify(info)

    return blueprint


def _api_url(ext) -> str:
    """Return the URL of the JSON API, with the script root of a mounted app."""
    prefix = _setting(ext, "DICOM_MAPPINGS_URL_PREFIX")
    return request.script_root + prefix.rstrip("/")


def _setting(ext, key: str):
    """Return the extension's effective value of the configuration key ``key``."""
    settings = getattr(ext, "settings", None)
    if settings is not None and key in settings:
        return settings[key]
    return current_app.config.get(key, config.defaults()[key])


def _schema_elements(ext) -> dict[str, str]:
    """Return the host's xsi types, ``{name: "session" | "scan"}``, or the built-in catalogue."""
    elements = ext.host.schema_elements()
    if not elements:
        return dict(catalogue.SCHEMA_ELEMENTS)
    return dict(elements)


def _projects(ext) -> list[str]:
    """Return the host's project IDs, sorted; empty when the host does not list its projects."""
    projects = ext.host.list_projects() or []
    return sorted(str(project) for project in projects)


def _json_error(status: int, error: str, message: str, errors: dict | None = None):
    body = {"status": status, "error": error, "message": message}
    if errors:
        body["errors"] = errors
    return jsonify(body), status
