"""SQLAlchemy tables of the rule store.

Every table name starts with ``xdm_`` so the tables can live in a host's own
database. The packaged Alembic migrations create them; this module is their
description for queries.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)

#: Maximum length of a field name, the width of its column.
FIELD_NAME_MAX_LENGTH = 64

#: Maximum lengths of a project ID, a schema element and a user name.
PROJECT_MAX_LENGTH = 255
SCHEMA_ELEMENT_MAX_LENGTH = 128
USER_MAX_LENGTH = 255

#: Maximum length of a canonical tag expression. Paths into sequences and private tags
#: anchored on their creator are longer than the plain ``0xGGGGEEEE``.
DICOM_TAG_MAX_LENGTH = 512

#: Value of the ``project`` column for site rules. A non-null key lets the
#: unique constraints hold for site rules as well (NULLs never collide).
SITE_PROJECT = ""

rule_table = sa.Table(
    "xdm_rule",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("scope", sa.String(16), nullable=False),
    sa.Column("project", sa.String(PROJECT_MAX_LENGTH), nullable=False, default=SITE_PROJECT),
    sa.Column("field_name", sa.String(FIELD_NAME_MAX_LENGTH), nullable=False),
    sa.Column("field_type", sa.String(16), nullable=False),
    sa.Column("dicom_tag", sa.String(DICOM_TAG_MAX_LENGTH), nullable=False),
    sa.Column("schema_element", sa.String(SCHEMA_ELEMENT_MAX_LENGTH), nullable=False),
    sa.Column("conflict_policy", sa.String(16), nullable=False, default="unique"),
    sa.Column("version", sa.Integer, nullable=False, default=1),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_by", sa.String(USER_MAX_LENGTH), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_by", sa.String(USER_MAX_LENGTH), nullable=False),
    sa.UniqueConstraint("schema_element", "scope", "project", "dicom_tag", name="uq_xdm_rule_tag"),
    sa.UniqueConstraint("schema_element", "scope", "project", "field_name", name="uq_xdm_rule_field"),
    # Ids are never reused, so a deleted rule's ETags and history stay its own.
    sqlite_autoincrement=True,
)

#: One row per create, update and delete. ``rule_id`` is no foreign key, so the
#: history of a deleted rule stays.
history_table = sa.Table(
    "xdm_rule_history",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("rule_id", sa.Integer, nullable=False, index=True),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("user_name", sa.String(USER_MAX_LENGTH), nullable=False),
    sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("before", sa.JSON, nullable=True),
    sa.Column("after", sa.JSON, nullable=True),
    sqlite_autoincrement=True,
)
