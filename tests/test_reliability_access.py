"""Access beyond the basic API matrix: every route the extension adds, cookie sessions, CSRF, leaks, limits.

test_access.py checks the API blueprint's routes with HTTP Basic. Here every
endpoint of the app that the test host did not register is in the matrix. So a
route that any blueprint of the extension adds (the admin page included) is
covered, and a route of an unknown kind fails the test.
"""

from __future__ import annotations

import io
import json
import os
import re
import tempfile
import threading

import pytest
from werkzeug.serving import make_server

from xnat_dicom_mappings import config

from apps import ADMIN, API, USER, basic_auth, create_test_app, login, rule_json

#: Endpoints that create_test_app registers itself; every other endpoint belongs to the extension.
HOST_ENDPOINTS = {"static", "login", "logout_view", "csrf_token_view"}

ADMIN_PAGE = config.DICOM_MAPPINGS_ADMIN_URL

#: Text that would mean a response shows the server's internals.
LEAK_PATTERNS = [
    re.compile(r"Traceback \(most recent call last\)"),
    re.compile(r'File "[^"]+\.py", line \d+'),
    re.compile(r"sqlalchemy\.|psycopg|sqlite3\.", re.IGNORECASE),
    re.compile(r"/site-packages/|/xnat_dicom_mappings/"),
]


def extension_routes() -> list[tuple[str, str, str]]:
    """Return (endpoint, method, rule) for every route that is not the test host's own."""
    app = create_test_app(tempfile.mkdtemp(prefix="xdm-access-routes-"))
    routes = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint in HOST_ENDPOINTS:
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            routes.append((rule.endpoint, method, rule.rule))
    return sorted(set(routes))


ROUTES = extension_routes()
ROUTE_IDS = [f"{method} {rule}" for _, method, rule in ROUTES]


def kind_of(endpoint: str, rule: str) -> str:
    """Classify a route; "unknown" fails the matrix so that a new kind of route gets its own rules."""
    if endpoint.startswith("dicom_mappings.") and rule.startswith(API):
        return "api"
    if endpoint == "dicom_mappings_admin.static":
        return "asset"
    if endpoint.startswith("dicom_mappings_admin.") and rule.startswith(ADMIN_PAGE):
        return "page"
    return "unknown"


def concrete_url(rule: str) -> str:
    url = rule.replace("<int:rule_id>", "1").replace("<path:filename>", "admin.js")
    assert "<" not in url, f"no sample value for the converter in {rule}"
    return url


def send(client, method: str, rule: str, headers: dict | None = None):
    url = concrete_url(rule)
    body = None
    if method in ("POST", "PUT"):
        body = [rule_json(fieldName="other")] if url.endswith("/import") else rule_json(fieldName="other")
    query = {"project": "ProjectA"} if url.endswith("/effective") else None
    if url.endswith("/tag-info"):
        query = {"tag": "PatientWeight"}
    return client.open(url, method=method, json=body, query_string=query, headers=headers or {})


@pytest.fixture
def app(tmp_path, db_url):
    app = create_test_app(tmp_path, db_url=db_url)
    client = app.test_client()
    assert client.post(API, json=rule_json(), headers=ADMIN).status_code == 201
    yield app
    app.extensions["dicom_mappings"].close()


# -- the matrix ------------------------------------------------------------------------


def test_every_extension_route_is_classified():
    kinds = {(method, rule): kind_of(endpoint, rule) for endpoint, method, rule in ROUTES}

    assert [route for route, kind in kinds.items() if kind == "unknown"] == []
    assert ("GET", f"{ADMIN_PAGE}/") in kinds
    assert ("POST", f"{API}/import") in kinds
    assert sum(kind == "api" for kind in kinds.values()) >= 14


@pytest.mark.parametrize("endpoint, method, rule", ROUTES, ids=ROUTE_IDS)
def test_anonymous_is_turned_away(app, endpoint, method, rule):
    response = send(app.test_client(), method, rule)
    kind = kind_of(endpoint, rule)

    if kind == "api":
        assert response.status_code == 401
        assert response.get_json()["status"] == 401
    elif kind == "page":
        # The host's login page, as flask-login's unauthorized handler sends it.
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/login")
    else:
        assert kind == "asset"
        assert response.status_code == 200


@pytest.mark.parametrize("endpoint, method, rule", ROUTES, ids=ROUTE_IDS)
@pytest.mark.parametrize("credentials", ["basic", "cookie"])
def test_user_is_forbidden(app, endpoint, method, rule, credentials):
    client = app.test_client()
    headers = dict(USER)
    if credentials == "cookie":
        headers = {"X-CSRFToken": login(client, "user")}

    response = send(client, method, rule, headers)

    if kind_of(endpoint, rule) == "asset":
        assert response.status_code == 200
        return
    assert response.status_code == 403
    if kind_of(endpoint, rule) == "api" or endpoint.endswith("tag_info"):
        assert response.get_json()["status"] == 403


@pytest.mark.parametrize("endpoint, method, rule", ROUTES, ids=ROUTE_IDS)
def test_cookie_administrator_is_admitted(app, endpoint, method, rule):
    client = app.test_client()
    token = login(client, "admin")

    response = send(client, method, rule, {"X-CSRFToken": token})

    assert response.status_code not in (401, 403), response.get_data(as_text=True)
    assert response.status_code < 500


def test_reference_host_mount_is_guarded(tmp_path):
    from examples.xnat_host import create_app

    app = create_app(tmp_path / "data", {"TESTING": True, "HOST_DATABASE_URL": f"sqlite:///{tmp_path / 'host.sqlite3'}"})
    client = app.test_client()
    plugin_rules = [rule for rule in app.url_map.iter_rules() if rule.endpoint.startswith("dicom_mappings")]
    assert len(plugin_rules) >= 14

    for rule in plugin_rules:
        kind = kind_of(rule.endpoint, rule.rule)
        assert kind != "unknown", rule.rule
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            anonymous = send(client, method, rule.rule)
            user = send(client, method, rule.rule, USER)
            if kind == "asset":
                continue
            assert anonymous.status_code in (401, 302), f"{method} {rule.rule}"
            assert user.status_code == 403, f"{method} {rule.rule}"
    app.extensions["xnat_host"].engine.dispose()


# -- CSRF for cookie sessions ----------------------------------------------------------

STATE_CHANGING = [(endpoint, method, rule) for endpoint, method, rule in ROUTES
                  if method in ("POST", "PUT", "DELETE", "PATCH")]


@pytest.mark.parametrize("endpoint, method, rule", STATE_CHANGING,
                         ids=[f"{method} {rule}" for _, method, rule in STATE_CHANGING])
def test_csrf_token_of_another_session_is_rejected(app, endpoint, method, rule):
    victim = app.test_client()
    login(victim, "admin")
    attacker = app.test_client()
    attacker_token = login(attacker, "admin")

    response = send(victim, method, rule, {"X-CSRFToken": attacker_token})

    assert response.status_code == 403
    assert "CSRF" in response.get_json()["message"]


@pytest.mark.parametrize("endpoint, method, rule", STATE_CHANGING,
                         ids=[f"{method} {rule}" for _, method, rule in STATE_CHANGING])
def test_csrf_token_in_form_field_is_not_enough(app, endpoint, method, rule):
    client = app.test_client()
    token = login(client, "admin")
    url = concrete_url(rule)

    # A cross-site HTML form can send a form field but no custom header.
    response = client.open(url, method=method, data={"csrf_token": token, "X-CSRFToken": token})

    assert response.status_code == 403


def test_stored_state_unchanged_after_rejected_csrf(app):
    client = app.test_client()
    login(client, "admin")
    before = client.get(f"{API}/export", headers=ADMIN).get_json()["rules"]

    for _, method, rule in STATE_CHANGING:
        assert send(client, method, rule).status_code == 403

    assert client.get(f"{API}/export", headers=ADMIN).get_json()["rules"] == before


def test_unauthenticating_authorization_header_keeps_csrf(app):
    client = app.test_client()
    login(client, "admin")

    response = client.post(API, json=rule_json(fieldName="forged", dicomTag="PatientSex"),
                           headers={"Authorization": "Bearer not-a-token"})

    assert response.status_code in (401, 403)


# -- no stack traces -------------------------------------------------------------------


HOSTILE_REQUESTS = [
    ("POST", API, {"data": b"{", "content_type": "application/json"}),
    ("POST", API, {"data": b"\xff\xfe\x00garbage", "content_type": "application/json"}),
    ("POST", API, {"data": json.dumps({"scope": ["Site"]}), "content_type": "application/json"}),
    ("POST", API, {"data": json.dumps(rule_json(id=2**70)), "content_type": "application/json"}),
    ("POST", API, {"data": json.dumps(rule_json(dicomTag="(0019," + "\"A\"" * 5000 + ",0C)")), "content_type": "application/json"}),
    ("POST", API, {"data": b"<xml/>", "content_type": "application/xml"}),
    ("PUT", f"{API}/update", {"data": json.dumps([1, 2, 3]), "content_type": "application/json"}),
    ("POST", f"{API}/import", {"data": json.dumps({"rules": "all"}), "content_type": "application/json"}),
    ("POST", f"{API}/import?mode=%00", {"data": b"[]", "content_type": "application/json"}),
    ("GET", f"{API}?page=-1&pageSize=abc", {}),
    ("GET", f"{API}/effective?project=%00%ff", {}),
    ("GET", f"{API}?dicomTag=(zzzz,zzzz)", {}),
    ("GET", f"{ADMIN_PAGE}/tag-info?tag=" + "%28" * 3000, {}),
    ("GET", f"{API}/no-such-route", {}),
    ("PATCH", f"{API}/1", {}),
    ("DELETE", f"{API}/1?unknown=1", {}),
]


@pytest.mark.parametrize("method, url, options", HOSTILE_REQUESTS,
                         ids=[f"{method} {url[:50]}" for method, url, _ in HOSTILE_REQUESTS])
def test_hostile_request_leaks_nothing(tmp_path, method, url, options):
    app = create_test_app(tmp_path, TESTING=False)
    client = app.test_client()

    response = client.open(url, method=method, headers=ADMIN, **options)
    text = response.get_data(as_text=True)

    assert response.status_code < 500, text
    for pattern in LEAK_PATTERNS:
        assert not pattern.search(text), f"{pattern.pattern} in {text[:300]}"
    app.extensions["dicom_mappings"].close()


class FailingHost:
    """A host whose project lookup raises, so the API's catch-all error handler responds."""

    def __getattr__(self, name):
        from xnat_dicom_mappings.host import DefaultHost

        return getattr(DefaultHost(), name)

    def canonical_project(self, project_id):
        raise RuntimeError("secret detail /srv/app/host.py line 12 password=hunter2")


def test_unexpected_error_leaks_nothing(tmp_path):
    app = create_test_app(tmp_path, host=FailingHost(), TESTING=False)
    client = app.test_client()

    response = client.get(f"{API}/effective", query_string={"project": "P"}, headers=ADMIN)
    text = response.get_data(as_text=True)

    assert response.status_code == 500
    assert response.get_json()["message"] == "Internal server error; the server log has the details."
    assert "hunter2" not in text
    assert "RuntimeError" not in text
    app.extensions["dicom_mappings"].close()


def test_deeply_nested_json_is_400(tmp_path):
    app = create_test_app(tmp_path, TESTING=False)
    client = app.test_client()

    response = client.post(API, data="[" * 50_000, content_type="application/json", headers=ADMIN)

    assert response.status_code == 400
    assert response.get_json()["status"] == 400
    app.extensions["dicom_mappings"].close()


# -- the admin page escapes stored values -------------------------------------------------

HOSTILE_PROJECT = '"><img src=x onerror="window.__xss=1">'
HOSTILE_USER = "<script>window.__xss=2</script>"


def test_admin_page_escapes_host_values(tmp_path):
    from apps import USERS, User

    USERS[HOSTILE_USER] = User(HOSTILE_USER, "pw", True)
    try:
        app = create_test_app(tmp_path, projects=[HOSTILE_PROJECT, "ProjectA"])
        client = app.test_client()
        response = client.get(f"{ADMIN_PAGE}/", headers=basic_auth(HOSTILE_USER, "pw"))
    finally:
        del USERS[HOSTILE_USER]
    text = response.get_data(as_text=True)

    assert response.status_code == 200
    assert HOSTILE_PROJECT not in text
    assert HOSTILE_USER not in text
    assert "&lt;script&gt;window.__xss=2&lt;/script&gt;" in text
    assert "onerror=&#34;window.__xss=1&#34;" in text or "onerror=&quot;window.__xss=1&quot;" in text


@pytest.mark.browser
def test_admin_page_shows_stored_values_as_text(tmp_path):
    chromium = "/usr/bin/chromium"
    if not os.path.exists(chromium):
        if os.environ.get("CI"):
            pytest.fail(f"{chromium} is missing; CI must run the browser tests")
        pytest.skip(f"{chromium} is missing; install Debian's chromium package")
    from playwright.sync_api import sync_playwright

    # With projects=None every project ID is accepted, so the stored rule carries the markup.
    app = create_test_app(tmp_path, projects=None)
    client = app.test_client()
    created = client.post(API, json=rule_json(scope="Project", scopeObjectId=HOSTILE_PROJECT), headers=ADMIN)
    assert created.status_code == 201, created.get_json()

    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
            context = browser.new_context()
            base = f"http://127.0.0.1:{http.server_port}"
            signed_in = context.request.post(f"{base}/login", form={"username": "admin", "password": "admin"})
            assert signed_in.ok
            page = context.new_page()
            page.goto(f"{base}{ADMIN_PAGE}/")
            page.wait_for_selector("#rules-body tr")
            cells = page.locator("#rules-body").inner_text()
            injected = page.evaluate("window.__xss === undefined")
            images = page.locator("#rules-body img").count()
            browser.close()
    finally:
        http.shutdown()
        thread.join(timeout=30)
        app.extensions["dicom_mappings"].close()

    assert HOSTILE_PROJECT in cells
    assert injected
    assert images == 0


# -- limits ------------------------------------------------------------------------------


def test_body_limit_is_413_json(app):
    limit = config.DICOM_MAPPINGS_MAX_BODY_BYTES
    body = json.dumps(rule_json(fieldName="padded")) + " " * limit

    response = app.test_client().post(API, data=body, content_type="application/json", headers=ADMIN)

    assert response.status_code == 413
    assert f"at most {limit}" in response.get_json()["message"]


def test_chunked_body_over_limit_is_413(app):
    limit = config.DICOM_MAPPINGS_MAX_BODY_BYTES
    body = b"[" + b" " * (limit + 4096) + b"]"

    # No Content-Length: the server learns the size only while reading.
    response = app.test_client().post(API, input_stream=io.BytesIO(body), content_type="application/json",
                                      headers={**ADMIN, "Transfer-Encoding": "chunked"},
                                      environ_overrides={"wsgi.input_terminated": True})

    assert response.status_code == 413


def test_import_limit_is_413_json(app):
    limit = config.DICOM_MAPPINGS_MAX_IMPORT_BYTES
    body = b"[" + b" " * limit + b"]"

    response = app.test_client().post(f"{API}/import", data=body, content_type="application/json", headers=ADMIN)

    assert response.status_code == 413
    assert f"at most {limit}" in response.get_json()["message"]


def test_page_size_limit_is_400(app):
    limit = config.DICOM_MAPPINGS_MAX_PAGE_SIZE

    response = app.test_client().get(API, query_string={"pageSize": limit + 1}, headers=ADMIN)

    assert response.status_code == 400
    assert f"at most {limit}" in response.get_json()["message"]


def test_rules_per_import_limit(app):
    keys = [key for key in config.defaults() if "IMPORT" in key and "RULES" in key]
    assert keys, "no DICOM_MAPPINGS_*IMPORT*RULES* setting"
    limit = config.defaults()[keys[0]]
    bundle = [rule_json(fieldName=f"f{index}", dicomTag=f"0x0011{index:04X}") for index in range(limit + 1)]

    response = app.test_client().post(f"{API}/import", json=bundle, headers=ADMIN)

    assert response.status_code in (400, 413)
    assert str(limit) in response.get_json()["message"]



def preview_files(count: int, size: int) -> dict:
    return {"files": [(io.BytesIO(bytes([index % 251]) * size), f"f{index}.dcm") for index in range(count)]}


def test_preview_file_count_limit(tmp_path):
    app = create_test_app(tmp_path, DICOM_MAPPINGS_PREVIEW_MAX_FILES=3)

    response = app.test_client().post(f"{API}/preview", data=preview_files(4, 200), headers=ADMIN,
                                      content_type="multipart/form-data")

    assert response.status_code == 413
    assert "more than 3 files" in response.get_json()["message"]
    app.extensions["dicom_mappings"].close()


def test_preview_byte_limit(tmp_path):
    app = create_test_app(tmp_path, DICOM_MAPPINGS_PREVIEW_MAX_BYTES=10_000)

    response = app.test_client().post(f"{API}/preview", data=preview_files(3, 4000), headers=ADMIN,
                                      content_type="multipart/form-data")

    assert response.status_code == 413
    assert "10000 bytes" in response.get_json()["message"]
    app.extensions["dicom_mappings"].close()


def test_preview_body_limit(tmp_path):
    app = create_test_app(tmp_path, DICOM_MAPPINGS_PREVIEW_MAX_BYTES=10_000)

    # The body limit is the byte limit plus 1 MiB for the multipart framing and form fields.
    response = app.test_client().post(f"{API}/preview", data=preview_files(1, 2 * 1024 * 1024), headers=ADMIN,
                                      content_type="multipart/form-data")

    assert response.status_code == 413
    assert response.get_json()["status"] == 413
    app.extensions["dicom_mappings"].close()
