"""XNAT's three routes, sent the way curl and XNAT's own scripts send them."""

from __future__ import annotations

import json

import pytest

from apps import ADMIN, API, create_test_app, rule_json

XNAT_KEYS = {"id", "scope", "scopeObjectId", "fieldName", "fieldType", "dicomTag", "schemaElement"}


@pytest.fixture
def client(tmp_path, db_url):
    app = create_test_app(tmp_path, db_url=db_url)
    yield app.test_client()
    app.extensions["dicom_mappings"].close()


def curl_put(client, path, body):
    # curl -u admin:admin -X PUT -H 'Content-Type: application/json' -d '{...}' URL
    return client.put(path, data=json.dumps(body), headers={**ADMIN, "Content-Type": "application/json"})


def test_update_creates_when_id_absent(client):
    response = curl_put(client, API + "/update", rule_json())

    assert response.status_code == 200
    body = response.get_json()
    assert XNAT_KEYS <= set(body)
    assert body["id"] > 0
    assert body["dicomTag"] == "0x00101030"


def test_update_creates_when_id_zero(client):
    response = curl_put(client, API + "/update", rule_json(id=0))

    assert response.status_code == 200
    assert response.get_json()["id"] > 0


def test_update_with_trailing_slash(client):
    response = curl_put(client, API + "/update/", rule_json())

    assert response.status_code == 200
    assert response.get_json()["id"] > 0


def test_update_replaces_whole_rule(client):
    created = curl_put(client, API + "/update", rule_json(conflictPolicy="first")).get_json()

    response = curl_put(client, API + "/update", rule_json(id=created["id"], fieldType="string"))

    assert response.status_code == 200
    body = response.get_json()
    assert body["id"] == created["id"]
    assert body["fieldType"] == "string"
    assert body["conflictPolicy"] == "unique"
    assert body["version"] == 2


def test_update_unknown_id_is_404(client):
    response = curl_put(client, API + "/update", rule_json(id=999))

    assert response.status_code == 404
    assert response.get_json()["message"].startswith("Mapping rule 999 does not exist")


def test_list_is_plain_array(client):
    curl_put(client, API + "/update", rule_json())
    curl_put(client, API + "/update", rule_json(scope="project", scopeObjectId="ProjectA"))

    response = client.get(API, headers=ADMIN)

    assert response.status_code == 200
    body = response.get_json()
    assert isinstance(body, list)
    assert len(body) == 2
    assert all(XNAT_KEYS <= set(rule) for rule in body)


def test_list_with_trailing_slash(client):
    response = client.get(API + "/", headers=ADMIN)

    assert response.status_code == 200
    assert response.get_json() == []


def test_list_accepts_xnat_query_args(client):
    response = client.get(API, query_string={"format": "json", "XNAT_CSRF": "abc", "_": "1700000000"}, headers=ADMIN)

    assert response.status_code == 200


def test_delete_answers_200(client):
    created = curl_put(client, API + "/update", rule_json()).get_json()

    response = client.delete(f"{API}/{created['id']}", headers=ADMIN)

    assert response.status_code == 200
    assert client.get(API, headers=ADMIN).get_json() == []


def test_delete_unknown_id_is_404(client):
    response = client.delete(f"{API}/31", headers=ADMIN)

    assert response.status_code == 404
    assert response.get_json()["status"] == 404


def test_xnat_entity_keys_are_accepted(client):
    # A rule as XNAT's GET returns it, sent back unchanged.
    created = curl_put(client, API + "/update", rule_json()).get_json()
    body = {**created, "enabled": True, "created": 1700000000000, "timestamp": 1700000000000, "disabled": 0}

    response = curl_put(client, API + "/update", body)

    assert response.status_code == 200
    assert response.get_json()["version"] == 2


def test_lowercase_scope_is_stored_as_xnat_spells_it(client):
    response = curl_put(client, API + "/update", rule_json(scope="project", scopeObjectId="ProjectA"))

    assert response.get_json()["scope"] == "Project"


def test_site_rule_returns_null_project(client):
    body = curl_put(client, API + "/update", rule_json(scopeObjectId="")).get_json()

    assert body["scopeObjectId"] is None
