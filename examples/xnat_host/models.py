"""SQLAlchemy tables of the reference host, all prefixed ``host_``.

They live in the same database as the plugin's rule tables. Session and scan
rows follow XNAT's data model: a session (experiment) belongs to a project,
its scans carry parameters, and custom fields hang off the session.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

import sqlalchemy as sa
from flask_login import UserMixin
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

#: Role that makes a user an administrator, as in XNAT.
ADMINISTRATOR_ROLE = "Administrator"

#: Prefix of the session IDs that this host assigns, as XNAT's "XNAT_E00001".
SESSION_ID_PREFIX = "XNAT_E"

_SESSION_ID = re.compile(rf"^{SESSION_ID_PREFIX}(\d+)$")


def _now() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


user_roles = sa.Table(
    "host_user_roles",
    Base.metadata,
    sa.Column("user_id", sa.ForeignKey("host_users.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("role_id", sa.ForeignKey("host_roles.id", ondelete="CASCADE"), primary_key=True),
)


class Role(Base):
    __tablename__ = "host_roles"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(64), unique=True)


class User(UserMixin, Base):
    """An account; flask-login keeps its ``id`` in the session cookie."""

    __tablename__ = "host_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(sa.String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(256))
    role_objects: Mapped[list[Role]] = relationship(secondary=user_roles, lazy="selectin")

    @property
    def roles(self) -> list[str]:
        """Role names, as the plugin's administrator check reads them."""
        return [role.name for role in self.role_objects]

    @property
    def is_admin(self) -> bool:
        return ADMINISTRATOR_ROLE in self.roles

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)


class Project(Base):
    __tablename__ = "host_projects"

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(255))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=_now)


class CustomVariable(Base):
    """A custom field defined for sessions of one xsi type in one project.

    XNAT shows a session's custom field only when such a definition exists;
    the plugin warns when a session rule targets a field without one.
    """

    __tablename__ = "host_custom_variables"
    __table_args__ = (sa.UniqueConstraint("project_id", "session_type", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[str] = mapped_column(
        sa.ForeignKey("host_projects.id", ondelete="CASCADE"), index=True
    )
    session_type: Mapped[str] = mapped_column(sa.String(128))
    #: Lowercase, because XNAT matches custom field names without regard to case.
    name: Mapped[str] = mapped_column(sa.String(255))
    field_type: Mapped[str] = mapped_column(sa.String(32), default="string")


class Session(Base):
    """An archived image session (XNAT experiment)."""

    __tablename__ = "host_sessions"
    __table_args__ = (
        sa.UniqueConstraint("project_id", "label"),
        sa.UniqueConstraint("project_id", "study_instance_uid"),
    )

    pk: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[str] = mapped_column(sa.ForeignKey("host_projects.id"), index=True)
    subject_label: Mapped[str] = mapped_column(sa.String(255))
    label: Mapped[str] = mapped_column(sa.String(255))
    xsi_type: Mapped[str] = mapped_column(sa.String(128))
    study_instance_uid: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=_now)
    created_by: Mapped[str] = mapped_column(sa.String(64))

    scans: Mapped[list["Scan"]] = relationship(
        back_populates="session", cascade="all, delete-orphan", order_by="Scan.pk"
    )
    fields: Mapped[list["SessionField"]] = relationship(
        cascade="all, delete-orphan", order_by="SessionField.name"
    )
    problems: Mapped[list["SessionProblem"]] = relationship(
        cascade="all, delete-orphan", order_by="SessionProblem.position"
    )

    @property
    def accession(self) -> str:
        """The session ID shown to clients, such as ``XNAT_E00001``."""
        return f"{SESSION_ID_PREFIX}{self.pk:05d}"

    @staticmethod
    def pk_from_accession(accession: str) -> int | None:
        match = _SESSION_ID.match(accession)
        return int(match.group(1)) if match else None


class Scan(Base):
    __tablename__ = "host_scans"
    __table_args__ = (sa.UniqueConstraint("session_pk", "scan_id"),)

    pk: Mapped[int] = mapped_column(primary_key=True)
    session_pk: Mapped[int] = mapped_column(
        sa.ForeignKey("host_sessions.pk", ondelete="CASCADE"), index=True
    )
    scan_id: Mapped[str] = mapped_column(sa.String(64))
    xsi_type: Mapped[str] = mapped_column(sa.String(128))
    series_instance_uid: Mapped[str] = mapped_column(sa.String(64))
    series_description: Mapped[str] = mapped_column(sa.String(255), default="")

    session: Mapped[Session] = relationship(back_populates="scans")
    parameters: Mapped[list["ScanParameter"]] = relationship(
        cascade="all, delete-orphan", order_by="ScanParameter.name"
    )
    files: Mapped[list["StoredFile"]] = relationship(
        cascade="all, delete-orphan", order_by="StoredFile.path"
    )


class SessionField(Base):
    """A session custom field value, stored whether or not a custom variable defines it."""

    __tablename__ = "host_session_fields"

    session_pk: Mapped[int] = mapped_column(
        sa.ForeignKey("host_sessions.pk", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    value: Mapped[str] = mapped_column(sa.Text)


class ScanParameter(Base):
    __tablename__ = "host_scan_parameters"

    scan_pk: Mapped[int] = mapped_column(
        sa.ForeignKey("host_scans.pk", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    value: Mapped[str] = mapped_column(sa.Text)


class SessionProblem(Base):
    """One extraction problem, as the plugin's ``Problem.to_json()`` returns it."""

    __tablename__ = "host_session_problems"

    pk: Mapped[int] = mapped_column(primary_key=True)
    session_pk: Mapped[int] = mapped_column(
        sa.ForeignKey("host_sessions.pk", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column()
    body: Mapped[dict] = mapped_column(sa.JSON)


class StoredFile(Base):
    """A DICOM file kept under the data directory."""

    __tablename__ = "host_files"

    pk: Mapped[int] = mapped_column(primary_key=True)
    scan_pk: Mapped[int] = mapped_column(
        sa.ForeignKey("host_scans.pk", ondelete="CASCADE"), index=True
    )
    #: Path relative to the data directory, with "/" separators.
    path: Mapped[str] = mapped_column(sa.String(1024))
    sop_instance_uid: Mapped[str] = mapped_column(sa.String(64))
    #: The zip member that the file came from.
    source_name: Mapped[str] = mapped_column(sa.String(1024))
    size: Mapped[int] = mapped_column(sa.BigInteger)
