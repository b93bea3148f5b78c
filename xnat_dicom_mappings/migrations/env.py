"""Alembic environment of the rule store.

The extension passes an open connection in ``config.attributes["connection"]``.
Run by hand, the database URL comes from ``-x url=...``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from xnat_dicom_mappings.models import metadata

#: Name of Alembic's version table. It differs from Alembic's default so that a
#: host that keeps its own Alembic history in the same database is unaffected.
VERSION_TABLE = "xdm_alembic_version"

#: Key of the PostgreSQL advisory lock that serialises concurrent upgrades,
#: such as several workers of one site starting together.
ADVISORY_LOCK_KEY = 0x58444D01


def run_migrations(connection: sa.engine.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("select pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
        context.run_migrations()


def run_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        run_migrations(connection)
        return

    url = context.get_x_argument(as_dictionary=True).get("url")
    if not url:
        raise SystemExit("give the database URL: alembic -x url=postgresql+psycopg://... upgrade head")
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        run_migrations(connection)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run them against a database")
run_online()
