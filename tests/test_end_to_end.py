"""The demo's whole job through a real HTTP server, on SQLite and on PostgreSQL."""

from __future__ import annotations

import http.cookiejar
import re
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from examples import demo
from examples.xnat_host import create_app
from examples.xnat_host.client import HostClient

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def server(db_url, tmp_path):
    """The reference host on a free 127.0.0.1 port, served by a thread."""
    app = create_app(tmp_path / "data", {"HOST_DATABASE_URL": db_url})
    http_server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http_server.serve_forever, daemon=True)
    thread.start()

    yield f"http://127.0.0.1:{http_server.server_port}"

    http_server.shutdown()
    thread.join(timeout=10)
    http_server.server_close()
    app.extensions["xnat_host"].engine.dispose()


@pytest.fixture
def archived(server):
    """Run the demo's steps as the administrator and return the archived sessions by label."""
    client = HostClient(server, "admin", "admin")

    assert client.put_json(f"/data/projects/{demo.PROJECT}", {}).status == 201
    session_type, name, field_type = demo.CUSTOM_VARIABLE
    variable = client.put_json(
        f"/data/projects/{demo.PROJECT}/custom_variables/{session_type}/{name}", {"type": field_type}
    )
    assert variable.status == 201

    stored_rules = []
    for rule in demo.MAPPINGS:
        response = client.put_json("/xapi/dicom_mappings/update", rule)
        assert response.status == 200, response.body
        stored_rules.append(response.json())

    response = client.import_zip(demo.PROJECT, demo.build_zip())
    assert response.status == 200, response.body
    imported = response.json()

    sessions = {}
    for summary in imported["sessions"]:
        reply = client.get(f"{summary['uri']}?format=json")
        assert reply.status == 200
        sessions[summary["label"]] = reply.json()

    return {"rules": stored_rules, "import": imported, "sessions": sessions}


def _problems(session: dict, field_name: str) -> list[dict]:
    return [p for p in session["problems"] if p["fieldName"] == field_name]


def test_rules_stored_canonical(archived):
    tags = {(r["schemaElement"], r["fieldName"]): r["dicomTag"] for r in archived["rules"]}

    assert tags[("xnat:mrSessionData", "studydate")] == "0x00080020"
    assert tags[("xnat:mrScanData", "pixelspacing")] == "0x00280030"
    assert tags[("xnat:ctScanData", "tablespeed")] == '(0019,"GEMS_ACQU_01",23)'


def test_rule_warning_without_custom_variable(archived):
    warnings = {(r["schemaElement"], r["fieldName"]): r.get("warnings", []) for r in archived["rules"]}

    assert warnings[("xnat:mrSessionData", "weight")] == []
    assert any("studydate" in text for text in warnings[("xnat:mrSessionData", "studydate")])


def test_import_response(archived):
    imported = archived["import"]

    assert [s["label"] for s in imported["sessions"]] == ["4MR1", "1CT1", "CQ500-CT-310"]
    assert all(s["uri"] == f"/data/experiments/{s['id']}" for s in imported["sessions"])
    assert [item["path"] for item in imported["skipped"]] == ["study/README.txt"]


def test_mr_session_values(archived):
    session = archived["sessions"]["4MR1"]
    scan = session["scans"][0]

    assert session["xsiType"] == "xnat:mrSessionData"
    assert session["fields"] == {"weight": "80.0", "studydate": "2004-08-26"}
    assert scan["id"] == "1"
    assert scan["xsiType"] == "xnat:mrScanData"
    assert scan["parameters"] == {
        "pixelspacing": "0.3125\\0.3125",
        "tr": "4000.0",
        "te": "240.0",
        "slicethickness": "0.8",
    }
    assert session["problems"] == []


def test_ct_session_values(archived):
    session = archived["sessions"]["1CT1"]
    scan = session["scans"][0]

    assert session["xsiType"] == "xnat:ctSessionData"
    assert session["fields"] == {"weight": "0.0", "studydate": "2004-01-19"}
    assert scan["xsiType"] == "xnat:ctScanData"
    assert scan["parameters"] == {
        "pixelspacing": "0.661468\\0.661468",
        "slicethickness": "5.0",
        "tablespeed": "5.0",
    }
    assert session["problems"] == []


def test_session_without_values_reports_problems(archived):
    session = archived["sessions"]["CQ500-CT-310"]
    scan = session["scans"][0]

    assert session["fields"] == {}
    assert scan["id"] == "2"
    assert scan["parameters"] == {"pixelspacing": "0.478516\\0.478516", "slicethickness": "5.0"}
    assert [p["kind"] for p in _problems(session, "tablespeed")] == ["missing"]
    assert _problems(session, "tablespeed")[0]["scanId"] == "2"
    assert [p["kind"] for p in _problems(session, "weight")] == ["missing"]
    assert [p["kind"] for p in _problems(session, "studydate")] == ["missing"]


def test_regular_user_cannot_change_rules(server):
    client = HostClient(server, "user", "user")

    response = client.put_json("/xapi/dicom_mappings/update", demo.MAPPINGS[0])

    assert response.status == 403
    assert client.get("/data/projects").status == 200


def test_admin_page_over_login_form(server):
    cookies = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(cookies))

    with opener.open(f"{server}/login", timeout=30) as reply:
        token = re.search(r'name="csrf_token" value="([^"]+)"', reply.read().decode()).group(1)
    form = urllib.parse.urlencode({"username": "admin", "password": "admin", "csrf_token": token,
                                   "next": "/admin/dicom-mappings/"}).encode()
    with opener.open(f"{server}/login", data=form, timeout=30) as reply:
        page = reply.read().decode()
        final_url = reply.geturl()

    assert final_url == f"{server}/admin/dicom-mappings/"
    assert "DICOM mappings" in page


def test_demo_script_runs():
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "demo.py")],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)

    assert result.returncode == 0, result.stderr
    assert "weight     80.0" in result.stdout
    assert "tablespeed      5.0" in result.stdout
    assert "Host stopped." in result.stdout


def test_burst_of_api_requests_all_answer(server, db_url):
    # Each request must hold at most one pooled connection: with one for the
    # signed-in user and one for the rule store, 16 parallel requests used to
    # exhaust the default pool of 15 and wait 30 s for a 500.
    client = HostClient(server, "admin", "admin")
    statuses = []
    lock = threading.Lock()

    def fetch():
        status = client.get("/xapi/dicom_mappings").status
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=fetch) for _ in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert statuses == [200] * 24
