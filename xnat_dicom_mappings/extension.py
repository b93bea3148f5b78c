"""The Flask extension: configuration, storage, blueprints and the archive hook."""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any, Callable, Sequence

import sqlalchemy as sa
from flask import Flask

from . import config, signals
from .errors import StoreUnavailable
from .host import DefaultHost, Host
from .rules import Rule
from .storage import RuleStore, create_engine

logger = logging.getLogger(__name__)

#: Key of the extension in ``app.extensions``.
EXTENSION_KEY = "dicom_mappings"


class RuleCache:
    """Every rule in memory for the archive hook, loaded on first use.

    :meth:`invalidate` drops them; the next :meth:`get` loads them again.
    Loading holds the lock, so threads that find the cache empty together
    cause one load, and an invalidation during a load is applied after it.
    """

    def __init__(self, max_age: float | None = None):
        self.max_age = max_age
        self._lock = threading.Lock()
        self._rules: list[Rule] | None = None
        self._loaded_at = 0.0

    def get(self, load: Callable[[], list[Rule]]) -> list[Rule]:
        """Return the cached rules, calling ``load`` when there are none or they are too old."""
        with self._lock:
            expired = self.max_age is not None and time.monotonic() - self._loaded_at > self.max_age
            if self._rules is None or expired:
                try:
                    self._rules = load()
                except StoreUnavailable:
                    if self._rules is None:
                        raise
                    # Only the age limit expired and no change is known, so
                    # the rules in memory remain the best source until the
                    # database is back.
                    logger.warning("rule database unavailable; archiving with the rules loaded %.0f s ago",
                                   time.monotonic() - self._loaded_at)
                    return self._rules
                self._loaded_at = time.monotonic()
            return self._rules

    def invalidate(self) -> None:
        with self._lock:
            self._rules = None


class DicomMappings:
    """XNAT's custom DICOM mappings for a Flask archive.

    ``host`` answers questions about projects, xsi types, custom variables and
    administrators (:class:`~xnat_dicom_mappings.host.DefaultHost` when not
    given). ``engine`` or ``database_url`` choose the rule database; without
    either, ``DICOM_MAPPINGS_DATABASE_URL`` or an SQLite file in the instance
    folder is used. Other keyword options set configuration keys of
    :mod:`~xnat_dicom_mappings.config` and win over ``app.config``.

    One instance serves one app; create another instance for another app.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        host: Host | None = None,
        engine: sa.engine.Engine | None = None,
        database_url: str | None = None,
        **options: Any,
    ):
        self.host = host if host is not None else DefaultHost()
        self.app: Flask | None = None
        self.settings: dict[str, Any] = config.defaults()

        self._options = {config.option_key(name): value for name, value in options.items()}
        if database_url is not None:
            self._options["DICOM_MAPPINGS_DATABASE_URL"] = database_url
        self._engine = engine
        self._owns_engine = False
        self._store: RuleStore | None = None
        self._store_lock = threading.Lock()
        self._cache = RuleCache()

        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Read the configuration, register the API and admin blueprints and the CLI state."""
        if self.app is not None and self.app is not app:
            raise RuntimeError("this DicomMappings instance already serves another app; create one per app")

        self.settings = config.resolve(app.config, self._options)
        for key, value in self.settings.items():
            app.config.setdefault(key, value)
        self._cache.max_age = self.settings["DICOM_MAPPINGS_RULE_CACHE_SECONDS"]
        self.app = app
        app.extensions[EXTENSION_KEY] = self

        if self.settings["DICOM_MAPPINGS_API_ENABLED"]:
            from .api import blueprint

            app.register_blueprint(blueprint, url_prefix=self.settings["DICOM_MAPPINGS_URL_PREFIX"])

        if self.settings["DICOM_MAPPINGS_ADMIN_ENABLED"]:
            self._register_admin(app)

    def _register_admin(self, app: Flask) -> None:
        try:
            from . import admin
        except ImportError as exc:
            if exc.name != f"{__package__}.admin":
                raise
            logger.warning("the admin page is not installed, so %s stays unregistered",
                           self.settings["DICOM_MAPPINGS_ADMIN_URL"])
            return
        app.register_blueprint(admin.create_admin_blueprint(self), url_prefix=self.settings["DICOM_MAPPINGS_ADMIN_URL"])

    # -- storage -------------------------------------------------------------

    @property
    def engine(self) -> sa.engine.Engine:
        """The engine of the rule database, created on first use."""
        if self._engine is None:
            with self._store_lock:
                if self._engine is None:
                    self._engine = create_engine(self._database_url(), self.settings["DICOM_MAPPINGS_ENGINE_OPTIONS"])
                    self._owns_engine = True
        return self._engine

    def _database_url(self) -> str:
        url = self.settings["DICOM_MAPPINGS_DATABASE_URL"]
        if url:
            return url
        if self.app is None:
            raise RuntimeError("call init_app(app) first, or pass database_url or engine")

        os.makedirs(self.app.instance_path, exist_ok=True)
        path = os.path.join(self.app.instance_path, self.settings["DICOM_MAPPINGS_SQLITE_FILENAME"])
        return f"sqlite:///{path}"

    @property
    def store(self) -> RuleStore:
        """The rule store, with its schema migrated (or checked) on first use.

        Raises StoreUnavailable while the database cannot be reached or is
        not at the newest revision; a later call tries again.
        """
        if self._store is not None:
            return self._store

        engine = self.engine
        with self._store_lock:
            if self._store is None:
                store = RuleStore(engine)
                if self.settings["DICOM_MAPPINGS_AUTO_MIGRATE"]:
                    store.upgrade()
                else:
                    store.check_schema()
                store.add_listener(self._rules_changed)
                self._store = store
        return self._store

    def close(self) -> None:
        """Dispose of the engine's connections if this extension created the engine."""
        if self._owns_engine and self._engine is not None:
            self._engine.dispose()

    # -- rules for archiving ---------------------------------------------------

    def _rules_changed(self, action: str, rule_ids: Sequence[int]) -> None:
        self._cache.invalidate()
        signals.send_safely(signals.rules_changed, self.app, action=action, rule_ids=list(rule_ids))

    def rules(self) -> list[Rule]:
        """Return every stored rule through the in-process cache.

        Every change through this extension's store clears the cache, on any
        thread. Changes made by another process show after at most
        ``DICOM_MAPPINGS_RULE_CACHE_SECONDS``.
        """
        return self._cache.get(self.store.all_rules)

    def extract_session(self, *, project: str | None, session_type: str, scans, session_id: str | None = None):
        """Extract the mapped values of one archived session.

        Loads the rules (from the cache, so at most one SQL statement), runs
        ``extractor.extract_session`` and sends ``signals.session_extracted``
        with the result. A receiver that raises is logged and the result is
        still returned.

        Files given by path are read in worker processes when the session
        has at least ``DICOM_MAPPINGS_PARALLEL_MIN_FILES`` of them.

        Bad files, tags and values never raise; they are problems in the
        result. When the rule database cannot be reached, the rules loaded
        before are used if the cache only aged out; with no rules loaded yet
        (or after a known change) it raises
        :class:`~xnat_dicom_mappings.errors.StoreUnavailable`, so the host can
        retry instead of archiving without the mappings.
        """
        from . import extractor

        rules = self.rules()
        if project:
            project = self.host.canonical_project(project) or project

        min_files = self.settings["DICOM_MAPPINGS_PARALLEL_MIN_FILES"]
        result = extractor.extract_session(
            rules, session_type=session_type, scans=scans, project=project, session_id=session_id,
            workers=1 if min_files is None else None, parallel_min_files=min_files,
        )
        signals.send_safely(
            signals.session_extracted, self.app,
            result=result, project=project, session_type=session_type, session_id=session_id,
        )
        return result
