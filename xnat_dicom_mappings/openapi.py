"""The OpenAPI 3 document of the API, built from the view docstrings with apispec."""

from __future__ import annotations

import re

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from apispec.yaml_utils import load_operations_from_docstring
from flask import Flask

from . import schemas
from .api import BLUEPRINT_NAME

TITLE = "XNAT custom DICOM mappings"
API_VERSION = "1"
OPENAPI_VERSION = "3.1.0"

#: Responses that every operation can give, on top of its own.
COMMON_RESPONSES = {
    "400": {"$ref": "#/components/responses/Invalid"},
    "401": {"$ref": "#/components/responses/Unauthorized"},
    "403": {"$ref": "#/components/responses/Forbidden"},
    "500": {"$ref": "#/components/responses/ServerError"},
    "503": {"$ref": "#/components/responses/Unavailable"},
}

#: Extra responses of every operation that reads a body.
BODY_RESPONSES = {
    "413": {"$ref": "#/components/responses/TooLarge"},
    "415": {"$ref": "#/components/responses/UnsupportedMediaType"},
}

ERROR_RESPONSES = {
    "Invalid": "Invalid body or query arguments; `errors` names each field. Control characters "
               "(U+0000 to U+001F, U+007F to U+009F) and unpaired surrogates are invalid in every text value.",
    "NotFound": "No rule has this id.",
    "Conflict": "The rule duplicates another one on (schemaElement, scope, project, dicomTag) or "
                "(schemaElement, scope, project, fieldName); `existingId` names it.",
    "Stale": "If-Match names a version of the rule that is no longer current.",
    "Unauthorized": "Nobody is logged in.",
    "Forbidden": "The user is not an administrator, or a cookie-session request lacks the CSRF token.",
    "TooLarge": "The body is larger than DICOM_MAPPINGS_MAX_BODY_BYTES (DICOM_MAPPINGS_MAX_IMPORT_BYTES for /import, DICOM_MAPPINGS_PREVIEW_MAX_BYTES for /preview), "
                "a bundle for /import has more than DICOM_MAPPINGS_MAX_IMPORT_RULES rules, "
                "or a /preview upload has more than DICOM_MAPPINGS_PREVIEW_MAX_FILES files.",
    "UnsupportedMediaType": "The body is not sent as application/json (multipart/form-data for /preview).",
    "ServerError": "An unexpected error; the server log has the details.",
    "Unavailable": "The rule database is unavailable; nothing was changed.",
}

_CONVERTER = re.compile(r"<(?:[a-z_]+(?:\([^)]*\))?:)?([A-Za-z_][A-Za-z0-9_]*)>")


def openapi_path(rule: str) -> str:
    """Return a Werkzeug rule such as ``/x/<int:rule_id>`` in OpenAPI form, ``/x/{rule_id}``."""
    return _CONVERTER.sub(r"{\1}", rule)


def build_spec(app: Flask) -> dict:
    """Build the OpenAPI document of every route of the API blueprint in ``app``."""
    spec = APISpec(
        title=TITLE,
        version=API_VERSION,
        openapi_version=OPENAPI_VERSION,
        plugins=[MarshmallowPlugin()],
        info={
            "description": (
                "Custom DICOM mapping rules, wire-compatible with XNAT 1.8's /xapi/dicom_mappings. "
                "Every route needs an administrator. Requests that rely on the session cookie and "
                "change state must send the CSRF token in the X-CSRFToken header."
            )
        },
        security=[{"basicAuth": []}, {"cookieAuth": [], "csrfToken": []}],
    )
    ext = app.extensions["dicom_mappings"]
    _add_components(spec, ext.settings["DICOM_MAPPINGS_CSRF_HEADER"], app.config["SESSION_COOKIE_NAME"])

    seen = set()
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if not rule.endpoint.startswith(BLUEPRINT_NAME + "."):
            continue
        path = openapi_path(rule.rule)
        if path.endswith("/") and path.rstrip("/") in seen:
            continue  # the trailing-slash twin of a route already documented
        seen.add(path)

        view = app.view_functions[rule.endpoint]
        documented = load_operations_from_docstring(view.__doc__ or "")
        operations = {}
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            operation = dict(documented.get(method.lower()) or {"summary": view.__name__})
            operation["operationId"] = f"{view.__name__}_{method.lower()}" if len(rule.methods - {"HEAD", "OPTIONS"}) > 1 else view.__name__
            responses = dict(operation.get("responses") or {})
            extra = dict(COMMON_RESPONSES)
            if "requestBody" in operation:
                extra.update(BODY_RESPONSES)
            for status, response in extra.items():
                responses.setdefault(status, response)
            operation["responses"] = responses
            operations[method.lower()] = operation
        spec.path(path=path, operations=operations)

    return spec.to_dict()


def _add_components(spec: APISpec, csrf_header: str, cookie_name: str) -> None:
    spec.components.schema("Error", schema=schemas.ErrorSchema)
    for name, description in ERROR_RESPONSES.items():
        spec.components.response(
            name, {"description": description, "content": {"application/json": {"schema": schemas.ErrorSchema}}}
        )

    spec.components.security_scheme("basicAuth", {"type": "http", "scheme": "basic"})
    spec.components.security_scheme(
        "cookieAuth",
        {"type": "apiKey", "in": "cookie", "name": cookie_name, "description": "The host's Flask session cookie."},
    )
    spec.components.security_scheme(
        "csrfToken",
        {"type": "apiKey", "in": "header", "name": csrf_header,
         "description": "Token of the session; needed on POST, PUT and DELETE with the session cookie."},
    )
