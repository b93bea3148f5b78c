"""Faults: the rule database failing in the middle of a write, and host signal receivers that raise.

Database faults are real, never mocked:

* PostgreSQL: the backend serving the request is terminated with
  ``pg_terminate_backend`` from a second connection, just before the n-th
  SQL statement of the request, for every n the request executes. Only the
  test's own connections are touched (found by their backend pid or by a
  unique ``application_name``), never the shared server.
* SQLite: a second connection takes the write lock before the request's
  first write, or holds a read lock from the n-th write on, so the commit
  cannot take the exclusive lock. The busy timeout is cut to 0.2 s so a
  locked database fails fast.

After each fault the response must be 503 with the JSON error body, nothing
may be half-written (rules and history are as before) and the next request
must succeed on the same app, without a restart.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from xnat_dicom_mappings import signals
from xnat_dicom_mappings.extractor import ScanInput

from apps import ADMIN, API, create_test_app, rule_json
from conftest import testdata as installed_file

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts" / "reliability"

#: Rules stored before each faulted request.
SEED = [
    rule_json(fieldName="weight", dicomTag="PatientWeight"),
    rule_json(fieldName="height", dicomTag="PatientSize"),
    rule_json(fieldName="age", fieldType="string", dicomTag="PatientAge"),
]

#: The import under test: in mode replace it deletes "age", updates "weight"
#: and "height", and creates two rules.
BUNDLE = [
    rule_json(fieldName="weight", dicomTag="PatientWeight", fieldType="string"),
    rule_json(fieldName="height", dicomTag="PatientSize", conflictPolicy="max"),
    rule_json(fieldName="sex", fieldType="string", dicomTag="PatientSex"),
    rule_json(fieldName="study-date", fieldType="date", dicomTag="StudyDate"),
]

_faults_injected = {"postgresql": 0, "sqlite": 0}


def content(rules: list[dict]) -> set[tuple]:
    keys = ("scope", "scopeObjectId", "fieldName", "fieldType", "dicomTag", "schemaElement", "conflictPolicy")
    return {tuple(rule.get(key) for key in keys) for rule in rules}


def expected_bundle_content(client) -> set[tuple]:
    response = client.post(f"{API}/import", query_string={"mode": "replace", "dryRun": "true"},
                           json=BUNDLE, headers=ADMIN)
    assert response.status_code == 200
    body = response.get_json()
    after = [entry["after"] for entry in body["update"]] + body["create"]
    unchanged = [rule for rule in client.get(API, headers=ADMIN).get_json() if rule["id"] in body["unchanged"]]
    return content(after + unchanged)


def snapshot(client) -> tuple[set[tuple], int]:
    rules = client.get(API, headers=ADMIN)
    history = client.get(f"{API}/history", query_string={"pageSize": 1}, headers=ADMIN)
    assert rules.status_code == 200
    assert history.status_code == 200
    return content(rules.get_json()), int(history.headers["X-Total-Count"])


def seed(client) -> None:
    response = client.post(f"{API}/import", query_string={"mode": "replace"}, json=SEED, headers=ADMIN)
    assert response.status_code == 200, response.get_json()


def check_unavailable(response) -> None:
    assert response.status_code == 503, response.get_data(as_text=True)
    body = response.get_json()
    assert body["status"] == 503
    assert "unavailable" in body["message"]
    assert "Traceback" not in response.get_data(as_text=True)
    assert response.headers["Retry-After"]


def record_figures() -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "faults.json").write_text(json.dumps(_faults_injected, indent=2))


# -- PostgreSQL: the backend terminated before the n-th statement ------------------------


class BackendKiller:
    """Terminate the backend of the connection that is about to run statement number ``at``."""

    def __init__(self, engine: sa.Engine, admin: sa.Engine):
        self.engine = engine
        self.admin = admin
        self.at: int | None = None
        self.count = 0
        self.fired = False
        sa.event.listen(engine, "before_cursor_execute", self._before)

    def arm(self, at: int | None) -> None:
        self.at, self.count, self.fired = at, 0, False

    def _before(self, connection, cursor, statement, parameters, context, executemany):
        self.count += 1
        if self.count != self.at:
            return
        pid = connection.connection.dbapi_connection.info.backend_pid
        with self.admin.connect() as admin:
            terminated = admin.execute(sa.text("select pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
            admin.commit()
        assert terminated
        self.fired = True

    def close(self) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._before)


@pytest.fixture
def pg_app(tmp_path, pg_url, pg_base_url):
    application_name = "xdm_fault_" + uuid.uuid4().hex[:10]
    app = create_test_app(tmp_path, db_url=pg_url, DICOM_MAPPINGS_ENGINE_OPTIONS={
        "connect_args": {"application_name": application_name}})
    admin = sa.create_engine(pg_base_url)
    app.config["TEST_APPLICATION_NAME"] = application_name
    yield app, admin
    app.extensions["dicom_mappings"].close()
    admin.dispose()


def statements_of(killer: BackendKiller, send) -> int:
    killer.arm(None)
    response = send()
    assert response.status_code in (200, 201), response.get_json()
    return killer.count


@pytest.mark.postgres
def test_pg_terminated_mid_import(pg_app):
    app, admin = pg_app
    client = app.test_client()
    seed(client)
    expected = expected_bundle_content(client)
    killer = BackendKiller(app.extensions["dicom_mappings"].engine, admin)

    def send():
        return client.post(f"{API}/import", query_string={"mode": "replace"}, json=BUNDLE, headers=ADMIN)

    statement_count = statements_of(killer, send)
    assert snapshot(client)[0] == expected
    assert statement_count >= 10

    for at in range(1, statement_count + 1):
        seed(client)
        before = snapshot(client)
        killer.arm(at)

        response = send()

        assert killer.fired
        check_unavailable(response)
        killer.arm(None)
        assert snapshot(client) == before, f"import half-written when statement {at} failed"
        _faults_injected["postgresql"] += 1

    response = send()
    assert response.status_code == 200
    assert snapshot(client)[0] == expected
    killer.close()
    record_figures()


@pytest.mark.postgres
@pytest.mark.parametrize("operation", ["create", "replace", "delete", "update-xnat"])
def test_pg_terminated_mid_write(pg_app, operation):
    app, admin = pg_app
    client = app.test_client()
    killer = BackendKiller(app.extensions["dicom_mappings"].engine, admin)

    def send(rule_id: int):
        if operation == "create":
            return client.post(API, json=rule_json(fieldName="sex", dicomTag="PatientSex"), headers=ADMIN)
        if operation == "replace":
            return client.put(f"{API}/{rule_id}", json=rule_json(fieldType="string"), headers=ADMIN)
        if operation == "update-xnat":
            return client.put(f"{API}/update", json=rule_json(id=rule_id, fieldType="integer"), headers=ADMIN)
        return client.delete(f"{API}/{rule_id}", headers=ADMIN)

    def weight_rule_id() -> int:
        seed(client)
        rules = client.get(API, query_string={"fieldName": "weight"}, headers=ADMIN).get_json()
        return rules[0]["id"]

    rule_id = weight_rule_id()
    killer.arm(None)
    assert send(rule_id).status_code in (200, 201)
    statement_count = killer.count
    assert statement_count >= 2

    for at in range(1, statement_count + 1):
        rule_id = weight_rule_id()
        before = snapshot(client)
        killer.arm(at)

        response = send(rule_id)

        assert killer.fired
        killer.arm(None)
        check_unavailable(response)
        assert snapshot(client) == before, f"{operation} half-written when statement {at} failed"
        _faults_injected["postgresql"] += 1

    rule_id = weight_rule_id()
    assert send(rule_id).status_code in (200, 201)
    killer.close()
    record_figures()


@pytest.mark.postgres
def test_pg_all_connections_dropped_between_requests(pg_app):
    app, admin = pg_app
    client = app.test_client()
    seed(client)
    name = app.config["TEST_APPLICATION_NAME"]

    for round_number in range(3):
        with admin.connect() as connection:
            terminated = connection.execute(sa.text(
                "select count(pg_terminate_backend(pid)) from pg_stat_activity where application_name = :name"
            ), {"name": name}).scalar()
            connection.commit()
        assert terminated >= 1
        _faults_injected["postgresql"] += 1

        tag = ("PatientSex", "PatientComments", "PatientBirthDate")[round_number]
        response = client.post(API, json=rule_json(fieldName=f"after-drop-{round_number}", dicomTag=tag),
                               headers=ADMIN)

        assert response.status_code == 201, response.get_json()
    record_figures()


# -- SQLite: locks held by another connection ---------------------------------------------


@pytest.fixture
def sqlite_app(tmp_path):
    path = tmp_path / "rules.sqlite3"
    app = create_test_app(tmp_path, db_url=f"sqlite:///{path}",
                          DICOM_MAPPINGS_ENGINE_OPTIONS={"connect_args": {"timeout": 0.2}})
    yield app, path
    app.extensions["dicom_mappings"].close()


class LockTaker:
    """Take an SQLite lock from a second connection when the request reaches its n-th write."""

    def __init__(self, engine: sa.Engine, path: Path):
        self.engine = engine
        self.path = path
        self.at: int | None = None
        self.mode = "read"
        self.writes = 0
        self.other: sqlite3.Connection | None = None
        sa.event.listen(engine, "before_cursor_execute", self._before)

    def arm(self, at: int | None, mode: str = "read") -> None:
        self.at, self.mode, self.writes = at, mode, 0

    def _before(self, connection, cursor, statement, parameters, context, executemany):
        if not statement.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE")):
            return
        self.writes += 1
        if self.writes != self.at or self.other is not None:
            return
        self.other = sqlite3.connect(self.path, timeout=0.2, isolation_level=None)
        if self.mode == "write":
            self.other.execute("begin immediate")
        else:
            self.other.execute("begin")
            self.other.execute("select count(*) from xdm_rule").fetchone()

    def release(self) -> None:
        if self.other is not None:
            self.other.execute("rollback")
            self.other.close()
            self.other = None

    def close(self) -> None:
        self.release()
        sa.event.remove(self.engine, "before_cursor_execute", self._before)


@pytest.mark.parametrize("mode", ["write", "read"])
def test_sqlite_locked_mid_import(sqlite_app, mode):
    app, path = sqlite_app
    client = app.test_client()
    seed(client)
    expected = expected_bundle_content(client)
    locker = LockTaker(app.extensions["dicom_mappings"].engine, path)

    def send():
        return client.post(f"{API}/import", query_string={"mode": "replace"}, json=BUNDLE, headers=ADMIN)

    locker.arm(None)
    assert send().status_code == 200
    write_count = locker.writes
    assert write_count >= 8
    # A writer lock can only be taken before the request's first write.
    points = [1] if mode == "write" else range(1, write_count + 1)

    for at in points:
        seed(client)
        before = snapshot(client)
        locker.arm(at, mode)

        response = send()

        assert locker.other is not None
        check_unavailable(response)
        locker.release()
        locker.arm(None)
        assert snapshot(client) == before, f"import half-written with a {mode} lock from write {at}"
        _faults_injected["sqlite"] += 1

    assert send().status_code == 200
    assert snapshot(client)[0] == expected
    locker.close()
    record_figures()


def test_sqlite_locked_create_then_recovers(sqlite_app):
    app, path = sqlite_app
    client = app.test_client()
    seed(client)
    before = snapshot(client)
    other = sqlite3.connect(path, timeout=0.2, isolation_level=None)
    other.execute("begin exclusive")

    try:
        response = client.post(API, json=rule_json(fieldName="sex", dicomTag="PatientSex"), headers=ADMIN)
        check_unavailable(response)
        _faults_injected["sqlite"] += 1
    finally:
        other.execute("rollback")
        other.close()

    assert snapshot(client) == before
    response = client.post(API, json=rule_json(fieldName="sex", dicomTag="PatientSex"), headers=ADMIN)
    assert response.status_code == 201
    record_figures()


# -- host signal receivers that raise ---------------------------------------------------


@pytest.fixture
def mapped_app(tmp_path):
    app = create_test_app(tmp_path, db_url=f"sqlite:///{tmp_path / 'rules.sqlite3'}")
    client = app.test_client()
    for body in (rule_json(fieldName="weight", dicomTag="PatientWeight"),
                 rule_json(fieldName="thickness", dicomTag="SliceThickness", schemaElement="xnat:mrScanData")):
        assert client.post(API, json=body, headers=ADMIN).status_code == 201
    yield app
    app.extensions["dicom_mappings"].close()


def test_raising_receiver_keeps_session_values(mapped_app):
    ext = mapped_app.extensions["dicom_mappings"]
    received = []

    def failing(sender, **kwargs):
        raise RuntimeError("the host's receiver failed")

    def recording(sender, **kwargs):
        received.append(kwargs["result"])

    signals.session_extracted.connect(failing, mapped_app)
    signals.session_extracted.connect(recording, mapped_app)
    try:
        result = ext.extract_session(project=None, session_type="xnat:mrSessionData",
                                     scans=[ScanInput("4", "xnat:mrScanData", [installed_file("MR_small.dcm")])],
                                     session_id="S1")
    finally:
        signals.session_extracted.disconnect(failing, mapped_app)
        signals.session_extracted.disconnect(recording, mapped_app)

    assert result.fields == {"weight": "80.0"}
    assert result.parameters == {"4": {"thickness": "0.8"}}
    assert received == [result]


def test_raising_rules_changed_receiver_keeps_write(mapped_app):
    client = mapped_app.test_client()
    ext = mapped_app.extensions["dicom_mappings"]
    scans = [ScanInput("4", "xnat:mrScanData", [installed_file("MR_small.dcm")])]
    assert "patient" not in ext.extract_session(project=None, session_type="xnat:mrSessionData", scans=scans).fields

    def failing(sender, **kwargs):
        raise RuntimeError("the host's receiver failed")

    signals.rules_changed.connect(failing, mapped_app)
    try:
        response = client.post(API, json=rule_json(fieldName="patient", fieldType="string", dicomTag="PatientName"),
                               headers=ADMIN)
    finally:
        signals.rules_changed.disconnect(failing, mapped_app)

    assert response.status_code == 201
    # The rule cache was cleared even though the receiver raised.
    result = ext.extract_session(project=None, session_type="xnat:mrSessionData", scans=scans)
    assert result.fields["patient"] == "CompressedSamples^MR1"


def test_raising_receiver_in_host_import(tmp_path):
    import io
    import zipfile

    from examples.xnat_host import create_app

    app = create_app(tmp_path / "data", {"TESTING": True, "HOST_DATABASE_URL": f"sqlite:///{tmp_path / 'host.sqlite3'}"})
    client = app.test_client()
    assert client.put("/data/projects/P1", headers=ADMIN).status_code == 201
    assert client.post(API, json=rule_json(fieldName="weight", dicomTag="PatientWeight"), headers=ADMIN).status_code == 201

    def failing(sender, **kwargs):
        raise RuntimeError("the host's receiver failed")

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.write(installed_file("MR_small.dcm"), "MR_small.dcm")

    signals.session_extracted.connect(failing, app)
    try:
        response = client.post("/data/services/import?PROJECT_ID=P1", data=buffer.getvalue(),
                               headers={**ADMIN, "Content-Type": "application/zip"})
    finally:
        signals.session_extracted.disconnect(failing, app)

    assert response.status_code == 200, response.get_json()
    session_id = response.get_json()["sessions"][0]["id"]
    experiment = client.get(f"/data/experiments/{session_id}?format=json", headers=ADMIN).get_json()
    assert experiment["fields"] == {"weight": "80.0"}
    app.extensions["xnat_host"].engine.dispose()
