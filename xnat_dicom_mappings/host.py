"""The questions the extension puts to the host archive, and their default results."""

from __future__ import annotations

from typing import Any, Literal, Protocol, runtime_checkable

from . import catalogue

Level = Literal["session", "scan"]

#: Name of the role that makes a user an administrator in :class:`DefaultHost`.
ADMINISTRATOR_ROLE = "Administrator"


@runtime_checkable
class Host(Protocol):
    """The host archive's view of projects, xsi types, custom variables and users.

    A host implements the methods it supports and may subclass
    :class:`DefaultHost` for the rest. ``None`` means "unknown": the extension
    then accepts the value without checking it.
    """

    def canonical_project(self, project_id: str) -> str | None:
        """Return the canonical ID of a project, or ``None`` when it does not exist."""

    def list_projects(self) -> list[str] | None:
        """Return every project ID, or ``None`` when the host does not list them."""

    def schema_elements(self) -> dict[str, Level]:
        """Return every concrete xsi type in canonical spelling with its level."""

    def has_custom_variable(self, project: str | None, session_type: str, field_name: str) -> bool | None:
        """Return whether a custom variable ``field_name`` exists for sessions of
        ``session_type`` in ``project`` (``None`` for every project)."""

    def is_admin(self, user: Any) -> bool:
        """Return whether ``user`` may read and change the mapping rules."""

    def user_name(self, user: Any) -> str:
        """Return the name recorded in the rule history for ``user``."""


class DefaultHost:
    """The defaults for a host that has no projects or custom variables of its own.

    Every project exists under the ID it is given, and the xsi types are
    XNAT's standard image session and scan types. Nothing is known about
    custom variables. An administrator is a flask-login user whose
    ``is_admin`` attribute is true or who has a role named ``"Administrator"``.
    """

    def canonical_project(self, project_id: str) -> str | None:
        project_id = (project_id or "").strip()
        return project_id or None

    def list_projects(self) -> list[str] | None:
        return None

    def schema_elements(self) -> dict[str, Level]:
        return dict(catalogue.SCHEMA_ELEMENTS)

    def has_custom_variable(self, project: str | None, session_type: str, field_name: str) -> bool | None:
        return None

    def is_admin(self, user: Any) -> bool:
        if user is None or not getattr(user, "is_authenticated", False):
            return False

        if getattr(user, "is_admin", False) is True:
            return True

        for role in getattr(user, "roles", None) or ():
            name = role if isinstance(role, str) else getattr(role, "name", None)
            if name == ADMINISTRATOR_ROLE:
                return True
        return False

    def user_name(self, user: Any) -> str:
        if user is None or not getattr(user, "is_authenticated", False):
            return "anonymous"

        for attribute in ("username", "login", "name"):
            value = getattr(user, attribute, None)
            if isinstance(value, str) and value:
                return value
        return str(user.get_id())
