"""Create the rule and rule history tables.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "xdm_rule",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("project", sa.String(255), nullable=False, server_default=""),
        sa.Column("field_name", sa.String(64), nullable=False),
        sa.Column("field_type", sa.String(16), nullable=False),
        sa.Column("dicom_tag", sa.String(512), nullable=False),
        sa.Column("schema_element", sa.String(128), nullable=False),
        sa.Column("conflict_policy", sa.String(16), nullable=False, server_default="unique"),
        sa.Column("version", sa.Integer, nullable=False, server_default="1"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_xdm_rule"),
        sa.UniqueConstraint("schema_element", "scope", "project", "dicom_tag", name="uq_xdm_rule_tag"),
        sa.UniqueConstraint("schema_element", "scope", "project", "field_name", name="uq_xdm_rule_field"),
        # Without AUTOINCREMENT, SQLite hands a deleted rule's id to the next
        # rule, whose ETags and history would then mix with the old one's.
        sqlite_autoincrement=True,
    )
    op.create_table(
        "xdm_rule_history",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("rule_id", sa.Integer, nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("user_name", sa.String(255), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("before", sa.JSON, nullable=True),
        sa.Column("after", sa.JSON, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_xdm_rule_history"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_xdm_rule_history_rule_id", "xdm_rule_history", ["rule_id"])


def downgrade() -> None:
    op.drop_index("ix_xdm_rule_history_rule_id", table_name="xdm_rule_history")
    op.drop_table("xdm_rule_history")
    op.drop_table("xdm_rule")
