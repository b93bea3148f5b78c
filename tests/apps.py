"""A minimal host app for the tests: flask-login users, HTTP Basic and a session-cookie login.

Users: ``admin`` (password ``admin``, an administrator) and ``user``
(password ``user``, not one). ``create_test_app`` registers the extension;
the other helpers log in and build request headers.
"""

from __future__ import annotations

import base64
from pathlib import Path

from flask import Flask, abort, jsonify, request
from flask_login import LoginManager, UserMixin, login_user, logout_user

from xnat_dicom_mappings.extension import DicomMappings
from xnat_dicom_mappings.host import DefaultHost
from xnat_dicom_mappings.security import csrf_token

API = "/xapi/dicom_mappings"

#: Projects of the test host when a test does not choose its own.
DEFAULT_PROJECTS = ["ProjectA", "ProjectB"]

_DEFAULT = object()


class User(UserMixin):
    def __init__(self, name: str, password: str, is_admin: bool):
        self.id = name
        self.username = name
        self.password = password
        self.is_admin = is_admin


USERS = {
    "admin": User("admin", "admin", True),
    "user": User("user", "user", False),
}


class TestHost(DefaultHost):
    """A host with a fixed list of projects (``None``: every project exists).

    ``aliases`` maps other names to canonical project IDs; ``custom_variables``
    is a set of ``(project or None, session_type, field_name)`` and, when
    given, makes ``has_custom_variable`` return True or False.
    """

    __test__ = False  # a helper, not a test class

    def __init__(self, projects=None, aliases=None, custom_variables=None):
        self.projects = projects
        self.aliases = aliases or {}
        self.custom_variables = custom_variables

    def canonical_project(self, project_id):
        project_id = self.aliases.get(project_id, project_id)
        if self.projects is None:
            return super().canonical_project(project_id)
        return project_id if project_id in self.projects else None

    def list_projects(self):
        return None if self.projects is None else list(self.projects)

    def has_custom_variable(self, project, session_type, field_name):
        if self.custom_variables is None:
            return None
        return (project, session_type, field_name) in self.custom_variables or (
            None, session_type, field_name
        ) in self.custom_variables


def _user_from_basic(header: str | None):
    if not header or not header.startswith("Basic "):
        return None
    try:
        name, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except ValueError:
        return None
    user = USERS.get(name)
    if user is None or user.password != password:
        return None
    return user


def create_test_app(instance_path: Path | str, *, db_url: str | None = None, projects=_DEFAULT,
                    host=None, engine=None, **config) -> Flask:
    """Return a host app with the extension registered.

    ``instance_path`` contains the default SQLite file when ``db_url`` and
    ``engine`` are not given. ``projects`` is the test host's project list
    (default ProjectA and ProjectB; ``None`` accepts every project); ``host``
    replaces the test host. ``config`` keys go into ``app.config``.
    """
    app = Flask("xdm_test_host", instance_path=str(instance_path))
    app.config.update(SECRET_KEY="test-secret", TESTING=True)
    app.config.update(config)

    login_manager = LoginManager(app)
    login_manager.login_view = "login"

    @login_manager.user_loader
    def load_user(user_id):
        return USERS.get(user_id)

    @login_manager.request_loader
    def load_user_from_request(req):
        return _user_from_basic(req.headers.get("Authorization"))

    @app.post("/login", endpoint="login")
    @app.get("/login", endpoint="login")
    def login_view():
        if request.method == "GET":
            return "<form method=post><input name=username><input name=password type=password></form>"
        user = USERS.get(request.form.get("username", ""))
        if user is None or user.password != request.form.get("password"):
            abort(401)
        login_user(user)
        return jsonify({"user": user.username})

    @app.post("/logout")
    def logout_view():
        logout_user()
        return jsonify({})

    @app.get("/csrf-token")
    def csrf_token_view():
        return jsonify({"csrfToken": csrf_token()})

    if host is None:
        host = TestHost(DEFAULT_PROJECTS if projects is _DEFAULT else projects)
    DicomMappings(app, host=host, engine=engine, database_url=db_url)
    return app


def login(client, name: str) -> str:
    """Log ``client`` in with a session cookie as ``name`` (password = name); return the CSRF token."""
    response = client.post("/login", data={"username": name, "password": name})
    assert response.status_code == 200, response.get_data(as_text=True)
    return client.get("/csrf-token").get_json()["csrfToken"]


def basic_auth(name: str, password: str | None = None) -> dict:
    """Return the Authorization header of HTTP Basic for ``name`` (password = name by default)."""
    token = base64.b64encode(f"{name}:{password if password is not None else name}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


ADMIN = basic_auth("admin")
USER = basic_auth("user")


def rule_json(**overrides) -> dict:
    """Return a valid site rule body, with ``overrides`` applied."""
    body = {
        "scope": "Site",
        "fieldName": "weight",
        "fieldType": "float",
        "dicomTag": "0x00101030",
        "schemaElement": "xnat:mrSessionData",
    }
    body.update(overrides)
    return body
