"""Shared fixtures: databases on SQLite and PostgreSQL, real DICOM files."""

from __future__ import annotations

import os
import uuid
from urllib.parse import quote

import pytest
import sqlalchemy as sa

#: The PostgreSQL server that storage tests run against. Under CI (CI=true) a
#: server that does not respond fails the run instead of skipping the tests.
PG_URL = os.environ.get(
    "DICOM_MAPPINGS_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _pg_available() -> str | None:
    try:
        engine = sa.create_engine(PG_URL)
        with engine.connect() as connection:
            connection.execute(sa.text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:  # any driver or connection error means "not here"
        return f"{type(exc).__name__}: {exc}"


@pytest.fixture(scope="session")
def pg_base_url():
    """Return the PostgreSQL URL; skip locally, or fail under CI, when it does not respond."""
    reason = _pg_available()
    if reason:
        message = f"PostgreSQL at {PG_URL} is not responding ({reason})"
        if os.environ.get("CI"):
            pytest.fail(message + "; CI must run the PostgreSQL tests")
        pytest.skip(message)
    return PG_URL


@pytest.fixture
def pg_url(pg_base_url):
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards.

    Each test gets its own schema, so test runs in parallel on one server do
    not see each other's tables.
    """
    schema = "xdm_t_" + uuid.uuid4().hex[:12]
    admin = sa.create_engine(pg_base_url)
    with admin.begin() as connection:
        connection.execute(sa.text(f'create schema "{schema}"'))

    separator = "&" if "?" in pg_base_url else "?"
    yield f"{pg_base_url}{separator}options={quote(f'-csearch_path={schema}')}"

    with admin.begin() as connection:
        connection.execute(sa.text(f'drop schema "{schema}" cascade'))
    admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'mappings.sqlite3'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request):
    """Each storage test runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("pg_url")


def testdata(name: str) -> str:
    """Path of a DICOM file shipped with pydicom or pydicom-data; never downloads."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name, download=False)
    if path is None:
        raise FileNotFoundError(
            f"{name} is not installed; `make venv` installs pydicom-data with the test extra"
        )
    return str(path)
