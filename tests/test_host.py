"""The reference host in examples/xnat_host, through Flask's test client."""

from __future__ import annotations

import base64
import io
import re
import signal
import stat
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest
import sqlalchemy as sa

from conftest import testdata as installed_test_file
from examples.xnat_host import create_app
from examples.xnat_host import importer
from examples.xnat_host.models import Scan, Session, SessionField, StoredFile

ROOT = Path(__file__).resolve().parent.parent


def basic(username: str, password: str) -> dict:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


ADMIN = basic("admin", "admin")
USER = basic("user", "user")


def make_zip(members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def dicom_bytes(name: str) -> bytes:
    return Path(installed_test_file(name)).read_bytes()


@pytest.fixture
def make_host(db_url, tmp_path):
    apps = []

    def build(**config):
        app = create_app(tmp_path / "data", {"HOST_DATABASE_URL": db_url, "TESTING": True, **config})
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.extensions["xnat_host"].engine.dispose()


@pytest.fixture
def app(make_host):
    return make_host()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def project(client):
    response = client.put("/data/projects/P1", headers=ADMIN)
    assert response.status_code == 201
    return "P1"


def post_zip(client, body: bytes, query: str = "PROJECT_ID=P1", headers=ADMIN,
             content_type: str = "application/zip"):
    return client.post(f"/data/services/import?{query}", data=body,
                       headers={**headers, "Content-Type": content_type})


def count_rows(app, model) -> int:
    with app.extensions["xnat_host"].session_factory() as db:
        return db.scalar(sa.select(sa.func.count()).select_from(model))


def archived_files(app) -> list[Path]:
    archive = app.extensions["xnat_host"].data_dir / "archive"
    return [path for path in archive.rglob("*") if path.is_file()] if archive.exists() else []


# Accounts and sign-in


def test_anonymous_gets_json_401(client):
    response = client.get("/data/projects")

    assert response.status_code == 401
    assert response.json["status"] == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic")


def test_basic_wrong_password(client):
    assert client.get("/data/projects", headers=basic("admin", "wrong")).status_code == 401


def test_basic_seeded_accounts(client):
    assert client.get("/data/projects", headers=ADMIN).status_code == 200
    assert client.get("/data/projects", headers=USER).status_code == 200


def test_seeded_accounts_from_environment(make_host, monkeypatch):
    monkeypatch.setenv("XNAT_HOST_ADMIN_USERNAME", "root")
    monkeypatch.setenv("XNAT_HOST_ADMIN_PASSWORD", "s3cret")
    client = make_host().test_client()

    assert client.put("/data/projects/ENV", headers=basic("root", "s3cret")).status_code == 201
    assert client.get("/data/projects", headers=ADMIN).status_code == 401


def _login_token(client) -> str:
    page = client.get("/login").get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def test_login_form_signs_in(client):
    token = _login_token(client)

    response = client.post("/login", data={"username": "admin", "password": "admin",
                                           "csrf_token": token, "next": "/data/projects"})

    assert response.status_code == 302
    assert response.headers["Location"].endswith("/data/projects")
    assert client.get("/data/projects").status_code == 200


def test_login_form_wrong_password(client):
    token = _login_token(client)

    response = client.post("/login", data={"username": "admin", "password": "nope", "csrf_token": token})

    assert response.status_code == 401
    assert client.get("/data/projects").status_code == 401


def test_login_form_needs_csrf_token(client):
    _login_token(client)

    response = client.post("/login", data={"username": "admin", "password": "admin"})

    assert response.status_code == 403


def test_login_form_rejects_offsite_next(client):
    token = _login_token(client)

    response = client.post("/login", data={"username": "admin", "password": "admin",
                                           "csrf_token": token, "next": "https://evil.example/"})

    assert response.headers["Location"] == "/"


def test_cookie_session_state_change_needs_csrf(client):
    token = _login_token(client)
    client.post("/login", data={"username": "admin", "password": "admin", "csrf_token": token})

    without = client.put("/data/projects/CSRF")
    with_token = client.put("/data/projects/CSRF", headers={"X-CSRFToken": token})

    assert without.status_code == 403
    assert "X-CSRFToken" in without.json["message"]
    assert with_token.status_code == 201


def test_non_ascii_csrf_token_is_403(client):
    token = _login_token(client)
    client.post("/login", data={"username": "admin", "password": "admin", "csrf_token": token})

    response = client.put("/data/projects/ACCENT", headers={"X-CSRFToken": "t\u00e9"})

    assert response.status_code == 403


def test_cookie_with_junk_authorization_needs_csrf(client):
    token = _login_token(client)
    client.post("/login", data={"username": "admin", "password": "admin", "csrf_token": token})

    response = client.put("/data/projects/JUNK", headers={"Authorization": "Bearer junk"})

    assert response.status_code == 403
    assert client.get("/data/projects/JUNK", headers=ADMIN).status_code == 404


def test_cookie_session_reaches_plugin_api(client):
    token = _login_token(client)
    client.post("/login", data={"username": "admin", "password": "admin", "csrf_token": token})

    assert client.get("/xapi/dicom_mappings").status_code == 200
    assert client.get("/admin/dicom-mappings", follow_redirects=True).status_code == 200


def test_admin_page_redirects_anonymous_to_login(client):
    response = client.get("/admin/dicom-mappings/")

    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_plugin_api_roles(client):
    assert client.get("/xapi/dicom_mappings").status_code == 401
    assert client.get("/xapi/dicom_mappings", headers=USER).status_code == 403
    assert client.get("/xapi/dicom_mappings", headers=ADMIN).status_code == 200


# Projects and custom variables


def test_project_create_and_list(client):
    created = client.put("/data/projects/P1?name=First", headers=ADMIN)
    updated = client.put("/data/projects/P1", json={"name": "Renamed"}, headers=ADMIN)
    listed = client.get("/data/projects", headers=USER).json["ResultSet"]

    assert created.status_code == 201
    assert created.headers["Location"] == "/data/projects/P1"
    assert updated.status_code == 200
    assert listed["totalRecords"] == "1"
    assert listed["Result"][0]["ID"] == "P1"
    assert listed["Result"][0]["name"] == "Renamed"


def test_project_create_needs_admin(client):
    assert client.put("/data/projects/P1", headers=USER).status_code == 403
    assert client.put("/data/projects/P1").status_code == 401


def test_project_invalid_id(client):
    response = client.put("/data/projects/bad%20id", headers=ADMIN)

    assert response.status_code == 400
    assert "project ID 'bad id' is invalid" in response.json["message"]


def test_project_case_clash(client, project):
    response = client.put("/data/projects/p1", headers=ADMIN)

    assert response.status_code == 409


def test_unknown_project_404(client):
    response = client.get("/data/projects/NOPE", headers=ADMIN)

    assert response.status_code == 404
    assert "does not exist" in response.json["message"]


def test_custom_variable_define(app, client, project):
    response = client.put("/data/projects/P1/custom_variables/xnat:mrsessiondata/Weight",
                          json={"type": "float"}, headers=ADMIN)
    listed = client.get("/data/projects/P1/custom_variables", headers=ADMIN).json["ResultSet"]
    host = app.extensions["xnat_host"].host

    assert response.status_code == 201
    assert response.json["sessionType"] == "xnat:mrSessionData"
    assert response.json["name"] == "weight"
    assert listed["Result"][0]["type"] == "float"
    assert host.has_custom_variable("P1", "xnat:mrSessionData", "weight") is True
    assert host.has_custom_variable("P1", "xnat:ctSessionData", "weight") is False
    assert host.has_custom_variable(None, "xnat:mrSessionData", "weight") is True


@pytest.mark.parametrize(("path", "body", "message"), [
    ("xnat:mrScanData/weight", {}, "is not a session xsi type"),
    ("xnat:mrSessionData/1weight", {}, "custom variable name '1weight' is invalid"),
    ("xnat:mrSessionData/weight", {"type": "money"}, "type 'money' is invalid"),
])
def test_custom_variable_invalid(client, project, path, body, message):
    response = client.put(f"/data/projects/P1/custom_variables/{path}", json=body, headers=ADMIN)

    assert response.status_code == 400
    assert message in response.json["message"]


def test_custom_variable_needs_admin(client, project):
    response = client.put("/data/projects/P1/custom_variables/xnat:mrSessionData/weight", headers=USER)

    assert response.status_code == 403


def test_host_protocol_projects(app, client, project):
    host = app.extensions["xnat_host"].host

    assert host.canonical_project("P1") == "P1"
    assert host.canonical_project("p1") == "P1"
    assert host.canonical_project("P2") is None
    assert host.list_projects() == ["P1"]


def test_plugin_rejects_rule_for_unknown_project(client):
    rule = {"scope": "Project", "scopeObjectId": "NOPE", "fieldName": "weight",
            "fieldType": "float", "dicomTag": "0x00101030", "schemaElement": "xnat:mrSessionData"}

    response = client.put("/xapi/dicom_mappings/update", json=rule, headers=ADMIN)

    assert response.status_code == 400


# Import: request checks


def test_import_wrong_content_type(client, project):
    response = post_zip(client, b"x", content_type="text/plain")

    assert response.status_code == 415
    assert "application/zip" in response.json["message"]


def test_import_missing_project_id(client):
    response = post_zip(client, make_zip({"a": b"a"}), query="")

    assert response.status_code == 400
    assert "PROJECT_ID" in response.json["message"]


def test_import_unknown_project(client):
    response = post_zip(client, make_zip({"a": b"a"}), query="PROJECT_ID=NOPE")

    assert response.status_code == 404


def test_import_needs_user(client, project):
    assert post_zip(client, make_zip({"a": b"a"}), headers={}).status_code == 401


def test_import_not_a_zip(client, project):
    response = post_zip(client, b"this is not a zip")

    assert response.status_code == 400
    assert "not a zip archive" in response.json["message"]


def test_import_empty_body(client, project):
    response = post_zip(client, b"")

    assert response.status_code == 400
    assert "empty" in response.json["message"]


def test_import_too_large(make_host):
    client = make_host(HOST_IMPORT_MAX_UPLOAD_BYTES=1000).test_client()
    client.put("/data/projects/P1", headers=ADMIN)

    response = post_zip(client, make_zip({"MR_small.dcm": dicom_bytes("MR_small.dcm")}))

    assert response.status_code == 413
    assert "limit of 1000 bytes" in response.json["message"]


@pytest.mark.parametrize("name", ["../evil.dcm", "a/../../evil.dcm", "/etc/evil.dcm",
                                  "..\\evil.dcm", "C:/evil.dcm"])
def test_import_path_traversal(app, client, project, name):
    response = post_zip(client, make_zip({name: dicom_bytes("MR_small.dcm")}))

    assert response.status_code == 400
    assert "leaves the target folder" in response.json["message"]
    assert count_rows(app, Session) == 0
    assert not list(app.extensions["xnat_host"].data_dir.parent.rglob("evil.dcm"))


def test_import_symbolic_link(client, project):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        info = zipfile.ZipInfo("link.dcm")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(info, "/etc/passwd")

    response = post_zip(client, buffer.getvalue())

    assert response.status_code == 400
    assert "symbolic link" in response.json["message"]


def test_import_zip_bomb_ratio(client, project):
    response = post_zip(client, make_zip({"zeros.dcm": bytes(8 * 1024 * 1024)}))

    assert response.status_code == 400
    assert "zip bomb" in response.json["message"]


def test_import_unpacked_limit(make_host):
    client = make_host(HOST_IMPORT_MAX_UNPACKED_BYTES=5_000).test_client()
    client.put("/data/projects/P1", headers=ADMIN)

    response = post_zip(client, make_zip({"MR_small.dcm": dicom_bytes("MR_small.dcm")}))

    assert response.status_code == 400
    assert "more than the limit of 5000 bytes" in response.json["message"]


def test_import_member_limit(make_host):
    client = make_host(HOST_IMPORT_MAX_MEMBERS=3).test_client()
    client.put("/data/projects/P1", headers=ADMIN)

    response = post_zip(client, make_zip({f"f{i}.txt": b"x" for i in range(4)}))

    assert response.status_code == 400
    assert "4 members, more than the limit of 3" in response.json["message"]


def test_import_no_dicom(client, project):
    response = post_zip(client, make_zip({"notes.txt": b"hello", "data.bin": bytes(300)}))

    assert response.status_code == 400
    assert "contains no DICOM files" in response.json["message"]


# Import: archiving


def test_import_archives_session(app, client, project):
    body = make_zip({"in/MR_small.dcm": dicom_bytes("MR_small.dcm"), "in/notes.txt": b"hello"})

    response = post_zip(client, body)

    assert response.status_code == 200
    sessions = response.json["sessions"]
    assert len(sessions) == 1
    assert sessions[0]["id"] == "XNAT_E00001"
    assert sessions[0]["uri"] == "/data/experiments/XNAT_E00001"
    assert sessions[0]["label"] == "4MR1"
    assert sessions[0]["subject"] == "CompressedSamples_MR1"
    assert sessions[0]["xsiType"] == "xnat:mrSessionData"
    assert sessions[0]["scans"] == ["1"]
    assert response.json["skipped"][0]["path"] == "in/notes.txt"
    assert "not a DICOM" in response.json["skipped"][0]["reason"]

    files = archived_files(app)
    assert len(files) == 1
    assert files[0].read_bytes() == dicom_bytes("MR_small.dcm")
    assert files[0].relative_to(app.extensions["xnat_host"].data_dir).parts[:5] == (
        "archive", "P1", "XNAT_E00001", "SCANS", "1")


def test_import_subject_and_label(client, project):
    body = make_zip({"MR_small.dcm": dicom_bytes("MR_small.dcm")})

    response = post_zip(client, body, query="PROJECT_ID=P1&SUBJECT_ID=S01&EXPT_LABEL=S01_MR1")

    assert response.json["sessions"][0]["label"] == "S01_MR1"
    assert response.json["sessions"][0]["subject"] == "S01"


def test_import_groups_studies_and_series(client, project):
    body = make_zip({
        "a.dcm": dicom_bytes("MR_small.dcm"),
        "b.dcm": dicom_bytes("CT_small.dcm"),
        "c.dcm": dicom_bytes("693_UNCR.dcm"),
        "d.dcm": dicom_bytes("693_UNCI.dcm"),
    })

    sessions = post_zip(client, body).json["sessions"]

    assert [s["xsiType"] for s in sessions] == ["xnat:mrSessionData", "xnat:ctSessionData",
                                                "xnat:ctSessionData"]
    assert sessions[2]["scans"] == ["2"]
    experiment = client.get(f"{sessions[2]['uri']}?format=json", headers=USER).json
    assert experiment["scans"][0]["xsiType"] == "xnat:ctScanData"


def test_import_duplicate_sop_instance_skipped(client, project):
    body = make_zip({"a.dcm": dicom_bytes("MR_small.dcm"), "b.dcm": dicom_bytes("MR_small.dcm")})

    response = post_zip(client, body)

    assert response.status_code == 200
    assert response.json["skipped"][0]["path"] == "b.dcm"
    assert "duplicate SOPInstanceUID" in response.json["skipped"][0]["reason"]


def test_import_label_for_several_studies(app, client, project):
    body = make_zip({"a.dcm": dicom_bytes("MR_small.dcm"), "b.dcm": dicom_bytes("CT_small.dcm")})

    response = post_zip(client, body, query="PROJECT_ID=P1&EXPT_LABEL=ONE")

    assert response.status_code == 400
    assert "contains 2 studies" in response.json["message"]
    assert count_rows(app, Session) == 0
    assert archived_files(app) == []


def test_import_same_study_twice(app, client, project):
    body = make_zip({"a.dcm": dicom_bytes("MR_small.dcm")})
    post_zip(client, body)

    response = post_zip(client, body)

    assert response.status_code == 409
    assert "already archived" in response.json["message"]
    assert count_rows(app, Session) == 1


def test_import_failure_leaves_nothing(app, client, project, monkeypatch):
    original = importer._store_one
    calls = []

    def fail_on_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return original(*args, **kwargs)

    monkeypatch.setattr(importer, "_store_one", fail_on_second)
    body = make_zip({"a.dcm": dicom_bytes("MR_small.dcm"), "b.dcm": dicom_bytes("CT_small.dcm")})

    with pytest.raises(RuntimeError, match="disk full"):
        post_zip(client, body)

    assert len(calls) == 2
    for model in (Session, Scan, SessionField, StoredFile):
        assert count_rows(app, model) == 0
    assert archived_files(app) == []
    assert list((app.extensions["xnat_host"].data_dir / "tmp").iterdir()) == []


def test_experiment_shape(client, project):
    sessions = post_zip(client, make_zip({"a.dcm": dicom_bytes("MR_small.dcm")})).json["sessions"]

    experiment = client.get("/data/experiments/XNAT_E00001?format=json", headers=USER).json

    assert set(experiment) == {"id", "label", "project", "xsiType", "studyInstanceUid",
                               "fields", "scans", "problems"}
    assert experiment["id"] == sessions[0]["id"]
    assert experiment["project"] == "P1"
    assert experiment["studyInstanceUid"] == "1.3.6.1.4.1.5962.1.2.4.20040826185059.5457"
    assert set(experiment["scans"][0]) == {"id", "xsiType", "seriesInstanceUid", "parameters"}
    assert experiment["scans"][0]["seriesInstanceUid"] == "1.3.6.1.4.1.5962.1.3.4.1.20040826185059.5457"


def test_experiment_not_found(client):
    assert client.get("/data/experiments/XNAT_E99999", headers=ADMIN).status_code == 404
    assert client.get("/data/experiments/nonsense", headers=ADMIN).status_code == 404


def test_experiment_xml_rejected(client, project):
    post_zip(client, make_zip({"a.dcm": dicom_bytes("MR_small.dcm")}))

    response = client.get("/data/experiments/XNAT_E00001?format=xml", headers=ADMIN)

    assert response.status_code == 400
    assert "format=json" in response.json["message"]


def test_project_experiments_list(client, project):
    post_zip(client, make_zip({"a.dcm": dicom_bytes("MR_small.dcm")}))

    rows = client.get("/data/projects/P1/experiments", headers=USER).json["ResultSet"]["Result"]

    assert [row["ID"] for row in rows] == ["XNAT_E00001"]


# The command line of the host


def test_main_serves_and_stops(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "examples.xnat_host", "--port", "0", "--data-dir", str(tmp_path)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        line = process.stdout.readline().strip()
        assert line.startswith("Serving on http://127.0.0.1:")

        with urllib.request.urlopen(line.removeprefix("Serving on ") + "login", timeout=30) as reply:
            assert reply.status == 200
    finally:
        process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        while process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        if process.poll() is None:
            process.kill()

    assert process.returncode == 0
    assert (tmp_path / "archive.sqlite3").is_file()


def test_main_rejects_public_address(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "examples.xnat_host", "--host", "0.0.0.0", "--port", "0",
         "--data-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )

    assert result.returncode == 2
    assert "not a loopback address" in result.stderr
