"""The admin page blueprint through Flask's test client."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from flask import Flask, redirect, render_template_string, request
from flask_login import LoginManager, UserMixin, login_user

import xnat_dicom_mappings
from xnat_dicom_mappings import catalogue
from xnat_dicom_mappings.extension import DicomMappings
from xnat_dicom_mappings.host import DefaultHost

PACKAGE_DIR = Path(xnat_dicom_mappings.__file__).parent
ADMIN_URL = "/admin/dicom-mappings"
DEFAULT_PROJECTS = ("ProjectA", "ProjectB")

LOGIN_FORM = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Log in</title></head>
<body><main><h1>Log in</h1>
{% if failed %}<p role="alert">Wrong username or password.</p>{% endif %}
<form method="post">
  <label for="username">Username</label> <input id="username" name="username" autocomplete="username">
  <label for="password">Password</label>
  <input id="password" name="password" type="password" autocomplete="current-password">
  <button type="submit">Log in</button>
</form></main></body></html>"""


class User(UserMixin):
    """A host user; the password of each test user is its name plus "-password"."""

    def __init__(self, username: str, is_admin: bool):
        self.id = username
        self.username = username
        self.is_admin = is_admin


USERS = {"admin": User("admin", True), "user": User("user", False)}


class ProjectHost(DefaultHost):
    """The default host with a fixed list of projects; ``None`` lists none."""

    def __init__(self, projects):
        self.projects = None if projects is None else list(projects)

    def list_projects(self):
        return self.projects

    def canonical_project(self, project_id):
        if self.projects is None:
            return super().canonical_project(project_id)
        return project_id if project_id in self.projects else None


def create_admin_app(instance_path, projects=DEFAULT_PROJECTS, **config) -> Flask:
    """Build a host app with a login form, two users and the extension on SQLite."""
    app = Flask("admin_host", instance_path=str(instance_path))
    app.config.update(SECRET_KEY="admin-page-tests", **config)

    login_manager = LoginManager(app)
    login_manager.login_view = "login"
    login_manager.user_loader(USERS.get)

    @app.route("/login", methods=["GET", "POST"])
    def login():
        if request.method == "GET":
            return render_template_string(LOGIN_FORM, failed=False)

        user = USERS.get(request.form.get("username", ""))
        if user is None or request.form.get("password") != f"{user.username}-password":
            return render_template_string(LOGIN_FORM, failed=True), 401

        login_user(user)
        target = request.args.get("next", "/")
        return redirect(target if target.startswith("/") and not target.startswith("//") else "/")

    @app.route("/")
    def home():
        return "Host archive"

    DicomMappings(
        app,
        host=ProjectHost(projects),
        database_url=f"sqlite:///{instance_path}/mappings.sqlite3",
    )
    return app


def login(client, username: str):
    response = client.post("/login", data={"username": username, "password": f"{username}-password"})
    assert response.status_code == 302, response.get_data(as_text=True)


class PageParser(HTMLParser):
    """Collects the tags of a page that a Content-Security-Policy check needs."""

    def __init__(self):
        super().__init__()
        self.scripts: list[dict] = []
        self.handlers: list[tuple[str, str]] = []
        self.styles = 0
        self.style_attributes: list[str] = []
        self.meta: dict[str, str] = {}
        self.ids: set[str] = set()
        self.label_targets: set[str] = set()
        self.controls: list[dict] = []
        self.options: dict[str, list[str]] = {}
        self._select: str | None = None
        self.resources: list[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        for name, value in attrs:
            if name.startswith("on"):
                self.handlers.append((tag, name))
            if name == "style":
                self.style_attributes.append(tag)
        if "id" in attributes:
            self.ids.add(attributes["id"])

        if tag == "script":
            self.scripts.append(attributes)
        elif tag == "style":
            self.styles += 1
        elif tag == "meta" and "name" in attributes:
            self.meta[attributes["name"]] = attributes.get("content", "")
        elif tag == "label" and "for" in attributes:
            self.label_targets.add(attributes["for"])
        elif tag in ("input", "select", "textarea"):
            self.controls.append({"tag": tag, **attributes})
            if tag == "select":
                self._select = attributes.get("id")
                self.options[self._select] = []
        elif tag == "option" and self._select:
            self.options[self._select].append(attributes.get("value", ""))

        for name in ("src", "href"):
            if name in attributes:
                self.resources.append(attributes[name])

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None


def parse(html: str) -> PageParser:
    parser = PageParser()
    parser.feed(html)
    return parser


@pytest.fixture
def app(tmp_path):
    return create_admin_app(tmp_path)


@pytest.fixture
def admin_client(app):
    client = app.test_client()
    login(client, "admin")
    return client


@pytest.fixture
def user_client(app):
    client = app.test_client()
    login(client, "user")
    return client


# ---- access ----------------------------------------------------------------

def test_page_anonymous_gets_login_page(app):
    response = app.test_client().get(ADMIN_URL + "/")

    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_page_regular_user_gets_403_page(user_client):
    response = user_client.get(ADMIN_URL + "/")

    assert response.status_code == 403
    assert response.mimetype == "text/html"
    assert "Administrators only" in response.get_data(as_text=True)
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]


def test_page_administrator_gets_page(admin_client):
    response = admin_client.get(ADMIN_URL + "/")

    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert "<h2 id=\"rules-title\">Rules</h2>" in response.get_data(as_text=True)


def test_page_without_trailing_slash_redirects(admin_client):
    response = admin_client.get(ADMIN_URL)

    assert response.status_code == 308
    assert response.headers["Location"].endswith(ADMIN_URL + "/")


def test_tag_info_regular_user_gets_json_403(user_client):
    response = user_client.get(ADMIN_URL + "/tag-info?tag=PatientWeight")

    assert response.status_code == 403
    assert response.get_json()["status"] == 403


def test_tag_info_anonymous_gets_login_page(app):
    response = app.test_client().get(ADMIN_URL + "/tag-info?tag=PatientWeight")

    assert response.status_code == 302


def test_static_assets_need_no_login(app):
    client = app.test_client()

    script = client.get(ADMIN_URL + "/static/admin.js")
    style = client.get(ADMIN_URL + "/static/admin.css")

    assert script.status_code == 200
    assert script.mimetype in ("text/javascript", "application/javascript")
    assert style.status_code == 200
    assert style.mimetype == "text/css"


def test_admin_url_is_configurable(tmp_path):
    app = create_admin_app(tmp_path, DICOM_MAPPINGS_ADMIN_URL="/manage/mappings")
    client = app.test_client()
    login(client, "admin")

    moved = client.get("/manage/mappings/")
    old = client.get(ADMIN_URL + "/")

    assert moved.status_code == 200
    assert old.status_code == 404
    assert "/manage/mappings/static/admin.js" in moved.get_data(as_text=True)


# ---- the page's markup -----------------------------------------------------

def test_page_sends_strict_content_security_policy(admin_client):
    policy = admin_client.get(ADMIN_URL + "/").headers["Content-Security-Policy"]

    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["default-src"] == "'self'"
    assert directives["object-src"] == "'none'"


def test_page_has_no_inline_script_or_handler(admin_client):
    page = parse(admin_client.get(ADMIN_URL + "/").get_data(as_text=True))

    assert page.scripts, "the page loads its script"
    assert all(script.get("src") for script in page.scripts)
    assert page.handlers == []
    assert page.styles == 0
    assert page.style_attributes == []


def test_page_loads_only_local_resources(admin_client):
    page = parse(admin_client.get(ADMIN_URL + "/").get_data(as_text=True))

    remote = [url for url in page.resources if re.match(r"^(https?:)?//", url)]
    assert remote == []


def test_page_carries_csrf_token(admin_client):
    page = parse(admin_client.get(ADMIN_URL + "/").get_data(as_text=True))

    assert len(page.meta["csrf-token"]) >= 16


def test_page_names_api_url(admin_client):
    page = parse(admin_client.get(ADMIN_URL + "/").get_data(as_text=True))

    assert page.meta["dicom-mappings-api"] == "/xapi/dicom_mappings"
    assert page.meta["dicom-mappings-tag-info"] == ADMIN_URL + "/tag-info"


def test_every_control_has_label(admin_client):
    page = parse(admin_client.get(ADMIN_URL + "/").get_data(as_text=True))

    unlabelled = [
        control.get("id") for control in page.controls
        if control.get("type") != "hidden" and control.get("id") not in page.label_targets
    ]
    assert page.controls
    assert unlabelled == []


def test_schema_element_choices_are_known_types(admin_client):
    page = parse(admin_client.get(ADMIN_URL + "/").get_data(as_text=True))

    choices = [value for value in page.options["rule-schema-element"] if value]
    assert sorted(choices) == sorted(catalogue.SCHEMA_ELEMENTS)
    assert "xnat:imageSessionData" not in choices


def test_project_choices_come_from_host(admin_client):
    page = parse(admin_client.get(ADMIN_URL + "/").get_data(as_text=True))

    choices = [value for value in page.options["rule-project"] if value]
    assert choices == ["ProjectA", "ProjectB"]


def test_project_is_text_when_host_lists_none(tmp_path):
    app = create_admin_app(tmp_path, projects=None)
    client = app.test_client()
    login(client, "admin")

    page = parse(client.get(ADMIN_URL + "/").get_data(as_text=True))

    project = [c for c in page.controls if c.get("id") == "rule-project"][0]
    assert project["tag"] == "input"
    assert project["type"] == "text"


def test_page_escapes_host_values(tmp_path):
    app = create_admin_app(tmp_path, projects=["<b>P</b>"])
    client = app.test_client()
    login(client, "admin")

    html = client.get(ADMIN_URL + "/").get_data(as_text=True)

    assert "<b>P</b>" not in html
    assert "&lt;b&gt;P&lt;/b&gt;" in html


def test_page_controls_the_script_expects(admin_client):
    page = parse(admin_client.get(ADMIN_URL + "/").get_data(as_text=True))
    script = (PACKAGE_DIR / "static" / "admin.js").read_text()

    expected = set(re.findall(r'byId\("([\w-]+)"\)', script))
    assert expected
    assert expected - page.ids == set()


# ---- tag information ---------------------------------------------------------

@pytest.mark.parametrize(
    "text",
    ["PatientWeight", "0x00101030", "00101030", "(0010,1030)", "0010,1030"],
)
def test_tag_info_accepts_every_form(admin_client, text):
    response = admin_client.get(ADMIN_URL + "/tag-info", query_string={"tag": text})

    assert response.status_code == 200
    body = response.get_json()
    assert body["canonical"] == "0x00101030"
    assert body["keyword"] == "PatientWeight"
    assert body["name"] == "Patient's Weight"
    assert body["vr"] == "DS"


def test_tag_info_private_tag(admin_client):
    response = admin_client.get(
        ADMIN_URL + "/tag-info", query_string={"tag": '(0019,"SIEMENS MR HEADER",0c)'}
    )

    assert response.status_code == 200
    assert response.get_json()["canonical"] == '(0019,"SIEMENS MR HEADER",0C)'


def test_tag_info_unknown_keyword_is_400(admin_client):
    response = admin_client.get(ADMIN_URL + "/tag-info", query_string={"tag": "PatientWait"})

    assert response.status_code == 400
    body = response.get_json()
    assert "PatientWait" in body["message"]
    assert body["errors"]["tag"]


def test_tag_info_missing_parameter_is_400(admin_client):
    response = admin_client.get(ADMIN_URL + "/tag-info")

    assert response.status_code == 400
    assert "tag" in response.get_json()["message"]


# ---- packaging -------------------------------------------------------------

def test_templates_ship_inside_package():
    templates = PACKAGE_DIR / "templates" / "dicom_mappings"

    assert (templates / "admin.html").is_file()
    assert (templates / "forbidden.html").is_file()
    assert (templates / "base.html").is_file()


def test_assets_have_no_remote_urls():
    for path in (PACKAGE_DIR / "static").iterdir():
        text = path.read_text()
        assert not re.search(r"https?://", text), f"{path.name} refers to a remote URL"


def test_script_never_parses_html():
    script = (PACKAGE_DIR / "static" / "admin.js").read_text()

    assert "innerHTML" not in script
    assert "insertAdjacentHTML" not in script
    assert "document.write" not in script
    assert "eval(" not in script
