"""POST /xapi/dicom_mappings/preview on real DICOM files, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest

from tests.apps import ADMIN, USER, create_test_app, login, rule_json
from conftest import testdata as real_file

PREVIEW = "/xapi/dicom_mappings/preview"


@pytest.fixture
def client(tmp_path, db_url):
    app = create_test_app(tmp_path / "instance", db_url=db_url)
    return app.test_client()


def mr_small() -> tuple[str, bytes]:
    return "MR_small.dcm", Path(real_file("MR_small.dcm")).read_bytes()


def post_preview(client, files, headers=ADMIN, **form):
    data = {key: value for key, value in form.items() if value is not None}
    data["files"] = [(io.BytesIO(content), name) for name, content in files]
    return client.post(PREVIEW, data=data, headers=headers, content_type="multipart/form-data")


def test_preview_stored_rule(client):
    stored = client.put("/xapi/dicom_mappings/update", json=rule_json(), headers=ADMIN)
    assert stored.status_code == 200

    response = post_preview(client, [mr_small()])

    assert response.status_code == 200
    body = response.get_json()
    assert len(body["sessions"]) == 1
    assert body["sessions"][0]["xsiType"] == "xnat:mrSessionData"
    assert body["sessions"][0]["fields"] == {"weight": "80.0"}
    assert body["unreadable"] == []


def test_preview_candidate_rule_not_saved(client):
    candidate = rule_json(fieldName="te", dicomTag="EchoTime", schemaElement="xnat:mrScanData")

    response = post_preview(client, [mr_small()], rules=json.dumps([candidate]))

    assert response.status_code == 200
    scans = response.get_json()["sessions"][0]["scans"]
    assert scans[0]["parameters"] == {"te": "240.0"}
    assert client.get("/xapi/dicom_mappings", headers=ADMIN).get_json() == []


def test_preview_candidate_replaces_stored(client):
    stored = client.put("/xapi/dicom_mappings/update", json=rule_json(), headers=ADMIN).get_json()
    edited = dict(rule_json(fieldType="string"), id=stored["id"])

    response = post_preview(client, [mr_small()], rules=json.dumps([edited]))

    assert response.get_json()["sessions"][0]["fields"] == {"weight": "80.0000"}
    unchanged = client.get(f"/xapi/dicom_mappings/{stored['id']}", headers=ADMIN).get_json()
    assert unchanged["fieldType"] == "float"


def test_preview_zip_with_text_member(client):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a/MR_small.dcm", mr_small()[1])
        archive.writestr("a/notes.dcm", b"not DICOM at all\n")
    client.put("/xapi/dicom_mappings/update", json=rule_json(), headers=ADMIN)

    response = post_preview(client, [("upload.zip", buffer.getvalue())])

    body = response.get_json()
    assert response.status_code == 200
    assert body["sessions"][0]["fields"] == {"weight": "80.0"}
    assert [entry["path"] for entry in body["unreadable"]] == ["upload.zip/a/notes.dcm"]


def test_preview_unknown_project_400(client):
    response = post_preview(client, [mr_small()], project="NoSuchProject")

    assert response.status_code == 400
    assert "NoSuchProject" in response.get_json()["message"]


def test_preview_scan_type_as_session_400(client):
    response = post_preview(client, [mr_small()], sessionType="xnat:mrScanData")

    assert response.status_code == 400
    assert "sessionType" in response.get_json()["errors"]


def test_preview_invalid_candidate_400(client):
    bad = rule_json(dicomTag="PixelData")

    response = post_preview(client, [mr_small()], rules=json.dumps([bad]))

    assert response.status_code == 400
    assert "rules[0]" in response.get_json()["errors"]


def test_preview_without_files_400(client):
    response = client.post(PREVIEW, data={"project": ""}, headers=ADMIN,
                           content_type="multipart/form-data")

    assert response.status_code == 400
    assert "files" in response.get_json()["message"]


def test_preview_json_body_415(client):
    response = client.post(PREVIEW, json={"files": []}, headers=ADMIN)

    assert response.status_code == 415


def test_preview_too_many_files_413(tmp_path, sqlite_url):
    app = create_test_app(tmp_path / "instance", db_url=sqlite_url,
                          DICOM_MAPPINGS_PREVIEW_MAX_FILES=2)
    client = app.test_client()

    response = post_preview(client, [mr_small()] * 3)

    assert response.status_code == 413
    assert "at most 2 files" in response.get_json()["message"]


def test_preview_too_many_bytes_413(tmp_path, sqlite_url):
    app = create_test_app(tmp_path / "instance", db_url=sqlite_url,
                          DICOM_MAPPINGS_PREVIEW_MAX_BYTES=1000)
    client = app.test_client()

    response = post_preview(client, [mr_small()])

    assert response.status_code == 413


def test_preview_user_403(client):
    response = post_preview(client, [mr_small()], headers=USER)

    assert response.status_code == 403


def test_preview_cookie_needs_csrf(client):
    login(client, "admin")

    response = post_preview(client, [mr_small()], headers={})

    assert response.status_code == 403
    assert "CSRF" in response.get_json()["message"]


def test_preview_deeply_nested_rules_400(client):
    response = post_preview(client, [mr_small()], rules="[" * 50_000)

    assert response.status_code == 400
    assert "nested too deeply" in response.get_json()["errors"]["rules"][0]
