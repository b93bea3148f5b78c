"""Validation of rule bodies: each failure is a 400 (or 413, 415) that names the field, and nothing is stored."""

from __future__ import annotations

import pytest

from apps import ADMIN, API, create_test_app, rule_json


@pytest.fixture
def client(tmp_path, db_url):
    app = create_test_app(tmp_path, db_url=db_url)
    yield app.test_client()
    app.extensions["dicom_mappings"].close()


def put(client, body):
    return client.put(API + "/update", json=body, headers=ADMIN)


def assert_rejected(client, response, field):
    assert response.status_code == 400, response.get_json()
    body = response.get_json()
    assert set(body) == {"status", "error", "message", "errors"}
    assert field in body["errors"], body
    assert client.get(API, headers=ADMIN).get_json() == []


@pytest.mark.parametrize("scope, stored", [("site", "Site"), ("SITE", "Site"), ("Site", "Site")])
def test_scope_site_any_case(client, scope, stored):
    assert put(client, rule_json(scope=scope)).get_json()["scope"] == stored


@pytest.mark.parametrize("scope", ["project", "PROJECT", "Project"])
def test_scope_project_any_case(client, scope):
    body = put(client, rule_json(scope=scope, scopeObjectId="ProjectA")).get_json()

    assert body["scope"] == "Project"
    assert body["scopeObjectId"] == "ProjectA"


def test_scope_unknown(client):
    assert_rejected(client, put(client, rule_json(scope="global")), "scope")


def test_scope_missing(client):
    body = rule_json()
    del body["scope"]

    assert_rejected(client, put(client, body), "scope")


def test_project_scope_needs_project(client):
    assert_rejected(client, put(client, rule_json(scope="Project")), "scopeObjectId")


def test_project_must_exist(client):
    response = put(client, rule_json(scope="Project", scopeObjectId="Nowhere"))

    assert_rejected(client, response, "scopeObjectId")
    assert "Nowhere" in response.get_json()["errors"]["scopeObjectId"][0]


def test_site_scope_rejects_project(client):
    assert_rejected(client, put(client, rule_json(scopeObjectId="ProjectA")), "scopeObjectId")


@pytest.mark.parametrize("name", ["weight", "w", "patient_weight", "a-b", "x1"])
def test_field_name_valid(client, name):
    assert put(client, rule_json(fieldName=name)).status_code == 200


@pytest.mark.parametrize("name", ["Weight", "1weight", "_weight", "pat weight", "wéight", "", "a" * 65])
def test_field_name_invalid(client, name):
    assert_rejected(client, put(client, rule_json(fieldName=name)), "fieldName")


def test_field_name_max_length(client):
    assert put(client, rule_json(fieldName="a" * 64)).status_code == 200


@pytest.mark.parametrize("field_type", ["string", "integer", "float", "boolean", "date", "time", "datetime", "FLOAT"])
def test_field_type_valid(client, field_type):
    assert put(client, rule_json(fieldType=field_type)).get_json()["fieldType"] == field_type.lower()


def test_field_type_invalid(client):
    assert_rejected(client, put(client, rule_json(fieldType="decimal")), "fieldType")


@pytest.mark.parametrize("text", ["0x00101030", "0X00101030", "00101030", "(0010,1030)", "0010,1030", "PatientWeight"])
def test_dicom_tag_forms_store_canonical(client, text):
    assert put(client, rule_json(dicomTag=text)).get_json()["dicomTag"] == "0x00101030"


def test_dicom_tag_leading_zero_is_not_octal(client):
    assert put(client, rule_json(dicomTag="00100020")).get_json()["dicomTag"] == "0x00100020"


@pytest.mark.parametrize("text", ["PatientWieght", "0x00100000", "0x00000010", "0x7FE00010", "0x00400275", "12"])
def test_dicom_tag_rejected(client, text):
    assert_rejected(client, put(client, rule_json(dicomTag=text)), "dicomTag")


def test_dicom_tag_path_canonical(client):
    body = put(client, rule_json(
        dicomTag="SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing[1]",
        fieldType="string", schemaElement="xnat:mrScanData",
    )).get_json()

    assert body["dicomTag"] == "0x52009229[0].0x00289110[0].0x00280030[1]"


@pytest.mark.parametrize("text", ["xnat:mrSessionData", "xnat:mrsessiondata", "XNAT:MRSESSIONDATA"])
def test_schema_element_any_case(client, text):
    assert put(client, rule_json(schemaElement=text)).get_json()["schemaElement"] == "xnat:mrSessionData"


def test_schema_element_abstract_names_concrete_types(client):
    response = put(client, rule_json(schemaElement="xnat:imageSessionData"))

    assert_rejected(client, response, "schemaElement")
    message = response.get_json()["errors"]["schemaElement"][0]
    assert "inheritance" in message
    assert "xnat:mrSessionData" in message
    assert "xnat:ctSessionData" in message


def test_schema_element_unknown(client):
    assert_rejected(client, put(client, rule_json(schemaElement="xnat:fooSessionData")), "schemaElement")


@pytest.mark.parametrize("policy", ["unique", "first", "last", "min", "max", "all"])
def test_conflict_policy_valid(client, policy):
    assert put(client, rule_json(conflictPolicy=policy)).get_json()["conflictPolicy"] == policy


def test_conflict_policy_defaults_to_unique(client):
    assert put(client, rule_json()).get_json()["conflictPolicy"] == "unique"


def test_conflict_policy_invalid(client):
    assert_rejected(client, put(client, rule_json(conflictPolicy="average")), "conflictPolicy")


def test_unknown_key(client):
    assert_rejected(client, put(client, rule_json(colour="blue")), "colour")


@pytest.mark.parametrize("field, value", [
    ("fieldName", 12), ("scope", ["Site"]), ("dicomTag", 0x00101030), ("id", "1"), ("id", True), ("id", 1.5),
    ("schemaElement", None),
])
def test_wrong_json_type(client, field, value):
    assert_rejected(client, put(client, rule_json(**{field: value})), field)


def test_body_not_json(client):
    response = client.put(API + "/update", data="{scope: Site", headers={**ADMIN, "Content-Type": "application/json"})

    assert response.status_code == 400
    assert "not valid JSON" in response.get_json()["message"]


def test_body_json_array(client):
    response = client.put(API + "/update", json=[rule_json()], headers=ADMIN)

    assert response.status_code == 400
    assert "JSON object" in response.get_json()["message"]


def test_body_empty(client):
    response = client.put(API + "/update", data="", headers={**ADMIN, "Content-Type": "application/json"})

    assert response.status_code == 400


def test_wrong_content_type_is_415(client):
    response = client.put(API + "/update", data="scope=Site", headers={**ADMIN, "Content-Type": "application/x-www-form-urlencoded"})

    assert response.status_code == 415
    assert "application/json" in response.get_json()["message"]


def test_oversized_body_is_413(client):
    body = rule_json(padding="x" * 100_000)

    response = client.put(API + "/update", json=body, headers=ADMIN)

    assert response.status_code == 413
    assert response.get_json()["status"] == 413


def test_message_names_field_and_value(client):
    response = put(client, rule_json(fieldName="Patient Weight"))

    message = response.get_json()["message"]
    assert "fieldName" in message
    assert "'Patient Weight'" in message
    assert "'patient_weight'" in message


def test_no_stack_trace_in_error(client):
    response = put(client, rule_json(dicomTag=None))

    assert "Traceback" not in response.get_data(as_text=True)
