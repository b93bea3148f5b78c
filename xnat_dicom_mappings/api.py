"""The ``/xapi/dicom_mappings`` blueprint: XNAT's three routes and the REST API around them.

Every view docstring ends with its OpenAPI operation in YAML after ``---``;
:mod:`.openapi` builds the document from them.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime, timezone
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, g, jsonify, request
from marshmallow import ValidationError
from werkzeug.exceptions import (
    BadRequest,
    HTTPException,
    MethodNotAllowed,
    NotFound,
    PreconditionFailed,
    RequestEntityTooLarge,
    UnsupportedMediaType,
)
from werkzeug.http import HTTP_STATUS_CODES

from . import security, tags
from .errors import StoreUnavailable, TagSyntaxError
from .rules import PROJECT, SITE, effective_rules, json_type_name
from .schemas import (
    EffectiveArgs,
    EmptyArgs,
    ImportArgs,
    ListArgs,
    PagingArgs,
    MAX_RULE_ID,
    RuleSchema,
    canonical_schema_element,
    rule_warnings,
)
from .storage import BundleError, RuleConflict, RuleFilter, RuleNotFound, StaleRule, StoredRule

logger = logging.getLogger(__name__)

#: Name of the blueprint; endpoints are ``dicom_mappings.<view>``.
BLUEPRINT_NAME = "dicom_mappings"

#: ``format`` of the export bundle, checked on import.
BUNDLE_FORMAT = "xnat-dicom-mappings"
BUNDLE_FORMAT_VERSION = 1

#: Page size of a list or history request that gives ``page`` without ``pageSize``.
DEFAULT_PAGE_SIZE = 100

#: URL part of one rule.
RULE_ID_PATH = "/<int:rule_id>"

#: Attribute of ``flask.g`` that contains the parsed JSON body once a view has read it.
_JSON_BODY = "dicom_mappings_json_body"

blueprint = Blueprint(BLUEPRINT_NAME, __name__)


def _ext():
    return current_app.extensions["dicom_mappings"]


# -- responses -------------------------------------------------------------------


def error_response(status: int, message: str, errors: dict | None = None, **extra) -> Response:
    """Return the API's JSON error: ``{"status", "error", "message", "errors"?}``."""
    body = {"status": status, "error": HTTP_STATUS_CODES.get(status, "Error"), "message": message}
    if errors:
        body["errors"] = errors
    body.update(extra)
    response = jsonify(body)
    response.status_code = status
    return response


def _rule_response(stored: StoredRule, status: int = 200, warnings: list[str] | None = None) -> Response:
    body = stored.to_json()
    if warnings:
        body["warnings"] = warnings
    response = jsonify(body)
    response.status_code = status
    response.set_etag(stored.etag)
    return response


# -- request checks --------------------------------------------------------------


@blueprint.before_request
def check_request():
    """Admit only administrators, check the CSRF token and limit the body size."""
    security.require_admin()
    security.check_csrf()

    # An id beyond the id column's range names no rule, and the driver would
    # raise an overflow error for it.
    rule_id = (request.view_args or {}).get("rule_id")
    if rule_id is not None and rule_id > MAX_RULE_ID:
        raise RuleNotFound(rule_id)

    settings = _ext().settings
    if request.endpoint == f"{BLUEPRINT_NAME}.import_rules":
        limit = settings["DICOM_MAPPINGS_MAX_IMPORT_BYTES"]
    elif request.endpoint == f"{BLUEPRINT_NAME}.preview":
        # Form data adds headers per file; allow for them beyond the file bytes.
        limit = settings["DICOM_MAPPINGS_PREVIEW_MAX_BYTES"] + 1024 * 1024
    else:
        limit = settings["DICOM_MAPPINGS_MAX_BODY_BYTES"]
    request.max_content_length = limit
    if request.content_length is not None and request.content_length > limit:
        raise RequestEntityTooLarge(f"The request body has {request.content_length} bytes; at most {limit} are accepted.")


@blueprint.before_app_request
def answer_routing_errors_in_json():
    """Give unknown paths and wrong methods under the API prefix the JSON error body.

    Routing fails before any blueprint is known, so the blueprint's own error
    handlers never see these errors.
    """
    error = request.routing_exception
    if not isinstance(error, (NotFound, MethodNotAllowed)):
        return None

    ext = current_app.extensions.get("dicom_mappings")
    if ext is None:
        return None
    prefix = ext.settings["DICOM_MAPPINGS_URL_PREFIX"].rstrip("/")
    if request.path != prefix and not request.path.startswith(prefix + "/"):
        return None

    if isinstance(error, MethodNotAllowed):
        response = error_response(405, f"{request.method} is not allowed on {request.path}; allowed: {', '.join(sorted(error.valid_methods or ()))}.")
        response.headers["Allow"] = ", ".join(sorted(error.valid_methods or ()))
        return response
    return error_response(404, f"No API route matches {request.path}; the OpenAPI document at {prefix}/openapi.json lists the routes.")


@blueprint.after_request
def add_headers(response: Response) -> Response:
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _json_body():
    """Return the parsed JSON body, or raise 415, 413 or 400."""
    if not request.is_json:
        content_type = request.headers.get("Content-Type") or "none"
        raise UnsupportedMediaType(f"The body must be JSON sent with Content-Type: application/json, not {content_type}.")

    raw = _read_body()
    try:
        data = json.loads(raw)
    except RecursionError as exc:
        raise BadRequest("The body is not valid JSON for this API: its arrays and objects are nested too deeply.") from exc
    except ValueError as exc:
        raise BadRequest(f"The body is not valid JSON: {exc}.") from exc

    setattr(g, _JSON_BODY, data)
    return data


def _read_body() -> bytes:
    """Return the request body, or raise 413 when it is larger than ``request.max_content_length``.

    A body with Content-Length was already checked in :func:`check_request`. A
    body without it (chunked transfer encoding) is read through Werkzeug's
    ``LimitedStream``, whose ``readall`` stops at the limit without reading
    further (Werkzeug 3.1). A body of exactly the limit and a longer one then
    read the same, so one more byte is read from the WSGI stream to tell them apart.
    """
    raw = request.get_data(cache=True)
    limit = request.max_content_length
    if request.content_length is None and limit is not None and len(raw) >= limit:
        if request.input_stream.read(1):
            raise RequestEntityTooLarge(f"The request body has more than {limit} bytes; at most {limit} are accepted.")
    return raw


def _rule_body() -> dict:
    data = _json_body()
    if not isinstance(data, dict):
        raise BadRequest(f"The body must be a JSON object with the keys of a rule, not a JSON {json_type_name(data)}.")
    return data


def _load_rule(data: dict):
    return RuleSchema(host=_ext().host).load(data)


def _user_name() -> str:
    return _ext().host.user_name(security.current_user())


def _page_window(args: dict) -> tuple[int, int | None, int | None, int | None]:
    """Return offset, limit, page and page size from the ``page`` and ``pageSize`` arguments."""
    page, size = args.get("page"), args.get("pageSize")
    if page is None and size is None:
        return 0, None, None, None

    page = page or 1
    size = size or DEFAULT_PAGE_SIZE
    maximum = _ext().settings["DICOM_MAPPINGS_MAX_PAGE_SIZE"]
    if size > maximum:
        raise ValidationError({"pageSize": [f"Invalid pageSize {size}: at most {maximum} per page."]})
    return (page - 1) * size, size, page, size


def _paged_response(items: list, total: int, page: int | None, size: int | None) -> Response:
    response = jsonify(items)
    response.headers["X-Total-Count"] = str(total)
    if page is None:
        return response

    last = max(1, -(-total // size))
    links = {"first": 1, "last": last}
    if page > 1:
        links["prev"] = min(page - 1, last)
    if page < last:
        links["next"] = page + 1

    query = request.args.to_dict(flat=True)
    parts = []
    for rel, number in links.items():
        query.update(page=str(number), pageSize=str(size))
        parts.append(f'<{request.base_url}?{urlencode(query)}>; rel="{rel}"')
    response.headers["Link"] = ", ".join(parts)
    return response


def _expected_version(rule_id: int) -> int | None:
    """Return the version that ``If-Match`` requires, ``None`` without a condition; 412 when stale."""
    if_match = request.if_match
    if not if_match or if_match.star_tag:
        return None

    current = _ext().store.get(rule_id)
    if if_match.contains(current.etag):
        return current.version
    raise PreconditionFailed(
        f"Mapping rule {rule_id} changed: its ETag is now \"{current.etag}\", not {if_match.to_header()}. "
        "GET it again, reapply the change and send the new ETag in If-Match."
    )


# -- error handlers --------------------------------------------------------------


def _log_error(status: int, message: str, *, exc_info=None) -> None:
    rule_id = (request.view_args or {}).get("rule_id")
    if rule_id is None:
        # Only a body that the view parsed already: parsing here again could
        # fail the same way as in the view, and this runs inside error handlers.
        body = g.get(_JSON_BODY)
        if isinstance(body, dict) and isinstance(body.get("id"), (int, str)):
            rule_id = body["id"]
    try:
        user = _user_name()
    except Exception:  # the user lookup itself may need the unavailable database
        user = "unknown"

    level = logging.ERROR if status >= 500 else logging.WARNING
    logger.log(
        level, "%s %s answered %d for rule %s by user %s: %s",
        request.method, request.path, status, rule_id, user, message, exc_info=exc_info,
    )


@blueprint.errorhandler(HTTPException)
def handle_http_error(error: HTTPException):
    if error.code in (401, 403):
        # require_admin and check_csrf already logged the reason.
        response = error_response(error.code, error.description)
        challenge = _ext().settings["DICOM_MAPPINGS_AUTH_CHALLENGE"]
        if error.code == 401 and challenge:
            response.headers["WWW-Authenticate"] = challenge
        return response

    _log_error(error.code, error.description)
    return error_response(error.code, error.description)


@blueprint.errorhandler(ValidationError)
def handle_validation_error(error: ValidationError):
    messages = error.messages if isinstance(error.messages, dict) else {"_schema": error.messages}
    details = []
    for key, value in messages.items():
        text = " ".join(map(str, value)) if isinstance(value, list) else json.dumps(value)
        details.append(f"{key}: {text}")
    prefix = "Invalid request, nothing was stored." if request.method in security.STATE_CHANGING_METHODS else "Invalid request."
    message = prefix + " " + " ".join(details)
    _log_error(400, message)
    return error_response(400, message, messages)


@blueprint.errorhandler(TagSyntaxError)
def handle_tag_error(error: TagSyntaxError):
    _log_error(400, str(error))
    return error_response(400, str(error), {"dicomTag": [str(error)]})


@blueprint.errorhandler(RuleNotFound)
def handle_not_found(error: RuleNotFound):
    message = f"Mapping rule {error.rule_id} does not exist; GET {_ext().settings['DICOM_MAPPINGS_URL_PREFIX']} lists the rules."
    _log_error(404, message)
    return error_response(404, message)


@blueprint.errorhandler(RuleConflict)
def handle_conflict(error: RuleConflict):
    _log_error(409, str(error))
    errors = {error.key: [str(error)]} if error.key else None
    extra = {"existingId": error.existing_id} if error.existing_id is not None else {}
    return error_response(409, str(error), errors, **extra)


@blueprint.errorhandler(StaleRule)
def handle_stale(error: StaleRule):
    _log_error(412, str(error))
    return error_response(412, str(error))


@blueprint.errorhandler(BundleError)
def handle_bundle_error(error: BundleError):
    # A collision with stored rules conflicts with the server's state, so it is a
    # 409 naming them, as for a single duplicate. A bundle that contradicts itself is a 400.
    if error.existing_ids:
        _log_error(409, str(error))
        return error_response(409, str(error), {"rules": error.errors}, existingIds=error.existing_ids)
    _log_error(400, str(error))
    return error_response(400, str(error), {"rules": error.errors})


@blueprint.errorhandler(StoreUnavailable)
def handle_unavailable(error: StoreUnavailable):
    _log_error(503, str(error))
    response = error_response(503, "The DICOM mapping database is unavailable; nothing was changed. Retry shortly.")
    response.headers["Retry-After"] = "5"
    return response


@blueprint.errorhandler(Exception)
def handle_unexpected(error: Exception):
    _log_error(500, f"{type(error).__name__}: {error}", exc_info=error)
    return error_response(500, "Internal server error; the server log has the details.")


# -- XNAT's routes ---------------------------------------------------------------


@blueprint.get("", endpoint="list_rules")
@blueprint.get("/", endpoint="list_rules")
def list_rules():
    """List the rules, optionally filtered and paged.

    ---
    get:
      summary: List mapping rules (XNAT-compatible)
      description: >
        The body is always a plain JSON array, as in XNAT. With `page` or
        `pageSize` the Link header names the first, previous, next and last
        pages; X-Total-Count always gives the number of matching rules.
      parameters:
        - {in: query, schema: ListArgs}
      responses:
        200:
          description: Rules ordered by id.
          headers:
            X-Total-Count: {schema: {type: integer}, description: Number of matching rules.}
            Link: {schema: {type: string}, description: "Paging links (RFC 8288), only when paged."}
          content:
            application/json:
              schema: {type: array, items: RuleResponseSchema}
    """
    args = ListArgs().load_args(request.args)
    rule_filter = _rule_filter(args)
    offset, limit, page, size = _page_window(args)

    stored, total = _ext().store.list(rule_filter, offset=offset, limit=limit)
    return _paged_response([rule.to_json() for rule in stored], total, page, size)


def _rule_filter(args: dict) -> RuleFilter:
    scope = args.get("scope")
    if scope is not None:
        scope = {"site": SITE, "project": PROJECT}.get(scope.strip().lower())
        if scope is None:
            raise ValidationError({"scope": [f"Invalid scope {args['scope']!r}: use Site or Project."]})

    schema_element = args.get("schemaElement")
    if schema_element is not None:
        by_lower = {name.lower(): name for name in _ext().host.schema_elements()}
        schema_element = by_lower.get(schema_element.strip().lower(), schema_element)

    dicom_tag = args.get("dicomTag")
    if dicom_tag is not None:
        dicom_tag = tags.parse_tag(dicom_tag).canonical

    project = args.get("project")
    if project is not None:
        project = _ext().host.canonical_project(project) or project

    return RuleFilter(
        scope=scope,
        project=project,
        schema_element=schema_element,
        field_name=args.get("fieldName"),
        dicom_tag=dicom_tag,
    )


@blueprint.put("/update", endpoint="update_rule")
@blueprint.put("/update/", endpoint="update_rule")
def update_rule():
    """Create or replace a rule, as XNAT's ``PUT /xapi/dicom_mappings/update`` does.

    ---
    put:
      summary: Create or replace a rule (XNAT-compatible)
      description: >
        Creates a rule when `id` is absent or 0, otherwise replaces rule `id`
        whole. XNAT returns the text "Success!", but this response is the
        stored rule with its id. If-Match is honoured when sent.
      requestBody:
        required: true
        content:
          application/json: {schema: RuleSchema}
      responses:
        200:
          description: The stored rule.
          headers: {ETag: {schema: {type: string}}}
          content:
            application/json: {schema: RuleResponseSchema}
        400: {$ref: "#/components/responses/Invalid"}
        404: {$ref: "#/components/responses/NotFound"}
        409: {$ref: "#/components/responses/Conflict"}
        412: {$ref: "#/components/responses/Stale"}
    """
    rule = _load_rule(_rule_body())
    ext = _ext()
    user = _user_name()

    if rule.id is None:
        stored = ext.store.create(rule, user)
    else:
        expected = _expected_version(rule.id)
        stored = ext.store.replace(rule.id, rule, user, expected_version=expected)
    return _rule_response(stored, 200, rule_warnings(ext.host, stored.rule))


@blueprint.delete(RULE_ID_PATH, endpoint="delete_rule")
def delete_rule(rule_id: int):
    """Delete a rule; its history stays.

    ---
    delete:
      summary: Delete a rule (XNAT-compatible)
      parameters:
        - {in: path, name: rule_id, required: true, schema: {type: integer}}
      responses:
        200:
          description: The rule as it was before the deletion.
          content:
            application/json: {schema: RuleResponseSchema}
        404: {$ref: "#/components/responses/NotFound"}
        412: {$ref: "#/components/responses/Stale"}
    """
    EmptyArgs().load_args(request.args)
    expected = _expected_version(rule_id)
    stored = _ext().store.delete(rule_id, _user_name(), expected_version=expected)
    return jsonify(stored.to_json())


# -- the REST surface around them --------------------------------------------------


@blueprint.post("", endpoint="create_rule")
@blueprint.post("/", endpoint="create_rule")
def create_rule():
    """Create a rule.

    ---
    post:
      summary: Create a rule
      requestBody:
        required: true
        content:
          application/json: {schema: RuleSchema}
      responses:
        201:
          description: The stored rule; Location names it.
          headers:
            Location: {schema: {type: string}}
            ETag: {schema: {type: string}}
          content:
            application/json: {schema: RuleResponseSchema}
        400: {$ref: "#/components/responses/Invalid"}
        409: {$ref: "#/components/responses/Conflict"}
    """
    data = _rule_body()
    rule = _load_rule(data)
    if rule.id is not None:
        raise ValidationError({"id": [f"POST creates a new rule and takes no id; to change rule {rule.id}, PUT it to its own URL."]})

    ext = _ext()
    stored = ext.store.create(rule, _user_name())
    response = _rule_response(stored, 201, rule_warnings(ext.host, stored.rule))
    response.headers["Location"] = f"{request.script_root}{ext.settings['DICOM_MAPPINGS_URL_PREFIX']}/{stored.id}"
    return response


@blueprint.get(RULE_ID_PATH, endpoint="get_rule")
def get_rule(rule_id: int):
    """Return one rule with its ETag.

    ---
    get:
      summary: Get a rule
      parameters:
        - {in: path, name: rule_id, required: true, schema: {type: integer}}
      responses:
        200:
          description: The rule.
          headers: {ETag: {schema: {type: string}}}
          content:
            application/json: {schema: RuleResponseSchema}
        304: {description: Not modified since the ETag in If-None-Match.}
        404: {$ref: "#/components/responses/NotFound"}
    """
    EmptyArgs().load_args(request.args)
    stored = _ext().store.get(rule_id)
    return _rule_response(stored).make_conditional(request)


@blueprint.put(RULE_ID_PATH, endpoint="replace_rule")
def replace_rule(rule_id: int):
    """Replace a rule whole, honouring If-Match.

    ---
    put:
      summary: Replace a rule
      description: >
        Send the ETag of the version you read in If-Match. If the rule changed
        since then, the write fails with 412. Without If-Match the write is unconditional.
      parameters:
        - {in: path, name: rule_id, required: true, schema: {type: integer}}
        - {in: header, name: If-Match, required: false, schema: {type: string}}
      requestBody:
        required: true
        content:
          application/json: {schema: RuleSchema}
      responses:
        200:
          description: The stored rule.
          headers: {ETag: {schema: {type: string}}}
          content:
            application/json: {schema: RuleResponseSchema}
        400: {$ref: "#/components/responses/Invalid"}
        404: {$ref: "#/components/responses/NotFound"}
        409: {$ref: "#/components/responses/Conflict"}
        412: {$ref: "#/components/responses/Stale"}
    """
    rule = _load_rule(_rule_body())
    if rule.id is not None and rule.id != rule_id:
        raise ValidationError({"id": [f"The body names rule {rule.id} but the URL names rule {rule_id}; send the same id or none."]})

    ext = _ext()
    expected = _expected_version(rule_id)
    stored = ext.store.replace(rule_id, rule, _user_name(), expected_version=expected)
    return _rule_response(stored, 200, rule_warnings(ext.host, stored.rule))


@blueprint.get("/effective", endpoint="effective_rules")
def get_effective_rules():
    """Return the rules in force for one project after precedence.

    ---
    get:
      summary: Rules in force for a project
      description: >
        Site rules apply to every project; a project rule replaces each site
        rule with the same schemaElement and the same fieldName or dicomTag.
        Each rule is marked with its source, site or project.
      parameters:
        - {in: query, schema: EffectiveArgs}
      responses:
        200:
          description: Rules ordered by schemaElement, fieldName and id.
          content:
            application/json:
              schema: {type: array, items: EffectiveRuleSchema}
        400: {$ref: "#/components/responses/Invalid"}
    """
    args = EffectiveArgs().load_args(request.args)
    ext = _ext()

    project = ext.host.canonical_project(args["project"])
    if project is None:
        raise ValidationError({"project": [f"Unknown project {args['project']!r}: check the project ID."]})

    schema_element = args.get("schemaElement")
    if schema_element is not None:
        try:
            schema_element = canonical_schema_element(ext.host, schema_element.strip())
        except ValidationError as exc:
            raise ValidationError({"schemaElement": exc.messages}) from exc

    result = []
    for effective in effective_rules(ext.store.all_rules(), project):
        if schema_element is not None and effective.rule.schema_element != schema_element:
            continue
        item = effective.rule.to_json()
        item["source"] = effective.source
        item["overrides"] = list(effective.overrides)
        result.append(item)
    return jsonify(result)


@blueprint.get("/history", endpoint="history")
def get_history():
    """Return every create, update and delete, newest first.

    ---
    get:
      summary: History of every rule
      parameters:
        - {in: query, schema: PagingArgs}
      responses:
        200:
          description: History entries, newest first.
          headers:
            X-Total-Count: {schema: {type: integer}}
            Link: {schema: {type: string}}
          content:
            application/json:
              schema: {type: array, items: HistoryEntrySchema}
    """
    args = PagingArgs().load_args(request.args)
    offset, limit, page, size = _page_window(args)
    entries, total = _ext().store.history(offset=offset, limit=limit)
    return _paged_response([entry.to_json() for entry in entries], total, page, size)


@blueprint.get(RULE_ID_PATH + "/history", endpoint="rule_history")
def get_rule_history(rule_id: int):
    """Return the history of one rule, also after it was deleted.

    ---
    get:
      summary: History of one rule
      parameters:
        - {in: path, name: rule_id, required: true, schema: {type: integer}}
        - {in: query, schema: PagingArgs}
      responses:
        200:
          description: History entries, newest first.
          headers:
            X-Total-Count: {schema: {type: integer}}
            Link: {schema: {type: string}}
          content:
            application/json:
              schema: {type: array, items: HistoryEntrySchema}
        404: {$ref: "#/components/responses/NotFound"}
    """
    args = PagingArgs().load_args(request.args)
    offset, limit, page, size = _page_window(args)
    entries, total = _ext().store.history(rule_id, offset=offset, limit=limit)
    if total == 0:
        raise RuleNotFound(rule_id)
    return _paged_response([entry.to_json() for entry in entries], total, page, size)


@blueprint.get("/export", endpoint="export_rules")
def export_rules():
    """Return every rule as an import bundle.

    ---
    get:
      summary: Export every rule
      responses:
        200:
          description: A bundle that POST /import accepts.
          content:
            application/json: {schema: BundleSchema}
    """
    EmptyArgs().load_args(request.args)
    stored, _total = _ext().store.list()
    bundle = {
        "format": BUNDLE_FORMAT,
        "formatVersion": BUNDLE_FORMAT_VERSION,
        "exported": datetime.now(timezone.utc).isoformat(),
        "rules": [rule.to_json() for rule in stored],
    }
    response = jsonify(bundle)
    response.headers["Content-Disposition"] = 'attachment; filename="dicom-mappings.json"'
    return response


@blueprint.post("/import", endpoint="import_rules")
def import_rules():
    """Import a bundle of rules: all of them or none.

    ---
    post:
      summary: Import rules
      description: >
        The body is a bundle from GET /export or a plain array of rules. A
        bundle rule matches the stored rule with the same schemaElement, scope,
        project and fieldName, or else the same dicomTag. Ids in the bundle are
        ignored. mode=merge creates and updates, mode=replace also deletes the
        stored rules that the bundle lacks. dryRun=true returns the changes
        without making them. A bundle may contain at most
        DICOM_MAPPINGS_MAX_IMPORT_RULES rules (10,000 by default) and
        DICOM_MAPPINGS_MAX_IMPORT_BYTES bytes (8 MiB by default); a larger one
        fails with 413.
      parameters:
        - {in: query, schema: ImportArgs}
      requestBody:
        required: true
        content:
          application/json:
            schema:
              oneOf:
                - BundleSchema
                - {type: array, items: RuleSchema}
      responses:
        200:
          description: The changes, made or (with dryRun) planned.
          content:
            application/json: {schema: ImportResultSchema}
        400: {$ref: "#/components/responses/Invalid"}
        409: {$ref: "#/components/responses/Conflict"}
        413: {$ref: "#/components/responses/TooLarge"}
    """
    args = ImportArgs().load_args(request.args)
    if args["mode"] not in ("merge", "replace"):
        raise ValidationError({"mode": [f"Invalid mode {args['mode']!r}: use merge or replace."]})

    rules = _load_bundle(_json_body())
    ext = _ext()
    if args["dryRun"]:
        plan = ext.store.plan_import(rules, args["mode"])
        return jsonify(plan.to_json(applied=False))

    plan = ext.store.import_rules(rules, _user_name(), args["mode"])
    return jsonify(plan.to_json(applied=True))


def _load_bundle(data) -> list:
    if isinstance(data, dict):
        unknown = sorted(set(data) - {"format", "formatVersion", "exported", "rules"})
        if unknown:
            raise ValidationError({key: ["Unknown key. A bundle has the keys format, formatVersion, exported and rules."] for key in unknown})
        if data.get("format", BUNDLE_FORMAT) != BUNDLE_FORMAT:
            raise ValidationError({"format": [f"Unknown bundle format {data['format']!r}: expected {BUNDLE_FORMAT!r}."]})
        if data.get("formatVersion", BUNDLE_FORMAT_VERSION) != BUNDLE_FORMAT_VERSION:
            raise ValidationError({"formatVersion": [f"Unsupported formatVersion {data['formatVersion']!r}: expected {BUNDLE_FORMAT_VERSION}."]})
        items = data.get("rules")
    else:
        items = data

    if not isinstance(items, list):
        raise ValidationError({"rules": ["The bundle must contain a JSON array of rules, as GET /export returns."]})

    maximum = _ext().settings["DICOM_MAPPINGS_MAX_IMPORT_RULES"]
    if len(items) > maximum:
        raise RequestEntityTooLarge(
            f"The bundle has {len(items)} rules; at most {maximum} are accepted in one import "
            "(DICOM_MAPPINGS_MAX_IMPORT_RULES). Import the rules in parts with mode=merge."
        )

    schema = RuleSchema(host=_ext().host)
    rules = []
    errors = {}
    for index, item in enumerate(items):
        try:
            rules.append(schema.load(item))
        except ValidationError as exc:
            errors[str(index)] = exc.messages
    if errors:
        raise ValidationError({"rules": errors})
    return rules


@blueprint.get("/openapi.json", endpoint="openapi")
def openapi_document():
    """Return the OpenAPI 3 document of this API.

    ---
    get:
      summary: OpenAPI document
      responses:
        200:
          description: OpenAPI 3.1 document.
          content:
            application/json: {schema: {type: object}}
    """
    from .openapi import build_spec

    return jsonify(build_spec(current_app))


# -- preview ----------------------------------------------------------------------


@blueprint.post("/preview", endpoint="preview")
def preview():
    """Show what the rules would extract from uploaded DICOM files; nothing is stored.

    ---
    post:
      summary: Preview extraction
      description: >
        Runs the stored rules, plus the candidate rules in the form field
        `rules`, on the uploaded DICOM files or zips, and returns the same JSON
        as `xnat-dicom-mappings extract`. A candidate with the id of a stored
        rule stands in for it. Files are grouped into sessions by
        StudyInstanceUID and scans by SeriesInstanceUID. Limits:
        DICOM_MAPPINGS_PREVIEW_MAX_FILES files and
        DICOM_MAPPINGS_PREVIEW_MAX_BYTES bytes, zip members included.
      requestBody:
        required: true
        content:
          multipart/form-data:
            schema:
              type: object
              required: [files]
              properties:
                files: {type: array, items: {type: string, format: binary}}
                project: {type: string, description: Project ID whose rules apply.}
                sessionType: {type: string, description: Session xsi type; by default from the files' Modality.}
                rules: {type: string, description: JSON array of candidate rules that are not saved.}
      responses:
        200:
          description: The extracted sessions and the unreadable files.
          content:
            application/json: {schema: {type: object, required: [sessions, unreadable]}}
        400: {$ref: "#/components/responses/Invalid"}
        413: {$ref: "#/components/responses/TooLarge"}
        415: {$ref: "#/components/responses/UnsupportedMediaType"}
    """
    from .preview import run_preview

    return run_preview()
