"""The rule store: mapping rules and their history in a SQLAlchemy database."""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator, Sequence

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from .errors import DicomMappingsError, StoreUnavailable
from .models import SITE_PROJECT, history_table, rule_table
from .rules import PROJECT, SITE, Rule

logger = logging.getLogger(__name__)

MIGRATIONS_PATH = Path(__file__).resolve().parent / "migrations"

#: Name of Alembic's version table of this package (also set in migrations/env.py).
VERSION_TABLE = "xdm_alembic_version"

#: The history actions.
CREATE, UPDATE, DELETE = "create", "update", "delete"

#: Import modes: ``merge`` creates and updates; ``replace`` also deletes every
#: stored rule that the bundle does not contain.
IMPORT_MODES = ("merge", "replace")

# Errors of the driver or the pool that mean the database cannot be reached or
# used right now, as opposed to a bad statement. SQLite reports a locked or
# unreadable file as OperationalError too.
_UNAVAILABLE_ERRORS = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError)


class RuleNotFound(DicomMappingsError, LookupError):
    """No rule has the requested id."""

    def __init__(self, rule_id: int):
        super().__init__(f"mapping rule {rule_id} does not exist")
        self.rule_id = rule_id


class RuleConflict(DicomMappingsError):
    """A rule would duplicate another one on a unique key.

    ``existing_id`` is the id of the rule already stored, or ``None`` when the
    other rule is part of the same import bundle.
    """

    def __init__(self, message: str, existing_id: int | None = None, key: str | None = None):
        super().__init__(message)
        self.existing_id = existing_id
        self.key = key


class StaleRule(DicomMappingsError):
    """A conditional write named a version of the rule that is no longer current."""

    def __init__(self, rule_id: int, expected_version: int, current_version: int):
        super().__init__(
            f"mapping rule {rule_id} is at version {current_version}, not {expected_version}; "
            "GET it again, reapply the change and send the new ETag in If-Match"
        )
        self.rule_id = rule_id
        self.expected_version = expected_version
        self.current_version = current_version


class BundleError(DicomMappingsError):
    """An import bundle whose rules contradict each other or the stored rules.

    ``errors`` maps the index of each offending rule in the bundle to messages.
    """

    def __init__(self, message: str, errors: dict[str, list[str]], existing_ids: Sequence[int] = ()):
        super().__init__(message)
        self.errors = errors
        #: Stored rules that the bundle collides with; empty when it only contradicts itself.
        self.existing_ids = sorted(set(existing_ids))


@dataclass(frozen=True)
class StoredRule:
    """A rule as stored, with its version and who changed it when."""

    rule: Rule
    version: int
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str

    @property
    def id(self) -> int:
        return self.rule.id

    @property
    def etag(self) -> str:
        """The entity tag of this version, without quotes."""
        return f"{self.rule.id}-{self.version}"

    def to_json(self) -> dict:
        """Return the rule's API form: XNAT's seven keys, ``conflictPolicy`` and ``version``."""
        data = self.rule.to_json()
        data["version"] = self.version
        return data


@dataclass(frozen=True)
class HistoryEntry:
    """One create, update or delete of a rule, with the rule before and after it."""

    id: int
    rule_id: int
    action: str
    user: str
    timestamp: datetime
    before: dict | None
    after: dict | None

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "ruleId": self.rule_id,
            "action": self.action,
            "user": self.user,
            "timestamp": self.timestamp.isoformat(),
            "before": self.before,
            "after": self.after,
        }


@dataclass(frozen=True)
class RuleFilter:
    """Conditions of a rule listing; ``None`` matches everything.

    Values must be canonical (``scope`` "Site" or "Project", the canonical
    schema element and tag); the API canonicalises them first.
    """

    scope: str | None = None
    project: str | None = None
    schema_element: str | None = None
    field_name: str | None = None
    dicom_tag: str | None = None


@dataclass
class ImportPlan:
    """The changes of an import: rules to create, update and delete, and the unchanged ones."""

    mode: str
    create: list[Rule] = field(default_factory=list)
    update: list[tuple[StoredRule, Rule]] = field(default_factory=list)
    delete: list[StoredRule] = field(default_factory=list)
    unchanged: list[StoredRule] = field(default_factory=list)
    created: list[StoredRule] = field(default_factory=list)

    def to_json(self, *, applied: bool) -> dict:
        if applied:
            created = [stored.to_json() for stored in self.created]
        else:
            created = [rule.to_json() for rule in self.create]
        return {
            "dryRun": not applied,
            "mode": self.mode,
            "summary": {
                "create": len(self.create),
                "update": len(self.update),
                "delete": len(self.delete),
                "unchanged": len(self.unchanged),
            },
            "create": created,
            "update": [
                {"id": stored.id, "before": stored.to_json(), "after": rule.to_json()}
                for stored, rule in self.update
            ],
            "delete": [stored.to_json() for stored in self.delete],
            "unchanged": [stored.id for stored in self.unchanged],
        }


def _utc(value: datetime) -> datetime:
    # SQLite returns the stored timestamps without their zone.
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _project_key(rule: Rule) -> str:
    if rule.scope == PROJECT:
        return rule.scope_object_id or SITE_PROJECT
    return SITE_PROJECT


def _stored_from_row(row) -> StoredRule:
    rule = Rule(
        id=row.id,
        scope=row.scope,
        scope_object_id=row.project if row.scope == PROJECT else None,
        field_name=row.field_name,
        field_type=row.field_type,
        dicom_tag=row.dicom_tag,
        schema_element=row.schema_element,
        conflict_policy=row.conflict_policy,
    )
    return StoredRule(
        rule=rule,
        version=row.version,
        created_at=_utc(row.created_at),
        created_by=row.created_by,
        updated_at=_utc(row.updated_at),
        updated_by=row.updated_by,
    )


def _rule_values(rule: Rule) -> dict:
    return {
        "scope": rule.scope,
        "project": _project_key(rule),
        "field_name": rule.field_name,
        "field_type": rule.field_type,
        "dicom_tag": rule.dicom_tag,
        "schema_element": rule.schema_element,
        "conflict_policy": rule.conflict_policy,
    }


def _same_content(stored: StoredRule, rule: Rule) -> bool:
    return _rule_values(stored.rule) == _rule_values(rule)


def _describe(rule: Rule) -> str:
    where = "site" if rule.scope == SITE else f"project {rule.scope_object_id}"
    return f"{rule.schema_element} ({where})"


class RuleStore:
    """Mapping rules and their history in the ``xdm_`` tables of one database.

    Every write runs in one transaction together with its history row, so a
    failure leaves nothing half-written. Database errors that mean "not
    reachable now" raise :class:`~xnat_dicom_mappings.errors.StoreUnavailable`.
    """

    def __init__(self, engine: sa.engine.Engine):
        self.engine = engine
        self._listeners: list[Callable[[str, Sequence[int]], None]] = []
        self._listeners_lock = threading.Lock()

    # -- change listeners --------------------------------------------------

    def add_listener(self, callback: Callable[[str, Sequence[int]], None]) -> None:
        """Call ``callback(action, rule_ids)`` after every committed change.

        ``action`` is ``"create"``, ``"update"``, ``"delete"`` or ``"import"``.
        """
        with self._listeners_lock:
            self._listeners.append(callback)

    def _notify(self, action: str, rule_ids: Sequence[int]) -> None:
        with self._listeners_lock:
            listeners = list(self._listeners)
        for callback in listeners:
            try:
                callback(action, rule_ids)
            except Exception:
                logger.exception("rule change listener %r failed after %s of rules %s", callback, action, list(rule_ids))

    # -- schema ------------------------------------------------------------

    def _alembic_config(self, connection: sa.engine.Connection) -> AlembicConfig:
        config = AlembicConfig()
        config.set_main_option("script_location", str(MIGRATIONS_PATH))
        config.attributes["connection"] = connection
        return config

    def head_revision(self) -> str:
        """Return the newest migration revision that this package ships."""
        config = AlembicConfig()
        config.set_main_option("script_location", str(MIGRATIONS_PATH))
        return ScriptDirectory.from_config(config).get_current_head()

    def current_revision(self) -> str | None:
        """Return the revision the database is at, or ``None`` before the first upgrade."""
        with self._translate_errors():
            with self.engine.connect() as connection:
                context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
                return context.get_current_revision()

    def upgrade(self, revision: str = "head") -> None:
        """Apply the packaged migrations up to ``revision``."""
        with self._translate_errors():
            with self.engine.begin() as connection:
                command.upgrade(self._alembic_config(connection), revision)

    def downgrade(self, revision: str) -> None:
        """Revert the packaged migrations down to ``revision`` (``"base"`` drops every table)."""
        with self._translate_errors():
            with self.engine.begin() as connection:
                command.downgrade(self._alembic_config(connection), revision)

    def check_schema(self) -> None:
        """Raise StoreUnavailable unless the tables are at the newest revision."""
        current = self.current_revision()
        head = self.head_revision()
        if current != head:
            raise StoreUnavailable(
                f"the DICOM mapping tables are at revision {current or 'none'} but this version of "
                f"xnat-dicom-mappings needs {head}; run `flask dicom-mappings db upgrade`"
            )

    # -- errors --------------------------------------------------------------

    @contextmanager
    def _translate_errors(self) -> Iterator[None]:
        try:
            yield
        except _UNAVAILABLE_ERRORS as exc:
            raise StoreUnavailable(f"the DICOM mapping database is unavailable: {exc.orig or exc}") from exc
        except sa.exc.DBAPIError as exc:
            if exc.connection_invalidated:
                raise StoreUnavailable(f"the connection to the DICOM mapping database was lost: {exc.orig}") from exc
            raise

    # -- reading -------------------------------------------------------------

    def _filter_clauses(self, rule_filter: RuleFilter | None) -> list:
        if rule_filter is None:
            return []

        # PostgreSQL rejects NUL in a text parameter, and the API rejects NUL on
        # input, so no rule it stored contains one. Such a filter matches nothing,
        # and the query goes out without the NUL, so SQLite and PostgreSQL agree.
        values = (rule_filter.scope, rule_filter.project, rule_filter.schema_element,
                  rule_filter.field_name, rule_filter.dicom_tag)
        if any(value is not None and "\x00" in value for value in values):
            return [sa.false()]

        clauses = []
        if rule_filter.scope is not None:
            clauses.append(rule_table.c.scope == rule_filter.scope)
        if rule_filter.project is not None:
            clauses.append(rule_table.c.project == rule_filter.project)
        if rule_filter.schema_element is not None:
            clauses.append(rule_table.c.schema_element == rule_filter.schema_element)
        if rule_filter.field_name is not None:
            clauses.append(rule_table.c.field_name == rule_filter.field_name)
        if rule_filter.dicom_tag is not None:
            clauses.append(rule_table.c.dicom_tag == rule_filter.dicom_tag)
        return clauses

    def list(
        self, rule_filter: RuleFilter | None = None, *, offset: int = 0, limit: int | None = None
    ) -> tuple[list[StoredRule], int]:
        """Return the rules that match ``rule_filter``, ordered by id, and their total count."""
        clauses = self._filter_clauses(rule_filter)
        query = sa.select(rule_table).where(*clauses).order_by(rule_table.c.id).offset(offset)
        if limit is not None:
            query = query.limit(limit)
        count_query = sa.select(sa.func.count()).select_from(rule_table).where(*clauses)

        with self._translate_errors():
            with self.engine.connect() as connection:
                rows = connection.execute(query).all()
                if offset == 0 and (limit is None or len(rows) < limit):
                    total = len(rows)
                else:
                    total = connection.execute(count_query).scalar_one()
        return [_stored_from_row(row) for row in rows], total

    def all_rules(self) -> list[Rule]:
        """Return every rule, with one SQL statement."""
        with self._translate_errors():
            with self.engine.connect() as connection:
                rows = connection.execute(sa.select(rule_table).order_by(rule_table.c.id)).all()
        return [_stored_from_row(row).rule for row in rows]

    def get(self, rule_id: int) -> StoredRule:
        """Return rule ``rule_id``; raise RuleNotFound when it does not exist."""
        with self._translate_errors():
            with self.engine.connect() as connection:
                stored = self._get(connection, rule_id)
        if stored is None:
            raise RuleNotFound(rule_id)
        return stored

    def _get(self, connection, rule_id: int, *, for_update: bool = False) -> StoredRule | None:
        query = sa.select(rule_table).where(rule_table.c.id == rule_id)
        if for_update:
            query = query.with_for_update()
        row = connection.execute(query).first()
        return _stored_from_row(row) if row is not None else None

    def history(
        self, rule_id: int | None = None, *, offset: int = 0, limit: int | None = None
    ) -> tuple[list[HistoryEntry], int]:
        """Return history entries, newest first, of one rule or of all rules, and their total."""
        clauses = [] if rule_id is None else [history_table.c.rule_id == rule_id]
        query = (
            sa.select(history_table)
            .where(*clauses)
            .order_by(history_table.c.id.desc())
            .offset(offset)
        )
        if limit is not None:
            query = query.limit(limit)
        count_query = sa.select(sa.func.count()).select_from(history_table).where(*clauses)

        with self._translate_errors():
            with self.engine.connect() as connection:
                rows = connection.execute(query).all()
                total = connection.execute(count_query).scalar_one()

        entries = [
            HistoryEntry(
                id=row.id,
                rule_id=row.rule_id,
                action=row.action,
                user=row.user_name,
                timestamp=_utc(row.changed_at),
                before=row.before,
                after=row.after,
            )
            for row in rows
        ]
        return entries, total

    # -- conflicts -------------------------------------------------------------

    def _find_conflict(self, connection, rule: Rule, exclude_id: int | None = None) -> RuleConflict | None:
        project = _project_key(rule)
        same_place = [
            rule_table.c.schema_element == rule.schema_element,
            rule_table.c.scope == rule.scope,
            rule_table.c.project == project,
        ]
        if exclude_id is not None:
            same_place.append(rule_table.c.id != exclude_id)

        checks = (
            ("dicomTag", rule_table.c.dicom_tag == rule.dicom_tag, f"DICOM tag {rule.dicom_tag}"),
            ("fieldName", rule_table.c.field_name == rule.field_name, f"field name {rule.field_name!r}"),
        )
        for key, clause, what in checks:
            query = sa.select(rule_table.c.id).where(*same_place, clause).order_by(rule_table.c.id)
            existing_id = connection.execute(query).scalar()
            if existing_id is not None:
                return RuleConflict(
                    f"mapping rule {existing_id} already maps the {what} for {_describe(rule)}; "
                    f"change rule {existing_id} instead, or delete it first",
                    existing_id=existing_id,
                    key=key,
                )
        return None

    def _conflict_after_integrity_error(self, rule: Rule, exclude_id: int | None, exc: Exception) -> RuleConflict:
        # Another transaction stored the same key between our check and our write.
        with self._translate_errors():
            with self.engine.connect() as connection:
                conflict = self._find_conflict(connection, rule, exclude_id)
        if conflict is not None:
            return conflict
        return RuleConflict(f"the rule duplicates another mapping rule for {_describe(rule)}: {exc}")

    # -- writing ---------------------------------------------------------------

    def _add_history(self, connection, rule_id: int, action: str, user: str, before, after, now) -> None:
        connection.execute(
            history_table.insert().values(
                rule_id=rule_id, action=action, user_name=user, changed_at=now, before=before, after=after
            )
        )

    def _insert(self, connection, rule: Rule, user: str, now: datetime) -> StoredRule:
        conflict = self._find_conflict(connection, rule)
        if conflict is not None:
            raise conflict

        values = _rule_values(rule) | {
            "version": 1, "created_at": now, "created_by": user, "updated_at": now, "updated_by": user,
        }
        result = connection.execute(rule_table.insert().values(**values))
        rule_id = result.inserted_primary_key[0]
        stored = self._get(connection, rule_id)

        self._add_history(connection, rule_id, CREATE, user, None, stored.to_json(), now)
        return stored

    def _update(
        self, connection, rule_id: int, rule: Rule, user: str, now: datetime, expected_version: int | None
    ) -> StoredRule:
        before = self._get(connection, rule_id, for_update=True)
        if before is None:
            raise RuleNotFound(rule_id)
        if expected_version is not None and before.version != expected_version:
            raise StaleRule(rule_id, expected_version, before.version)

        conflict = self._find_conflict(connection, rule, exclude_id=rule_id)
        if conflict is not None:
            raise conflict

        values = _rule_values(rule) | {"version": before.version + 1, "updated_at": now, "updated_by": user}
        result = connection.execute(
            rule_table.update()
            .where(rule_table.c.id == rule_id, rule_table.c.version == before.version)
            .values(**values)
        )
        if result.rowcount != 1:
            current = self._get(connection, rule_id)
            if current is None:
                raise RuleNotFound(rule_id)
            raise StaleRule(rule_id, before.version, current.version)

        after = self._get(connection, rule_id)
        self._add_history(connection, rule_id, UPDATE, user, before.to_json(), after.to_json(), now)
        return after

    def _delete(self, connection, rule_id: int, user: str, now: datetime, expected_version: int | None) -> StoredRule:
        before = self._get(connection, rule_id, for_update=True)
        if before is None:
            raise RuleNotFound(rule_id)
        if expected_version is not None and before.version != expected_version:
            raise StaleRule(rule_id, expected_version, before.version)

        connection.execute(rule_table.delete().where(rule_table.c.id == rule_id))
        self._add_history(connection, rule_id, DELETE, user, before.to_json(), None, now)
        return before

    def create(self, rule: Rule, user: str) -> StoredRule:
        """Store a new rule; its ``id`` is ignored.

        Raises RuleConflict, naming the stored rule, when the rule duplicates
        one on (schema element, scope, project, tag) or (…, field name).
        """
        try:
            with self._translate_errors():
                with self.engine.begin() as connection:
                    stored = self._insert(connection, rule, user, _now())
        except sa.exc.IntegrityError as exc:
            raise self._conflict_after_integrity_error(rule, None, exc) from exc

        logger.info("mapping rule %s created by %s", stored.id, user)
        self._notify(CREATE, [stored.id])
        return stored

    def replace(self, rule_id: int, rule: Rule, user: str, *, expected_version: int | None = None) -> StoredRule:
        """Replace rule ``rule_id`` whole and raise its version by one.

        With ``expected_version``, raise StaleRule unless that is the current
        version. Raises RuleNotFound and RuleConflict as :meth:`create` does.
        """
        try:
            with self._translate_errors():
                with self.engine.begin() as connection:
                    stored = self._update(connection, rule_id, rule, user, _now(), expected_version)
        except sa.exc.IntegrityError as exc:
            raise self._conflict_after_integrity_error(rule, rule_id, exc) from exc

        logger.info("mapping rule %s updated to version %s by %s", rule_id, stored.version, user)
        self._notify(UPDATE, [rule_id])
        return stored

    def delete(self, rule_id: int, user: str, *, expected_version: int | None = None) -> StoredRule:
        """Delete rule ``rule_id`` and return it as it was; its history stays."""
        with self._translate_errors():
            with self.engine.begin() as connection:
                stored = self._delete(connection, rule_id, user, _now(), expected_version)

        logger.info("mapping rule %s deleted by %s", rule_id, user)
        self._notify(DELETE, [rule_id])
        return stored

    # -- import ------------------------------------------------------------------

    def _plan_import(self, connection, rules: Sequence[Rule], mode: str) -> ImportPlan:
        if mode not in IMPORT_MODES:
            raise ValueError(f"unknown import mode {mode!r}; use one of {', '.join(IMPORT_MODES)}")

        rows = connection.execute(sa.select(rule_table).order_by(rule_table.c.id)).all()
        stored_rules = [_stored_from_row(row) for row in rows]
        by_field = {}
        by_tag = {}
        for stored in stored_rules:
            place = (stored.rule.schema_element, stored.rule.scope, _project_key(stored.rule))
            by_field[place + (stored.rule.field_name,)] = stored
            by_tag[place + (stored.rule.dicom_tag,)] = stored

        plan = ImportPlan(mode=mode)
        errors: dict[str, list[str]] = {}
        seen_fields: dict[tuple, int] = {}
        seen_tags: dict[tuple, int] = {}
        matched: dict[int, int] = {}
        colliding: list[int] = []

        for index, rule in enumerate(rules):
            place = (rule.schema_element, rule.scope, _project_key(rule))
            field_key = place + (rule.field_name,)
            tag_key = place + (rule.dicom_tag,)
            problems = []

            if field_key in seen_fields:
                problems.append(f"duplicates the field name {rule.field_name!r} of rule {seen_fields[field_key]} in the bundle")
            if tag_key in seen_tags:
                problems.append(f"duplicates the DICOM tag {rule.dicom_tag} of rule {seen_tags[tag_key]} in the bundle")
            seen_fields.setdefault(field_key, index)
            seen_tags.setdefault(tag_key, index)

            by_field_match = by_field.get(field_key)
            by_tag_match = by_tag.get(tag_key)
            if by_field_match and by_tag_match and by_field_match.id != by_tag_match.id:
                problems.append(
                    f"matches stored rule {by_field_match.id} by field name and stored rule "
                    f"{by_tag_match.id} by DICOM tag; change or delete one of them first"
                )
                colliding += [by_field_match.id, by_tag_match.id]
            match = by_field_match or by_tag_match
            if match is not None and match.id in matched and not problems:
                problems.append(f"matches stored rule {match.id}, which rule {matched[match.id]} of the bundle also matches")

            if problems:
                errors[str(index)] = problems
                continue

            if match is None:
                plan.create.append(rule)
            elif _same_content(match, rule):
                matched[match.id] = index
                plan.unchanged.append(match)
            else:
                matched[match.id] = index
                plan.update.append((match, rule))

        if errors:
            raise BundleError("the import bundle contradicts itself or the stored rules; nothing was imported",
                              errors, existing_ids=colliding)

        if mode == "replace":
            plan.delete = [stored for stored in stored_rules if stored.id not in matched]
        return plan

    def plan_import(self, rules: Sequence[Rule], mode: str = "merge") -> ImportPlan:
        """Return what importing ``rules`` would change, changing nothing.

        A bundle rule matches the stored rule with the same schema element,
        scope, project and field name, or else the same tag. Ids in the bundle
        are ignored. Raises BundleError for contradicting rules.
        """
        with self._translate_errors():
            with self.engine.connect() as connection:
                return self._plan_import(connection, rules, mode)

    def import_rules(self, rules: Sequence[Rule], user: str, mode: str = "merge") -> ImportPlan:
        """Apply an import in one transaction: every change is stored, or none.

        A bundle rule that takes the tag or field name of another stored rule
        raises BundleError, because the unique keys are checked per statement.
        Such a move needs two imports, or a change of the rules one at a time.
        """
        now = _now()
        try:
            with self._translate_errors():
                with self.engine.begin() as connection:
                    plan = self._plan_import(connection, rules, mode)
                    for stored in plan.delete:
                        self._delete(connection, stored.id, user, now, stored.version)
                    for stored, rule in plan.update:
                        self._update(connection, stored.id, rule, user, now, stored.version)
                    for rule in plan.create:
                        plan.created.append(self._insert(connection, rule, user, now))
        except sa.exc.IntegrityError as exc:
            raise RuleConflict(f"the import collides with a rule stored meanwhile; nothing was imported: {exc.orig}") from exc

        changed = [s.id for s in plan.delete] + [s.id for s, _ in plan.update] + [s.id for s in plan.created]
        logger.info(
            "mapping rules imported by %s: %d created, %d updated, %d deleted",
            user, len(plan.created), len(plan.update), len(plan.delete),
        )
        if changed:
            self._notify("import", changed)
        return plan


def create_engine(url: str, options: dict | None = None) -> sa.engine.Engine:
    """Create the engine of the rule store, always with ``pool_pre_ping``."""
    engine_options = {"pool_pre_ping": True}
    engine_options.update(options or {})
    return sa.create_engine(url, **engine_options)
