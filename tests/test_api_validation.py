"""Validation of rule bodies: each failure is a 400 (or 413, 415) that names the field, and nothing is stored."""

from __future__ import annotations

import json

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


# -- control characters and unpaired surrogates ----------------------------------------


@pytest.mark.parametrize("field, value", [
    ("scopeObjectId", "Project\x00A"),
    ("scopeObjectId", "ProjectA\n"),
    ("fieldName", "weight\x00"),
    ("dicomTag", '(0019,"SIEMENS\x00MR",0C)'),
    ("schemaElement", "xnat:mrSessionData\x00"),
    ("scope", "Project\x7f"),
    ("fieldType", "float\x85"),
    ("conflictPolicy", "unique\x00"),
])
def test_control_character_in_body_field(client, field, value):
    body = rule_json(scope="Project", scopeObjectId="ProjectA")
    body[field] = value

    response = put(client, body)

    assert_rejected(client, response, field)
    assert "control character" in response.get_json()["errors"][field][0]


def test_unpaired_surrogate_in_body_field(client):
    # json.dumps would escape the surrogate the same way; written out so the escape is visible.
    body = '{"scope": "Project", "scopeObjectId": "Project\\ud800", "fieldName": "weight", ' \
           '"fieldType": "float", "dicomTag": "0x00101030", "schemaElement": "xnat:mrSessionData"}'

    response = client.put(API + "/update", data=body, headers={**ADMIN, "Content-Type": "application/json"})

    assert_rejected(client, response, "scopeObjectId")
    assert "U+D800" in response.get_json()["errors"]["scopeObjectId"][0]


@pytest.mark.parametrize("path, name", [
    (API, "scope"),
    (API, "project"),
    (API, "schemaElement"),
    (API, "fieldName"),
    (API, "dicomTag"),
    (API, "XNAT_CSRF"),
    (API + "/effective", "project"),
    (API + "/effective", "schemaElement"),
    (API + "/history", "page"),
    (API + "/export", "format"),
])
def test_nul_in_query_argument(client, path, name):
    query = {name: "a\x00b"}
    if path.endswith("/effective") and name != "project":
        query["project"] = "ProjectA"

    response = client.get(path, query_string=query, headers=ADMIN)

    assert response.status_code == 400, response.get_json()
    assert name in response.get_json()["errors"]
    assert name in response.get_json()["message"]


def test_nul_in_import_mode(client):
    response = client.post(API + "/import", query_string={"mode": "merge\x00"}, json=[], headers=ADMIN)

    assert response.status_code == 400
    assert "mode" in response.get_json()["errors"]


def test_nul_in_import_bundle_rule(client):
    bundle = {"rules": [rule_json(), rule_json(scope="Project", scopeObjectId="Project\x00A", fieldName="height")]}

    response = client.post(API + "/import", json=bundle, headers=ADMIN)

    assert response.status_code == 400
    assert "scopeObjectId" in response.get_json()["errors"]["rules"]["1"]
    assert client.get(API, headers=ADMIN).get_json() == []


def test_store_filter_with_nul_matches_nothing(tmp_path, db_url):
    from xnat_dicom_mappings.storage import RuleFilter

    app = create_test_app(tmp_path, db_url=db_url)
    store = app.extensions["dicom_mappings"].store
    assert app.test_client().post(API, json=rule_json(), headers=ADMIN).status_code == 201

    rules, total = store.list(RuleFilter(field_name="weight\x00"))
    every_rule, every_total = store.list(RuleFilter(scope="Site"))

    app.extensions["dicom_mappings"].close()
    assert (rules, total) == ([], 0)
    assert every_total == 1


# -- JSON nesting, streamed bodies and rules per import ------------------------------------


@pytest.mark.parametrize("method, path", [("POST", API), ("PUT", API + "/update"), ("POST", API + "/import")])
def test_deeply_nested_body_is_400(client, method, path):
    response = client.open(path, method=method, data="{\"a\": " * 10_000,
                           headers={**ADMIN, "Content-Type": "application/json"})

    assert response.status_code == 400
    assert "nested too deeply" in response.get_json()["message"]


def streamed_post(client, body: bytes):
    """POST ``body`` without Content-Length, as a server passes a chunked request on."""
    import io

    return client.post(API, input_stream=io.BytesIO(body), content_type="application/json",
                       headers={**ADMIN, "Transfer-Encoding": "chunked"},
                       environ_overrides={"wsgi.input_terminated": True})


def test_streamed_body_at_limit_is_accepted(client):
    from xnat_dicom_mappings import config

    text = json.dumps(rule_json()).encode()
    body = text + b" " * (config.DICOM_MAPPINGS_MAX_BODY_BYTES - len(text))

    response = streamed_post(client, body)

    assert response.status_code == 201, response.get_json()


def test_streamed_body_one_byte_over_limit_is_413(client):
    from xnat_dicom_mappings import config

    limit = config.DICOM_MAPPINGS_MAX_BODY_BYTES
    text = json.dumps(rule_json()).encode()
    body = text + b" " * (limit + 1 - len(text))

    response = streamed_post(client, body)

    assert response.status_code == 413
    assert f"at most {limit}" in response.get_json()["message"]
    assert client.get(API, headers=ADMIN).get_json() == []


@pytest.fixture
def small_import_client(tmp_path, db_url):
    app = create_test_app(tmp_path, db_url=db_url, DICOM_MAPPINGS_MAX_IMPORT_RULES=2)
    yield app.test_client()
    app.extensions["dicom_mappings"].close()


def numbered_rules(count: int) -> list[dict]:
    return [rule_json(fieldName=f"f{index}", dicomTag=f"0x0010{0x1030 + index:04X}") for index in range(count)]


@pytest.mark.parametrize("dry_run", ["false", "true"])
def test_import_over_rule_limit_is_413(small_import_client, dry_run):
    client = small_import_client

    response = client.post(API + "/import", query_string={"dryRun": dry_run},
                           json={"rules": numbered_rules(3)}, headers=ADMIN)

    assert response.status_code == 413
    assert "has 3 rules" in response.get_json()["message"]
    assert "at most 2" in response.get_json()["message"]
    assert client.get(API, headers=ADMIN).get_json() == []


def test_import_at_rule_limit_is_accepted(small_import_client):
    response = small_import_client.post(API + "/import", json=numbered_rules(2), headers=ADMIN)

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["summary"]["create"] == 2


# -- messages name the value and the fix -----------------------------------------


@pytest.mark.parametrize("key, fix", [
    ("fieldName", '"weight"'), ("fieldType", '"float"'), ("dicomTag", '"0x00101030"'),
    ("schemaElement", '"xnat:mrSessionData"'), ("scope", '"Site" or "Project"'),
])
def test_missing_key_message(client, key, fix):
    body = rule_json()
    del body[key]

    response = put(client, body)

    assert_rejected(client, response, key)
    assert response.get_json()["errors"][key] == [f"{key} is missing; give it, for example {fix}."]


def test_null_key_message(client):
    response = put(client, rule_json(fieldType=None))

    assert_rejected(client, response, "fieldType")
    assert "may not be null" in response.get_json()["errors"]["fieldType"][0]
    assert '"float"' in response.get_json()["errors"]["fieldType"][0]


def test_string_id_message(client):
    response = put(client, dict(rule_json(), id="0"))

    assert_rejected(client, response, "id")
    assert response.get_json()["errors"]["id"][0].startswith("Invalid id '0': give a whole number")


def test_unknown_query_argument_lists_accepted(client):
    response = client.get(API + "?foo=bar", headers=ADMIN)

    assert response.status_code == 400
    message = response.get_json()["errors"]["foo"][0]
    assert message.startswith("Unknown query argument 'foo'; this route accepts ")
    assert "fieldName" in message
    assert "pageSize" in message


def test_invalid_boolean_names_value(client):
    response = client.post(API + "/import?dryRun=maybe", json=[], headers=ADMIN)

    assert response.status_code == 400
    assert response.get_json()["errors"]["dryRun"] == ["Invalid dryRun 'maybe': give true or false."]


def test_page_size_zero_names_limit(client):
    response = client.get(API + "?page=1&pageSize=0", headers=ADMIN)

    assert response.status_code == 400
    assert "DICOM_MAPPINGS_MAX_PAGE_SIZE" in response.get_json()["errors"]["pageSize"][0]


@pytest.mark.parametrize("body, kind", [(None, "null"), ([], "array"), ("x", "string")])
def test_body_kind_in_json_words(client, body, kind):
    response = client.put(API + "/update", data=json.dumps(body), headers=ADMIN,
                          content_type="application/json")

    assert response.status_code == 400
    assert response.get_json()["message"].endswith(f"not a JSON {kind}.")
