"""The REST routes beyond XNAT's: one rule, POST, conditional PUT, filters, paging,
effective rules, history, export and import."""

from __future__ import annotations

import pytest

from apps import ADMIN, API, TestHost, create_test_app, rule_json


#: Tags of plain attributes (no sequences) for tests that need several rules.
TAGS = ["PatientName", "PatientID", "PatientBirthDate", "PatientSex", "PatientAge"]


@pytest.fixture
def app(tmp_path, db_url):
    app = create_test_app(tmp_path, db_url=db_url)
    yield app
    app.extensions["dicom_mappings"].close()


@pytest.fixture
def client(app):
    return app.test_client()


def post(client, **overrides):
    response = client.post(API, json=rule_json(**overrides), headers=ADMIN)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_post_answers_201_with_location(client):
    response = client.post(API, json=rule_json(), headers=ADMIN)

    assert response.status_code == 201
    body = response.get_json()
    assert response.headers["Location"] == f"{API}/{body['id']}"
    assert response.headers["ETag"] == f'"{body["id"]}-1"'


def test_post_with_id_is_rejected(client):
    response = client.post(API, json=rule_json(id=4), headers=ADMIN)

    assert response.status_code == 400
    assert "id" in response.get_json()["errors"]


def test_get_one_with_etag(client):
    created = post(client)

    response = client.get(f"{API}/{created['id']}", headers=ADMIN)

    assert response.status_code == 200
    assert response.get_json() == created
    assert response.headers["ETag"] == f'"{created["id"]}-1"'


def test_get_one_if_none_match_is_304(client):
    created = post(client)

    response = client.get(f"{API}/{created['id']}", headers={**ADMIN, "If-None-Match": f'"{created["id"]}-1"'})

    assert response.status_code == 304


def test_get_unknown_is_404(client):
    response = client.get(f"{API}/77", headers=ADMIN)

    assert response.status_code == 404
    assert set(response.get_json()) == {"status", "error", "message"}


def test_put_with_current_etag(client):
    created = post(client)
    etag = client.get(f"{API}/{created['id']}", headers=ADMIN).headers["ETag"]

    response = client.put(f"{API}/{created['id']}", json=rule_json(fieldType="string"),
                          headers={**ADMIN, "If-Match": etag})

    assert response.status_code == 200
    assert response.get_json()["version"] == 2
    assert response.headers["ETag"] == f'"{created["id"]}-2"'


def test_put_with_stale_etag_is_412(client):
    created = post(client)
    stale = f'"{created["id"]}-1"'
    client.put(f"{API}/{created['id']}", json=rule_json(fieldType="string"), headers=ADMIN)

    response = client.put(f"{API}/{created['id']}", json=rule_json(fieldType="integer"),
                          headers={**ADMIN, "If-Match": stale})

    assert response.status_code == 412
    assert "GET it again" in response.get_json()["message"]
    assert client.get(f"{API}/{created['id']}", headers=ADMIN).get_json()["fieldType"] == "string"


def test_put_with_star_etag(client):
    created = post(client)

    response = client.put(f"{API}/{created['id']}", json=rule_json(fieldType="string"),
                          headers={**ADMIN, "If-Match": "*"})

    assert response.status_code == 200


def test_put_id_mismatch_is_400(client):
    created = post(client)

    response = client.put(f"{API}/{created['id']}", json=rule_json(id=created["id"] + 1), headers=ADMIN)

    assert response.status_code == 400
    assert "id" in response.get_json()["errors"]


def test_put_unknown_is_404(client):
    response = client.put(f"{API}/55", json=rule_json(), headers=ADMIN)

    assert response.status_code == 404


def test_delete_with_stale_etag_is_412(client):
    created = post(client)
    client.put(f"{API}/{created['id']}", json=rule_json(fieldType="string"), headers=ADMIN)

    response = client.delete(f"{API}/{created['id']}", headers={**ADMIN, "If-Match": f'"{created["id"]}-1"'})

    assert response.status_code == 412


def test_duplicate_is_409_naming_existing_id(client):
    created = post(client)

    response = client.post(API, json=rule_json(fieldName="other"), headers=ADMIN)

    assert response.status_code == 409
    body = response.get_json()
    assert body["existingId"] == created["id"]
    assert f"rule {created['id']}" in body["message"]


def test_list_filters(client):
    post(client)
    post(client, scope="Project", scopeObjectId="ProjectA", fieldName="height", dicomTag="PatientSize")
    post(client, schemaElement="xnat:ctScanData")

    def count(**query):
        response = client.get(API, query_string=query, headers=ADMIN)
        assert response.status_code == 200, response.get_json()
        return len(response.get_json())

    assert count(scope="project") == 1
    assert count(scope="SITE") == 2
    assert count(project="ProjectA") == 1
    assert count(schemaElement="XNAT:CTSCANDATA") == 1
    assert count(fieldName="weight") == 2
    assert count(dicomTag="(0010,1020)") == 1


def test_list_unknown_argument_is_400(client):
    response = client.get(API, query_string={"projet": "ProjectA"}, headers=ADMIN)

    assert response.status_code == 400
    assert "projet" in response.get_json()["errors"]


def test_list_paging_headers(client):
    for index in range(5):
        post(client, fieldName=f"f{index}", dicomTag=TAGS[index])

    response = client.get(API, query_string={"page": 2, "pageSize": 2}, headers=ADMIN)

    assert [rule["fieldName"] for rule in response.get_json()] == ["f2", "f3"]
    assert response.headers["X-Total-Count"] == "5"
    links = response.headers["Link"]
    assert 'page=1&pageSize=2>; rel="first"' in links
    assert 'page=3&pageSize=2>; rel="last"' in links
    assert 'page=1&pageSize=2>; rel="prev"' in links
    assert 'page=3&pageSize=2>; rel="next"' in links


def test_list_page_size_limit(client):
    response = client.get(API, query_string={"pageSize": 100000}, headers=ADMIN)

    assert response.status_code == 400
    assert "pageSize" in response.get_json()["errors"]


def test_effective_marks_source(client):
    site = post(client)
    post(client, fieldName="height", dicomTag="PatientSize")
    project = post(client, scope="Project", scopeObjectId="ProjectA", dicomTag="PatientWeight", fieldType="string")

    response = client.get(API + "/effective", query_string={"project": "ProjectA"}, headers=ADMIN)

    assert response.status_code == 200
    by_field = {rule["fieldName"]: rule for rule in response.get_json()}
    assert by_field["weight"]["id"] == project["id"]
    assert by_field["weight"]["source"] == "project"
    assert by_field["weight"]["overrides"] == [site["id"]]
    assert by_field["height"]["source"] == "site"


def test_effective_project_rule_overrides_by_tag(client):
    post(client)
    post(client, scope="Project", scopeObjectId="ProjectA", fieldName="weight_kg")

    response = client.get(API + "/effective", query_string={"project": "ProjectA"}, headers=ADMIN)

    assert [rule["fieldName"] for rule in response.get_json()] == ["weight_kg"]


def test_effective_filters_schema_element(client):
    post(client)
    post(client, schemaElement="xnat:ctSessionData")

    response = client.get(API + "/effective", query_string={"project": "ProjectB", "schemaElement": "xnat:ctsessiondata"},
                          headers=ADMIN)

    assert [rule["schemaElement"] for rule in response.get_json()] == ["xnat:ctSessionData"]


def test_effective_needs_project(client):
    response = client.get(API + "/effective", headers=ADMIN)

    assert response.status_code == 400
    assert "project" in response.get_json()["errors"]


def test_effective_unknown_project_is_400(client):
    response = client.get(API + "/effective", query_string={"project": "Nope"}, headers=ADMIN)

    assert response.status_code == 400


def test_history_after_delete(client):
    created = post(client)
    client.put(f"{API}/{created['id']}", json=rule_json(fieldType="string"), headers=ADMIN)
    client.delete(f"{API}/{created['id']}", headers=ADMIN)

    response = client.get(f"{API}/{created['id']}/history", headers=ADMIN)

    assert response.status_code == 200
    entries = response.get_json()
    assert [entry["action"] for entry in entries] == ["delete", "update", "create"]
    assert entries[0]["user"] == "admin"
    assert entries[1]["before"]["fieldType"] == "float"
    assert entries[1]["after"]["fieldType"] == "string"
    assert response.headers["X-Total-Count"] == "3"


def test_history_unknown_rule_is_404(client):
    response = client.get(f"{API}/5/history", headers=ADMIN)

    assert response.status_code == 404


def test_history_of_all_rules(client):
    post(client)
    post(client, fieldName="height", dicomTag="PatientSize")

    response = client.get(API + "/history", query_string={"pageSize": 1}, headers=ADMIN)

    assert len(response.get_json()) == 1
    assert response.headers["X-Total-Count"] == "2"
    assert 'rel="next"' in response.headers["Link"]


def test_export_then_import_round_trip(client, tmp_path):
    post(client)
    post(client, scope="Project", scopeObjectId="ProjectA", fieldName="height", dicomTag="PatientSize")
    bundle = client.get(API + "/export", headers=ADMIN).get_json()

    other = create_test_app(tmp_path / "other", db_url=None).test_client()
    response = other.post(API + "/import", json=bundle, headers=ADMIN)

    assert response.status_code == 200
    assert response.get_json()["summary"] == {"create": 2, "update": 0, "delete": 0, "unchanged": 0}
    exported = [{k: v for k, v in r.items() if k != "id"} for r in bundle["rules"]]
    imported = [{k: v for k, v in r.items() if k != "id"} for r in other.get(API, headers=ADMIN).get_json()]
    assert imported == exported


def test_export_bundle_format(client):
    response = client.get(API + "/export", headers=ADMIN)

    body = response.get_json()
    assert body["format"] == "xnat-dicom-mappings"
    assert body["formatVersion"] == 1
    assert body["rules"] == []
    assert "attachment" in response.headers["Content-Disposition"]


def test_import_dry_run_changes_nothing(client):
    created = post(client)

    response = client.post(API + "/import", query_string={"dryRun": "true"},
                           json=[rule_json(fieldType="string"), rule_json(fieldName="height", dicomTag="PatientSize")],
                           headers=ADMIN)

    assert response.status_code == 200
    body = response.get_json()
    assert body["dryRun"] is True
    assert body["summary"] == {"create": 1, "update": 1, "delete": 0, "unchanged": 0}
    assert body["update"][0]["before"]["fieldType"] == "float"
    assert body["update"][0]["after"]["fieldType"] == "string"
    assert client.get(f"{API}/{created['id']}", headers=ADMIN).get_json()["fieldType"] == "float"
    assert len(client.get(API, headers=ADMIN).get_json()) == 1


def test_import_replace_mode(client):
    post(client)
    post(client, fieldName="height", dicomTag="PatientSize")

    response = client.post(API + "/import", query_string={"mode": "replace"}, json=[rule_json()], headers=ADMIN)

    assert response.get_json()["summary"] == {"create": 0, "update": 0, "delete": 1, "unchanged": 1}
    assert len(client.get(API, headers=ADMIN).get_json()) == 1


def test_import_invalid_rule_stores_nothing(client):
    response = client.post(API + "/import", json=[rule_json(), rule_json(fieldName="Bad", dicomTag="PatientSize")],
                           headers=ADMIN)

    assert response.status_code == 400
    assert "fieldName" in response.get_json()["errors"]["rules"]["1"]
    assert client.get(API, headers=ADMIN).get_json() == []


def test_import_duplicate_in_bundle_is_400(client):
    response = client.post(API + "/import", json=[rule_json(), rule_json(fieldName="other")], headers=ADMIN)

    assert response.status_code == 400
    assert "1" in response.get_json()["errors"]["rules"]


def test_import_colliding_with_stored_is_409(client):
    first = client.put(API + "/update", json=rule_json(), headers=ADMIN).get_json()
    second = client.put(API + "/update", json=rule_json(fieldName="height", dicomTag="0x00101020"),
                        headers=ADMIN).get_json()

    response = client.post(API + "/import", json=[rule_json(fieldName="height")], headers=ADMIN)

    assert response.status_code == 409
    assert response.get_json()["existingIds"] == [first["id"], second["id"]]
    assert "0" in response.get_json()["errors"]["rules"]


def test_import_unknown_bundle_key_is_400(client):
    response = client.post(API + "/import", json={"rules": [], "extra": 1}, headers=ADMIN)

    assert response.status_code == 400
    assert "extra" in response.get_json()["errors"]


def test_session_rule_warns_without_custom_variable(tmp_path, db_url):
    host = TestHost(["ProjectA"], custom_variables={("ProjectA", "xnat:mrSessionData", "weight")})
    app = create_test_app(tmp_path, db_url=db_url, host=host)
    client = app.test_client()

    missing = client.post(API, json=rule_json(fieldName="height", dicomTag="PatientSize"), headers=ADMIN)
    defined = client.post(API, json=rule_json(scope="Project", scopeObjectId="ProjectA"), headers=ADMIN)
    scan = client.post(API, json=rule_json(schemaElement="xnat:mrScanData"), headers=ADMIN)

    assert missing.status_code == 201
    assert "custom variable 'height'" in missing.get_json()["warnings"][0]
    assert "warnings" not in defined.get_json()
    assert "warnings" not in scan.get_json()
    app.extensions["dicom_mappings"].close()


def test_project_alias_stored_canonical(tmp_path, db_url):
    host = TestHost(["ProjectA"], aliases={"projecta": "ProjectA"})
    app = create_test_app(tmp_path, db_url=db_url, host=host)

    response = app.test_client().post(API, json=rule_json(scope="project", scopeObjectId="projecta"), headers=ADMIN)

    assert response.get_json()["scopeObjectId"] == "ProjectA"
    app.extensions["dicom_mappings"].close()


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_id_beyond_column_range_is_404(client, method):
    body = rule_json() if method == "PUT" else None

    response = client.open(f"{API}/{2**31}", method=method, json=body, headers=ADMIN)

    assert response.status_code == 404
    assert response.get_json()["status"] == 404


def test_body_id_beyond_column_range_is_400(client):
    response = client.put(API + "/update", json=rule_json(id=2**63), headers=ADMIN)

    assert response.status_code == 400
    assert "id" in response.get_json()["errors"]
