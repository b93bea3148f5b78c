"""The plugin's host protocol, implemented on this host's own tables."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import sessionmaker

from xnat_dicom_mappings.host import DefaultHost

from .models import CustomVariable, Project


class ArchiveHost(DefaultHost):
    """Projects and custom variables come from the ``host_`` tables.

    The xsi types, the administrator check (the ``Administrator`` role, which
    :attr:`User.is_admin` reports) and the user names are :class:`DefaultHost`'s.
    """

    def __init__(self, session_factory: sessionmaker):
        self._session_factory = session_factory

    def canonical_project(self, project_id: str) -> str | None:
        """Return the project's ID as stored, matching without regard to letter case."""
        requested = (project_id or "").strip()
        if not requested:
            return None

        with self._session_factory() as db:
            exact = db.get(Project, requested)
            if exact is not None:
                return exact.id

            matches = db.scalars(
                sa.select(Project.id).where(sa.func.lower(Project.id) == requested.lower())
            ).all()
        # Two projects that differ only in letter case make the match ambiguous.
        return matches[0] if len(matches) == 1 else None

    def list_projects(self) -> list[str] | None:
        with self._session_factory() as db:
            return list(db.scalars(sa.select(Project.id).order_by(Project.id)))

    def has_custom_variable(self, project: str | None, session_type: str, field_name: str) -> bool | None:
        """Return whether the custom variable exists; for a site rule, in any project."""
        query = sa.select(CustomVariable.id).where(
            sa.func.lower(CustomVariable.session_type) == session_type.lower(),
            CustomVariable.name == field_name.lower(),
        )
        if project is not None:
            query = query.where(CustomVariable.project_id == project)

        with self._session_factory() as db:
            return db.scalar(query.limit(1)) is not None
