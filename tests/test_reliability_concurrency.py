"""Concurrency on PostgreSQL: 20 threads writing overlapping rules through a real HTTP server.

The app runs in Werkzeug's threaded server on 127.0.0.1; every thread has
its own HTTP session. The rules overlap on purpose: four field names and
four tags for one schema element and scope, so creates collide (409),
updates race (412 on a stale If-Match) and deletes race (404 or 412).

``XDM_STRESS=1`` (``make stress``) raises the operations per thread.
"""

from __future__ import annotations

import os
import random
import threading
from collections import Counter

import pytest
import requests
import sqlalchemy as sa
from werkzeug.serving import make_server

from apps import API, basic_auth, create_test_app, rule_json

pytestmark = pytest.mark.postgres

STRESS = os.environ.get("XDM_STRESS") == "1"

THREADS = 20

#: Write operations per thread; each one costs one or two requests.
OPERATIONS_PER_THREAD = 100 if STRESS else 12

FIELD_NAMES = ["alpha", "beta", "gamma", "delta"]
TAGS = ["PatientWeight", "PatientSize", "PatientAge", "PatientSex"]
CANONICAL_TAGS = {"PatientWeight": "0x00101030", "PatientSize": "0x00101020",
                  "PatientAge": "0x00101010", "PatientSex": "0x00100040"}

#: Statuses each kind of request may get; anything else fails the test.
ALLOWED = {
    "create": {201, 409},
    "read": {200, 404},
    "update": {200, 404, 409, 412},
    "stale": {404, 412},
    "delete": {200, 404, 412},
}

#: Hang guard for one request; generous, never a speed target.
REQUEST_TIMEOUT_SECONDS = 60


@pytest.fixture
def server(tmp_path, pg_url):
    app = create_test_app(tmp_path, db_url=pg_url, DICOM_MAPPINGS_ENGINE_OPTIONS={
        "pool_size": THREADS, "max_overflow": 5})
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    yield app, f"http://127.0.0.1:{http.server_port}{API}"
    http.shutdown()
    thread.join(timeout=REQUEST_TIMEOUT_SECONDS)
    app.extensions["dicom_mappings"].close()


def new_session() -> requests.Session:
    session = requests.Session()
    session.headers.update(basic_auth("admin"))
    return session


def random_rule(generator: random.Random) -> dict:
    return rule_json(fieldName=generator.choice(FIELD_NAMES), dicomTag=generator.choice(TAGS),
                     fieldType=generator.choice(["float", "string"]))


def worker(base: str, seed: int, log: list, errors: list) -> None:
    generator = random.Random(seed)
    session = new_session()

    def call(kind: str, method: str, url: str, **kwargs):
        response = session.request(method, url, timeout=REQUEST_TIMEOUT_SECONDS, **kwargs)
        log.append((kind, method, url, response.status_code, response.headers.get("ETag")))
        return response

    try:
        for _ in range(OPERATIONS_PER_THREAD):
            choice = generator.random()
            if choice < 0.35:
                call("create", "POST", base, json=random_rule(generator))
                continue

            listing = call("read", "GET", base)
            rules = listing.json() if listing.status_code == 200 else []
            if not rules:
                continue
            target = generator.choice(rules)
            url = f"{base}/{target['id']}"
            etag = f'"{target["id"]}-{target["version"]}"'

            if choice < 0.70:
                call("update", "PUT", url, json=random_rule(generator), headers={"If-Match": etag})
            elif choice < 0.85:
                stale = f'"{target["id"]}-{target["version"] + 1000}"'
                call("stale", "PUT", url, json=random_rule(generator), headers={"If-Match": stale})
            else:
                call("delete", "DELETE", url, headers={"If-Match": etag})
    except Exception as exc:  # surfaced by the main thread's assertion
        errors.append(f"thread {seed}: {type(exc).__name__}: {exc}")


def test_overlapping_writes_from_20_threads(server):
    app, base = server
    log: list = []
    errors: list = []
    threads = [threading.Thread(target=worker, args=(base, seed, log, errors)) for seed in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=REQUEST_TIMEOUT_SECONDS * OPERATIONS_PER_THREAD * 2)

    assert errors == []
    assert not any(thread.is_alive() for thread in threads)
    assert len(log) <= THREADS * OPERATIONS_PER_THREAD * 2

    server_errors = [entry for entry in log if entry[3] >= 500]
    assert server_errors == []
    unexpected = [entry for entry in log if entry[3] not in ALLOWED[entry[0]]]
    assert unexpected == []
    statuses = Counter((entry[0], entry[3]) for entry in log)
    assert statuses[("create", 201)] >= 1
    assert statuses[("stale", 412)] >= 1

    session = new_session()
    rules = session.get(base, timeout=REQUEST_TIMEOUT_SECONDS).json()
    history = session.get(f"{base}/history", params={"pageSize": 1000}, timeout=REQUEST_TIMEOUT_SECONDS).json()

    # No duplicate on either unique key.
    field_keys = Counter((r["schemaElement"], r["scope"], r["scopeObjectId"], r["fieldName"]) for r in rules)
    tag_keys = Counter((r["schemaElement"], r["scope"], r["scopeObjectId"], r["dicomTag"]) for r in rules)
    assert max(field_keys.values(), default=1) == 1
    assert max(tag_keys.values(), default=1) == 1

    # The history contains exactly one entry per successful write.
    successes = Counter()
    for kind, method, _url, status, _etag in log:
        if (method, status) in (("POST", 201), ("PUT", 200), ("DELETE", 200)):
            successes[{"POST": "create", "PUT": "update", "DELETE": "delete"}[method]] += 1
    assert Counter(entry["action"] for entry in history) == successes

    # Replaying the history gives the stored rules, version by version.
    replayed: dict[int, dict | None] = {}
    for entry in sorted(history, key=lambda item: item["id"]):
        previous = replayed.get(entry["ruleId"])
        if entry["action"] == "create":
            assert previous is None
        else:
            assert previous == entry["before"], f"history of rule {entry['ruleId']} has a gap"
        replayed[entry["ruleId"]] = entry["after"]
    alive = {rule_id: rule for rule_id, rule in replayed.items() if rule is not None}
    assert alive == {rule["id"]: rule for rule in rules}

    with app.extensions["dicom_mappings"].engine.connect() as connection:
        stored = connection.execute(sa.text("select count(*) from xdm_rule")).scalar()
    assert stored == len(rules)
    print(f"\n{len(log)} requests from {THREADS} threads: {dict(sorted(statuses.items()))}")


def test_same_rule_created_by_20_threads_at_once(server):
    _app, base = server
    barrier = threading.Barrier(THREADS)
    statuses: list[int] = []
    errors: list[str] = []

    def create():
        session = new_session()
        try:
            barrier.wait(timeout=REQUEST_TIMEOUT_SECONDS)
            response = session.post(base, json=rule_json(fieldName="weight", dicomTag="PatientWeight"),
                                    timeout=REQUEST_TIMEOUT_SECONDS)
            statuses.append(response.status_code)
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=create) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=REQUEST_TIMEOUT_SECONDS * 2)

    assert errors == []
    assert sorted(statuses) == [201] + [409] * (THREADS - 1)
    rules = new_session().get(base, timeout=REQUEST_TIMEOUT_SECONDS).json()
    assert [(rule["fieldName"], rule["dicomTag"]) for rule in rules] == [("weight", CANONICAL_TAGS["PatientWeight"])]


def test_conditional_updates_of_one_rule_race(server):
    _app, base = server
    session = new_session()
    created = session.post(base, json=rule_json(), timeout=REQUEST_TIMEOUT_SECONDS)
    assert created.status_code == 201
    rule_id, etag = created.json()["id"], created.headers["ETag"]
    barrier = threading.Barrier(THREADS)
    statuses: list[int] = []

    def update(index: int):
        client = new_session()
        barrier.wait(timeout=REQUEST_TIMEOUT_SECONDS)
        response = client.put(f"{base}/{rule_id}", json=rule_json(fieldType=["float", "string"][index % 2]),
                              headers={"If-Match": etag}, timeout=REQUEST_TIMEOUT_SECONDS)
        statuses.append(response.status_code)

    threads = [threading.Thread(target=update, args=(index,)) for index in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=REQUEST_TIMEOUT_SECONDS * 2)

    # Every writer read version 1, so exactly one write wins and the others are stale.
    assert sorted(statuses) == [200] + [412] * (THREADS - 1)
    current = session.get(f"{base}/{rule_id}", timeout=REQUEST_TIMEOUT_SECONDS).json()
    assert current["version"] == 2
    history = session.get(f"{base}/{rule_id}/history", timeout=REQUEST_TIMEOUT_SECONDS).json()
    assert [entry["action"] for entry in history] == ["update", "create"]
