"""Benchmarks of the Flask extension: SQL statements per archived session, and the REST API.

Each database gets its own store: a temporary SQLite file, or a PostgreSQL
schema named ``xdm_bench_<random>`` that is dropped afterwards, so a run
never meets the tables of tests that use the same server.
"""

from __future__ import annotations

import base64
import json
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator
from urllib.parse import quote

import sqlalchemy as sa
from flask import Flask
from flask_login import LoginManager, UserMixin

from xnat_dicom_mappings.models import rule_table

from .extraction import Groups, scan_inputs
from .rules import SCAN_TYPE, SESSION_TYPE, candidate_expressions, standard_rules
from .timing import interleaved_medians, time_call

#: The PostgreSQL server of the API benchmark when neither ``--pg-url`` nor
#: DICOM_MAPPINGS_TEST_PG_URL names one; the test suite has the same default.
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

API_PREFIX = "/xapi/dicom_mappings"
ADMIN_NAME = "admin"
ADMIN_PASSWORD = "admin"

#: Rules per project in the API benchmark's store; projects are added until
#: the requested number of rules is stored.
RULES_PER_PROJECT = 100


class BenchUser(UserMixin):
    """The one administrator of the benchmark app."""

    is_admin = True

    def __init__(self, name: str):
        self.id = name
        self.username = name


def basic_auth_header(name: str = ADMIN_NAME, password: str = ADMIN_PASSWORD) -> dict[str, str]:
    token = base64.b64encode(f"{name}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def create_app(database_url: str):
    """Return a minimal host app with the extension, and the extension itself.

    flask-login loads the administrator from HTTP Basic credentials on every
    request, as a script calling XNAT's API would send them.
    """
    from xnat_dicom_mappings import DicomMappings

    app = Flask("xdm_bench")
    app.config["SECRET_KEY"] = uuid.uuid4().hex

    login = LoginManager(app)

    @login.request_loader
    def load_from_basic_auth(request):
        auth = request.authorization
        if auth is not None and auth.username == ADMIN_NAME and auth.password == ADMIN_PASSWORD:
            return BenchUser(ADMIN_NAME)
        return None

    extension = DicomMappings(app, database_url=database_url, admin_enabled=False)
    return app, extension


# -- databases ---------------------------------------------------------------


def pg_available(url: str) -> str | None:
    """Return why the PostgreSQL server at ``url`` cannot be used, or ``None`` when it can."""
    try:
        engine = sa.create_engine(url)
        with engine.connect() as connection:
            connection.execute(sa.text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:  # any driver or connection error means "not usable here"
        return f"{type(exc).__name__}: {exc}"


@contextmanager
def pg_schema_url(base_url: str) -> Iterator[str]:
    """Create a fresh schema, yield a URL whose search_path is that schema, then drop it."""
    schema = "xdm_bench_" + uuid.uuid4().hex[:12]
    admin = sa.create_engine(base_url)
    with admin.begin() as connection:
        connection.execute(sa.text(f'create schema "{schema}"'))

    separator = "&" if "?" in base_url else "?"
    try:
        yield f"{base_url}{separator}options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f'drop schema "{schema}" cascade'))
        admin.dispose()


@contextmanager
def fresh_database(database: str, workdir: Path, pg_url: str | None) -> Iterator[str]:
    """Yield the URL of an empty database: a new SQLite file in ``workdir`` or a new PostgreSQL schema."""
    if database == "SQLite":
        yield f"sqlite:///{workdir / f'bench-{uuid.uuid4().hex[:8]}.sqlite3'}"
        return

    if pg_url is None:
        raise ValueError("no PostgreSQL URL was given")
    with pg_schema_url(pg_url) as url:
        yield url


# -- SQL statements per session ----------------------------------------------


class StatementCounter:
    """Counts the SQL statements that any engine of this process sends while counting is on."""

    def __init__(self):
        self.count = 0
        self.statements: list[str] = []
        self.active = False

    def __call__(self, conn, cursor, statement, parameters, context, executemany):
        if self.active:
            self.count += 1
            self.statements.append(" ".join(statement.split())[:120])

    @contextmanager
    def counting(self) -> Iterator["StatementCounter"]:
        self.count = 0
        self.statements = []
        self.active = True
        try:
            yield self
        finally:
            self.active = False


@contextmanager
def statement_counter() -> Iterator[StatementCounter]:
    """Listen to ``before_cursor_execute`` on every engine while the block runs."""
    counter = StatementCounter()
    sa.event.listen(sa.engine.Engine, "before_cursor_execute", counter)
    try:
        yield counter
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", counter)


@dataclass
class StatementCounts:
    """SQL statements of one archived session through the hook, per database."""

    database: str
    first_use: int  # first session of a new app, which also opens the store and checks its schema
    cold: int  # first session of a new app whose store is already open
    warm: int  # the next session
    after_change: int  # the first session after a rule was changed through the API
    cold_statements: list[str] = field(default_factory=list)


RULE_KEYS = ("id", "scope", "scopeObjectId", "fieldName", "fieldType", "dicomTag", "schemaElement")


def put_rule(client, rule: dict) -> dict:
    """Send one rule to ``PUT /update`` as the administrator and return the stored rule's XNAT keys."""
    response = client.put(f"{API_PREFIX}/update", json=rule, headers=basic_auth_header())
    if response.status_code != 200:
        raise RuntimeError(
            f"PUT {API_PREFIX}/update failed with {response.status_code}: {response.get_data(as_text=True)}"
        )
    stored = response.get_json()
    return {key: stored.get(key) for key in RULE_KEYS}


def measure_statements(database: str, url: str, groups: Groups) -> StatementCounts:
    """Measurement 4: count the statements of ``extract_session`` cold, warm and after a change."""
    app, extension = create_app(url)
    client = app.test_client()
    stored = [put_rule(client, rule.to_json()) for rule in standard_rules()]
    extension.store.engine.dispose()

    def archive_session():
        with app.app_context():
            extension.extract_session(
                project="BENCH", session_type=SESSION_TYPE, scans=scan_inputs(groups), session_id="BENCH_E00001"
            )

    with statement_counter() as counter:
        # A new app on the same database starts with an empty rule cache, and
        # its first use of the store checks the schema's revision.
        app, extension = create_app(url)
        with counter.counting():
            archive_session()
        first_use = counter.count
        extension.store.engine.dispose()

        # Cold: a new app whose store is already open, as after start-up.
        app, extension = create_app(url)
        client = app.test_client()
        store = extension.store
        with counter.counting():
            archive_session()
        cold, cold_statements = counter.count, counter.statements

        with counter.counting():
            archive_session()
        warm = counter.count

        put_rule(client, {**stored[0], "fieldName": "weightkg"})
        with counter.counting():
            archive_session()
        after_change = counter.count

    store.engine.dispose()
    return StatementCounts(database, first_use, cold, warm, after_change, cold_statements)


# -- the REST API --------------------------------------------------------------


def api_rule_rows(count: int, tag_expressions: list[str]) -> list[dict]:
    """Return ``count`` rows of the rule table: project rules, ``RULES_PER_PROJECT`` per project.

    Half of a project's rules are session fields and half scan parameters.
    Within one project and xsi type every rule has its own tag and field name,
    because the table's unique constraints require it.
    """
    now = datetime.now(timezone.utc)
    per_type = RULES_PER_PROJECT // 2
    if len(tag_expressions) < per_type:
        raise ValueError(f"{per_type} distinct tags are needed per project, {len(tag_expressions)} given")

    rows = []
    for index in range(count):
        project_index, position = divmod(index, RULES_PER_PROJECT)
        schema_element = SESSION_TYPE if position < per_type else SCAN_TYPE
        rows.append({
            "scope": "Project",
            "project": f"PROJ{project_index:04d}",
            "field_name": f"field{position % per_type:03d}",
            "field_type": "string",
            "dicom_tag": tag_expressions[position % per_type],
            "schema_element": schema_element,
            "conflict_policy": "unique",
            "version": 1,
            "created_at": now,
            "created_by": ADMIN_NAME,
            "updated_at": now,
            "updated_by": ADMIN_NAME,
        })
    return rows


def raw_query_json(engine: sa.engine.Engine) -> str:
    """Baseline of the GET: select every rule with SQLAlchemy Core and ``json.dumps`` the rows."""
    with engine.connect() as connection:
        rows = connection.execute(sa.select(rule_table).order_by(rule_table.c.id)).all()
    return json.dumps([dict(row._mapping) for row in rows], default=str)


@dataclass
class ApiResult:
    """Wall-clock seconds of the GET and its baseline, and of the PUT /update requests, on one database.

    Wall-clock time, because the database server's share of the work happens
    in another process.
    """

    database: str
    rule_count: int
    get_seconds: float
    raw_seconds: float
    response_bytes: int
    put_requests: int
    put_create_seconds: float
    put_update_seconds: float

    @property
    def get_ratio(self) -> float:
        return self.get_seconds / self.raw_seconds


def measure_api(database: str, url: str, rule_count: int, put_requests: int, rounds: int, sample_file: Path) -> ApiResult:
    """Measurement 5: GET every rule against the raw query, then PUT /update creates and updates."""
    app, extension = create_app(url)
    client = app.test_client()
    headers = basic_auth_header()

    # The first request applies the migrations; the rules are then bulk-inserted.
    client.get(API_PREFIX, headers=headers)
    tags = [expression for expression, _ in candidate_expressions(sample_file)]
    engine = extension.store.engine
    with engine.begin() as connection:
        connection.execute(rule_table.insert(), api_rule_rows(rule_count, tags))

    def get_all() -> int:
        response = client.get(API_PREFIX, headers=headers)
        if response.status_code != 200:
            raise RuntimeError(f"GET {API_PREFIX} failed with {response.status_code}")
        return len(response.get_data())

    response_bytes = get_all()
    raw_query_json(engine)
    seconds = interleaved_medians(
        {"api_get": get_all, "raw_query_json": lambda: raw_query_json(engine)},
        rounds,
    )

    created: list[dict] = []

    def put_creates() -> None:
        for index in range(put_requests):
            rule = {
                "scope": "Project",
                "scopeObjectId": f"PUT{index:05d}",
                "fieldName": "weight",
                "fieldType": "float",
                "dicomTag": "0x00101030",
                "schemaElement": SESSION_TYPE,
            }
            created.append(put_rule(client, rule))

    def put_updates() -> None:
        for index, rule in enumerate(created):
            created[index] = put_rule(client, {**rule, "fieldName": "weightkg"})

    put_create_seconds = time_call(put_creates).wall
    put_update_seconds = time_call(put_updates).wall

    engine.dispose()
    return ApiResult(
        database=database,
        rule_count=rule_count,
        get_seconds=seconds["api_get"].wall,
        raw_seconds=seconds["raw_query_json"].wall,
        response_bytes=response_bytes,
        put_requests=put_requests,
        put_create_seconds=put_create_seconds,
        put_update_seconds=put_update_seconds,
    )
