"""Who may call the API: an authorisation matrix over every route, CSRF and the admin test."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from xnat_dicom_mappings.host import DefaultHost
from xnat_dicom_mappings.security import admin_required

from apps import ADMIN, API, USER, USERS, User, create_test_app, login, rule_json


def plugin_routes() -> list[tuple[str, str]]:
    """Return (method, rule) for every route of the API blueprint, read from the app's url_map."""
    import tempfile

    app = create_test_app(tempfile.mkdtemp(prefix="xdm-routes-"))
    routes = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("dicom_mappings."):
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            routes.append((method, rule.rule))
    return sorted(set(routes))


ROUTES = plugin_routes()
ROUTE_IDS = [f"{method} {rule}" for method, rule in ROUTES]


@pytest.fixture
def app(tmp_path, db_url):
    app = create_test_app(tmp_path, db_url=db_url)
    yield app
    app.extensions["dicom_mappings"].close()


def request_route(client, method: str, rule: str, headers: dict, rule_id: int = 1):
    url = re.sub(r"<int[^>]*:rule_id>", str(rule_id), rule)
    body = None
    if method in ("POST", "PUT"):
        body = [rule_json(fieldName="other", dicomTag="PatientID")] if url.endswith("/import") else rule_json(fieldName="other", dicomTag="PatientID")
    query = {"project": "ProjectA"} if url.endswith("/effective") else None
    return client.open(url, method=method, json=body, query_string=query, headers=headers)


def test_matrix_covers_every_route():
    rules = {rule for _, rule in ROUTES}

    assert f"{API}" in rules
    assert f"{API}/update" in rules
    assert any(rule.startswith(f"{API}/<int") for rule in rules)
    assert f"{API}/openapi.json" in rules
    assert len(ROUTES) >= 14


@pytest.mark.parametrize("method, rule", ROUTES, ids=ROUTE_IDS)
def test_anonymous_gets_401_json(tmp_path, method, rule):
    client = create_test_app(tmp_path).test_client()

    response = request_route(client, method, rule, {})

    assert response.status_code == 401
    assert response.is_json
    assert response.get_json()["status"] == 401
    assert "Location" not in response.headers


@pytest.mark.parametrize("method, rule", ROUTES, ids=ROUTE_IDS)
def test_user_gets_403_json(tmp_path, method, rule):
    client = create_test_app(tmp_path).test_client()

    response = request_route(client, method, rule, USER)

    assert response.status_code == 403
    assert response.get_json()["status"] == 403


@pytest.mark.parametrize("method, rule", ROUTES, ids=ROUTE_IDS)
def test_admin_is_admitted(app, method, rule):
    client = app.test_client()
    created = client.post(API, json=rule_json(), headers=ADMIN).get_json()

    response = request_route(client, method, rule, ADMIN, rule_id=created["id"])

    assert response.status_code not in (401, 403), response.get_json()
    assert response.status_code < 500, response.get_json()


def test_wrong_password_is_401(tmp_path):
    from apps import basic_auth

    client = create_test_app(tmp_path).test_client()

    response = client.get(API, headers=basic_auth("admin", "wrong"))

    assert response.status_code == 401


def test_unknown_route_under_prefix_is_json_404(tmp_path):
    client = create_test_app(tmp_path).test_client()

    response = client.get(API + "/no/such/route", headers=ADMIN)

    assert response.status_code == 404
    assert response.get_json()["status"] == 404


def test_wrong_method_is_json_405(tmp_path):
    client = create_test_app(tmp_path).test_client()

    response = client.patch(API + "/update", headers=ADMIN)

    assert response.status_code == 405
    assert "PUT" in response.headers["Allow"]
    assert response.get_json()["status"] == 405


def test_host_routes_keep_their_errors(tmp_path):
    client = create_test_app(tmp_path).test_client()

    response = client.get("/elsewhere")

    assert response.status_code == 404
    assert not response.is_json


def test_auth_challenge_setting(tmp_path):
    client = create_test_app(tmp_path, DICOM_MAPPINGS_AUTH_CHALLENGE='Basic realm="XNAT"').test_client()

    response = client.get(API)

    assert response.headers["WWW-Authenticate"] == 'Basic realm="XNAT"'


# -- CSRF on cookie sessions -----------------------------------------------------


def test_cookie_write_without_token_is_403(app):
    client = app.test_client()
    login(client, "admin")

    response = client.post(API, json=rule_json())

    assert response.status_code == 403
    assert "X-CSRFToken" in response.get_json()["message"]
    assert client.get(API).get_json() == []


def test_cookie_write_with_wrong_token_is_403(app):
    client = app.test_client()
    login(client, "admin")

    response = client.post(API, json=rule_json(), headers={"X-CSRFToken": "forged"})

    assert response.status_code == 403


def test_cookie_write_with_token(app):
    client = app.test_client()
    token = login(client, "admin")

    response = client.post(API, json=rule_json(), headers={"X-CSRFToken": token})

    assert response.status_code == 201


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
def test_cookie_xnat_routes_need_token(app, method):
    client = app.test_client()
    login(client, "admin")
    path = API + "/update" if method == "PUT" else API + "/1"

    response = client.open(path, method=method, json=rule_json())

    assert response.status_code == 403


def test_cookie_read_needs_no_token(app):
    client = app.test_client()
    login(client, "admin")

    assert client.get(API).status_code == 200


def test_basic_write_needs_no_token(app):
    response = app.test_client().post(API, json=rule_json(), headers=ADMIN)

    assert response.status_code == 201


def test_cookie_user_is_403(app):
    client = app.test_client()
    login(client, "user")

    assert client.get(API).status_code == 403


def test_cookie_with_junk_authorization_needs_token(app):
    client = app.test_client()
    login(client, "admin")

    response = client.post(API, json=rule_json(), headers={"Authorization": "Bearer not-a-token"})

    assert response.status_code == 403
    assert client.get(API).get_json() == []


def test_cookie_with_valid_basic_needs_token(app):
    # flask-login takes the user from the session and never calls the
    # request_loader, so the cookie authenticated this request, not the header.
    client = app.test_client()
    login(client, "admin")

    response = client.post(API, json=rule_json(), headers=ADMIN)

    assert response.status_code == 403
    assert client.get(API).get_json() == []


def test_cookie_with_valid_basic_and_token(app):
    client = app.test_client()
    token = login(client, "admin")

    response = client.post(API, json=rule_json(), headers={**ADMIN, "X-CSRFToken": token})

    assert response.status_code == 201


def test_stale_session_with_basic_needs_no_token(app):
    # The session names a user that no longer exists, so flask-login falls
    # back to the request_loader, which authenticates the Authorization header.
    USERS["gone"] = User("gone", "gone", True)
    client = app.test_client()
    try:
        login(client, "gone")
    finally:
        del USERS["gone"]

    response = client.post(API, json=rule_json(), headers=ADMIN)

    assert response.status_code == 201


def test_request_loader_by_cookie_needs_token(app):
    # A request_loader that reads a cookie is as exposed to cross-site forms as
    # the session cookie, so only requests with an Authorization header are exempt.
    app.login_manager.request_loader(lambda req: USERS["admin"] if req.cookies.get("api_key") == "secret" else None)
    client = app.test_client()
    client.set_cookie("api_key", "secret")

    assert client.get(API).status_code == 200
    assert client.post(API, json=rule_json()).status_code == 403


def test_admin_required_view_keeps_csrf(app):
    @app.post("/host-action")
    @admin_required
    def host_action():
        return {"done": True}

    client = app.test_client()
    token = login(client, "admin")

    without = client.post("/host-action", headers={"Authorization": "Bearer not-a-token"})
    with_token = client.post("/host-action", headers={"X-CSRFToken": token})
    basic_only = app.test_client().post("/host-action", headers=ADMIN)

    assert without.status_code == 403
    assert with_token.status_code == 200
    assert basic_only.status_code == 200


def test_csrf_can_be_disabled(tmp_path):
    app = create_test_app(tmp_path, DICOM_MAPPINGS_CSRF_ENABLED=False)
    client = app.test_client()
    login(client, "admin")

    assert client.post(API, json=rule_json()).status_code == 201


# -- DefaultHost.is_admin --------------------------------------------------------


@pytest.mark.parametrize("user, expected", [
    (SimpleNamespace(is_authenticated=True, is_admin=True), True),
    (SimpleNamespace(is_authenticated=True, is_admin=False), False),
    (SimpleNamespace(is_authenticated=True, roles=["Administrator"]), True),
    (SimpleNamespace(is_authenticated=True, roles=[SimpleNamespace(name="Administrator")]), True),
    (SimpleNamespace(is_authenticated=True, roles=["administrator"]), False),
    (SimpleNamespace(is_authenticated=False, is_admin=True), False),
    (None, False),
])
def test_default_host_is_admin(user, expected):
    assert DefaultHost().is_admin(user) is expected
