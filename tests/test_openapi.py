"""The OpenAPI document: it lists every route, and real responses match its schemas."""

from __future__ import annotations

import jsonschema_rs
import pytest

from xnat_dicom_mappings.openapi import openapi_path

from apps import ADMIN, API, create_test_app, rule_json


@pytest.fixture
def app(tmp_path, db_url):
    app = create_test_app(tmp_path, db_url=db_url)
    yield app
    app.extensions["dicom_mappings"].close()


@pytest.fixture
def spec(app):
    response = app.test_client().get(API + "/openapi.json", headers=ADMIN)
    assert response.status_code == 200
    return response.get_json()


def resolve(spec: dict, schema: dict) -> dict:
    """Return ``schema`` with ``components`` attached, so that its $refs resolve."""
    return {**schema, "components": spec["components"]}


def validate(spec: dict, schema: dict, instance) -> None:
    jsonschema_rs.validator_for(resolve(spec, schema)).validate(instance)


def test_document_header(spec):
    assert spec["openapi"].startswith("3.")
    assert spec["info"]["title"]
    assert {"basicAuth", "cookieAuth", "csrfToken"} <= set(spec["components"]["securitySchemes"])


def test_document_is_valid_openapi(spec):
    from openapi_spec_validator import validate as validate_spec

    validate_spec(spec)


def test_every_route_documented(app, spec):
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("dicom_mappings."):
            continue
        path = openapi_path(rule.rule)
        if path not in spec["paths"]:
            assert path.rstrip("/") in spec["paths"], path
            continue
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert method.lower() in spec["paths"][path], f"{method} {path}"


def test_every_operation_documents_access_errors(spec):
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            assert {"401", "403", "503"} <= set(operation["responses"]), f"{method} {path}"


def test_operation_ids_unique(spec):
    ids = [op["operationId"] for ops in spec["paths"].values() for op in ops.values()]

    assert len(ids) == len(set(ids))


def test_error_schema_shape(spec):
    error = spec["components"]["schemas"]["Error"]

    assert set(error["required"]) == {"status", "error", "message"}
    assert "errors" in error["properties"]


def test_error_responses_match_schema(app, spec):
    client = app.test_client()
    error_schema = {"$ref": "#/components/schemas/Error"}
    responses = [
        client.get(API),
        client.get(API + "/9", headers=ADMIN),
        client.post(API, json=rule_json(fieldName="Bad"), headers=ADMIN),
        client.post(API, data="x", headers={**ADMIN, "Content-Type": "text/plain"}),
    ]

    for response in responses:
        validate(spec, error_schema, response.get_json())


def test_rule_responses_match_schema(app, spec):
    client = app.test_client()
    created = client.post(API, json=rule_json(), headers=ADMIN)
    listed = client.get(API, headers=ADMIN)
    operation = spec["paths"][API]

    validate(spec, operation["post"]["responses"]["201"]["content"]["application/json"]["schema"], created.get_json())
    validate(spec, operation["get"]["responses"]["200"]["content"]["application/json"]["schema"], listed.get_json())


def test_request_schema_lists_rule_keys(spec):
    body = spec["paths"][API + "/update"]["put"]["requestBody"]["content"]["application/json"]["schema"]
    name = body["$ref"].rsplit("/", 1)[-1]
    properties = spec["components"]["schemas"][name]["properties"]

    assert {"scope", "scopeObjectId", "fieldName", "fieldType", "dicomTag", "schemaElement", "conflictPolicy"} <= set(properties)


def test_openapi_path_conversion():
    assert openapi_path("/x/<int:rule_id>/history") == "/x/{rule_id}/history"
