"""The API through a real HTTP server (werkzeug on 127.0.0.1), with urllib and http.client."""

from __future__ import annotations

import http.client
import json
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from werkzeug.serving import make_server

from apps import ADMIN, API, create_test_app, rule_json


class Server:
    """A threaded werkzeug server for one app on a free port of 127.0.0.1."""

    def __init__(self, app):
        self.app = app
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.thread.join()
        self.app.extensions["dicom_mappings"].close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def request(self, method: str, path: str, body=None, headers=None) -> tuple[int, dict, object]:
        """Send a request with urllib; return status, headers and the decoded JSON body."""
        data = None
        all_headers = dict(headers if headers is not None else ADMIN)
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            all_headers.setdefault("Content-Type", "application/json")
        request = urllib.request.Request(self.url(path), data=data, method=method, headers=all_headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, dict(response.headers), json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), json.loads(error.read() or b"null")


@pytest.fixture
def server(tmp_path, db_url):
    with Server(create_test_app(tmp_path, db_url=db_url)) as running:
        yield running


def test_xnat_trio(server):
    status, _, created = server.request("PUT", API + "/update", rule_json())
    assert status == 200
    assert created["id"] > 0

    status, _, listed = server.request("GET", API)
    assert status == 200
    assert [rule["id"] for rule in listed] == [created["id"]]

    status, _, updated = server.request("PUT", API + "/update/", {**created, "fieldType": "string"})
    assert status == 200
    assert updated["fieldType"] == "string"

    status, _, _ = server.request("DELETE", f"{API}/{created['id']}")
    assert status == 200

    status, _, listed = server.request("GET", API)
    assert listed == []


def test_anonymous_is_401_json(server):
    status, headers, body = server.request("GET", API, headers={})

    assert status == 401
    assert headers["Content-Type"] == "application/json"
    assert body["status"] == 401


def test_post_location_header(server):
    status, headers, body = server.request("POST", API, rule_json())

    assert status == 201
    assert headers["Location"] == f"{API}/{body['id']}"


def test_conditional_put(server):
    _, headers, created = server.request("POST", API, rule_json())
    etag = headers["ETag"]

    first, _, _ = server.request("PUT", f"{API}/{created['id']}", rule_json(fieldType="string"), {**ADMIN, "If-Match": etag})
    second, _, body = server.request("PUT", f"{API}/{created['id']}", rule_json(fieldType="integer"), {**ADMIN, "If-Match": etag})

    assert first == 200
    assert second == 412
    assert body["status"] == 412


def test_oversized_body_is_413(server):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    body = json.dumps(rule_json(padding="x" * 200_000)).encode()

    connection.request("PUT", API + "/update", body=body, headers={**ADMIN, "Content-Type": "application/json"})
    response = connection.getresponse()

    assert response.status == 413
    assert json.loads(response.read())["status"] == 413
    connection.close()


def test_wrong_content_type_is_415(server):
    status, _, body = server.request("PUT", API + "/update", b"scope=Site", {**ADMIN, "Content-Type": "text/plain"})

    assert status == 415
    assert body["status"] == 415


@pytest.mark.postgres
def test_concurrent_creates_store_one(tmp_path, pg_url):
    # Many clients create the same rule at once: the unique constraint lets one
    # through, every other gets 409 and none gets a server error.
    with Server(create_test_app(tmp_path, db_url=pg_url, DICOM_MAPPINGS_ENGINE_OPTIONS={"pool_size": 20})) as server:
        server.request("GET", API)  # migrate before the race starts
        barrier = threading.Barrier(24)

        def create(_):
            barrier.wait()
            return server.request("PUT", API + "/update", rule_json())

        with ThreadPoolExecutor(max_workers=24) as pool:
            results = list(pool.map(create, range(24)))

        statuses = sorted(status for status, _, _ in results)
        stored = server.request("GET", API)[2]

    assert statuses.count(200) == 1
    assert statuses.count(409) == 23
    assert len(stored) == 1
    existing = {body["existingId"] for status, _, body in results if status == 409}
    assert existing == {stored[0]["id"]}
