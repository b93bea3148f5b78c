"""Schemathesis against the API's own OpenAPI document, as administrator, on SQLite and PostgreSQL.

Every operation of ``/xapi/dicom_mappings/openapi.json`` gets generated
requests (valid and invalid parameters and bodies). Each response must not
be a 5xx and must conform to the document: a documented status code, the
documented content type, headers and body schema. The number of requests
sent is printed and written to ``artifacts/reliability/fuzz-<database>.json``.

``XDM_STRESS=1`` (``make stress``) raises the examples per operation.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.core.failures import FailureGroup
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from apps import ADMIN, API, create_test_app, rule_json

STRESS = os.environ.get("XDM_STRESS") == "1"

#: Generated requests per operation and database.
EXAMPLES_PER_OPERATION = 400 if STRESS else 50

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts" / "reliability"

#: Rule ids one past the id column's range: 32-bit INTEGER on PostgreSQL, 64-bit on SQLite.
OVERSIZED_IDS = {"postgresql": 2**31, "sqlite": 2**63}


@pytest.fixture
def app(tmp_path, db_url):
    app = create_test_app(tmp_path, db_url=db_url, projects=None)
    client = app.test_client()
    # A few stored rules, so that generated ids 1 to 3 reach real rules.
    for field_name, tag in (("weight", "PatientWeight"), ("height", "PatientSize"), ("age", "PatientAge")):
        response = client.post(API, json=rule_json(fieldName=field_name, dicomTag=tag), headers=ADMIN)
        assert response.status_code == 201
    yield app
    app.extensions["dicom_mappings"].close()


def test_api_conforms_to_openapi(app, db_url, request):
    database = "postgresql" if db_url.startswith("postgresql") else "sqlite"
    schema = schemathesis.openapi.from_wsgi(f"{API}/openapi.json", app, headers=ADMIN)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12

    sent = {}
    failures = []
    for operation in operations:
        sent[operation.label] = 0

        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def exercise(case):
            sent[operation.label] += 1
            response = case.call(headers=ADMIN)
            try:
                case.validate_response(response, checks=CHECKS)
            except FailureGroup as group:
                titles = ", ".join(sorted({failure.title for failure in group.exceptions}))
                failures.append((operation.label, response.status_code, titles))

        exercise()

    total = sum(sent.values())
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"fuzz-{database}.json").write_text(json.dumps(
        {"database": database, "requests": total, "perOperation": sent,
         "failures": len(failures)}, indent=2))
    request.node.user_properties.append(("requests", total))
    print(f"\nschemathesis sent {total} requests on {database}")

    assert total >= len(operations) * min(EXAMPLES_PER_OPERATION, 10)
    distinct = sorted({(label, status, summary) for label, status, summary in failures})
    assert distinct == []


# -- cases the fuzzing once found, kept as single requests -------------------------------


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_oversized_rule_id_is_404(app, db_url, method):
    rule_id = OVERSIZED_IDS["postgresql" if db_url.startswith("postgresql") else "sqlite"]
    body = rule_json() if method == "PUT" else None

    response = app.test_client().open(f"{API}/{rule_id}", method=method, json=body, headers=ADMIN)

    assert response.status_code == 404


@pytest.mark.parametrize("path, query", [
    (API, {"scope": "nowhere"}),
    (f"{API}/history", {"pageSize": "100000"}),
    (f"{API}/1/history", {"page": "0"}),
])
def test_query_errors_are_documented(app, path, query):
    client = app.test_client()
    response = client.get(path, query_string=query, headers=ADMIN)
    document = client.get(f"{API}/openapi.json", headers=ADMIN).get_json()
    template = re.sub(r"/1/", "/{rule_id}/", path)

    assert response.status_code == 400
    assert "400" in document["paths"][template]["get"]["responses"]


@pytest.mark.postgres
@pytest.mark.parametrize("name", ["fieldName", "project", "schemaElement"])
def test_nul_in_list_filter_is_not_500(tmp_path, pg_url, name):
    # Found by schemathesis under make stress; SQLite accepts the NUL and responds 200.
    app = create_test_app(tmp_path, db_url=pg_url)

    response = app.test_client().get(API, query_string={name: "a\x00b"}, headers=ADMIN)

    app.extensions["dicom_mappings"].close()
    assert response.status_code in (200, 400)
