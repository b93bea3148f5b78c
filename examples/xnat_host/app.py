"""The application factory of the reference host."""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import sqlalchemy as sa
from flask import Flask, g, request
from sqlalchemy.orm import sessionmaker
from werkzeug.exceptions import HTTPException

from xnat_dicom_mappings.plugins import register_plugins

from . import auth, views
from .host import ArchiveHost
from .models import Base
from .upload import UploadLimits

log = logging.getLogger(__name__)

#: Plugin id of xnat-dicom-mappings in its plugin.yaml.
PLUGIN_ID = "dicom-mappings"

_MIB = 1024 * 1024


def default_config() -> dict[str, Any]:
    """Return the host's configuration keys with their defaults.

    The seeded accounts come from the environment variables
    ``XNAT_HOST_ADMIN_USERNAME``, ``XNAT_HOST_ADMIN_PASSWORD``,
    ``XNAT_HOST_USER_USERNAME`` and ``XNAT_HOST_USER_PASSWORD`` when set.
    """
    return {
        # SQLAlchemy URL shared by the host and the plugin; None means an
        # SQLite file "archive.sqlite3" in the data directory.
        "HOST_DATABASE_URL": None,
        "HOST_ADMIN_USERNAME": os.environ.get("XNAT_HOST_ADMIN_USERNAME", "admin"),
        "HOST_ADMIN_PASSWORD": os.environ.get("XNAT_HOST_ADMIN_PASSWORD", "admin"),
        "HOST_USER_USERNAME": os.environ.get("XNAT_HOST_USER_USERNAME", "user"),
        "HOST_USER_PASSWORD": os.environ.get("XNAT_HOST_USER_PASSWORD", "user"),
        # Largest import request body, in bytes.
        "HOST_IMPORT_MAX_UPLOAD_BYTES": 512 * _MIB,
        # Largest total unpacked size of one import, in bytes.
        "HOST_IMPORT_MAX_UNPACKED_BYTES": 2048 * _MIB,
        # Largest number of zip members in one import.
        "HOST_IMPORT_MAX_MEMBERS": 20000,
        # Largest unpacked-to-packed size ratio of a zip member above 1 MiB.
        "HOST_IMPORT_MAX_COMPRESSION_RATIO": 200.0,
        "PLUGINS": [PLUGIN_ID],
        "SESSION_COOKIE_SAMESITE": "Lax",
    }


@dataclass
class HostState:
    """What the host's views need, kept in ``app.extensions["xnat_host"]``."""

    engine: sa.Engine
    session_factory: sessionmaker
    host: ArchiveHost
    mappings: Any  # xnat_dicom_mappings.DicomMappings
    data_dir: Path
    limits: UploadLimits


def create_app(data_dir: str | os.PathLike, config: Mapping[str, Any] | None = None) -> Flask:
    """Build the host: its tables, seeded accounts, routes and the registered plugin.

    ``data_dir`` contains the stored DICOM files, the default SQLite database
    and the secret key file. ``config`` overrides :func:`default_config`.
    """
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)

    app = Flask(__name__, instance_path=str(data_dir))
    app.config.update(default_config())
    app.config.update(config or {})
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _secret_key(data_dir)

    database_url = app.config["HOST_DATABASE_URL"] or f"sqlite:///{data_dir / 'archive.sqlite3'}"
    engine = _create_engine(database_url)
    Base.metadata.create_all(engine)
    session_factory = sessionmaker(engine, expire_on_commit=False)
    with session_factory() as db:
        auth.seed_accounts(db, app.config)

    auth.login_manager.init_app(app)
    app.register_blueprint(auth.bp)
    app.register_blueprint(views.bp)
    _register_error_handlers(app)
    app.teardown_appcontext(_close_db_session)

    host = ArchiveHost(session_factory)
    plugin_options = {PLUGIN_ID: {"host": host, "engine": engine}}
    plugin_options.update(app.config.get("PLUGIN_OPTIONS", {}))
    extensions = register_plugins(app, options=plugin_options)

    app.extensions["xnat_host"] = HostState(
        engine=engine,
        session_factory=session_factory,
        host=host,
        mappings=extensions[PLUGIN_ID],
        data_dir=data_dir,
        limits=UploadLimits(
            max_upload_bytes=int(app.config["HOST_IMPORT_MAX_UPLOAD_BYTES"]),
            max_unpacked_bytes=int(app.config["HOST_IMPORT_MAX_UNPACKED_BYTES"]),
            max_members=int(app.config["HOST_IMPORT_MAX_MEMBERS"]),
            max_compression_ratio=float(app.config["HOST_IMPORT_MAX_COMPRESSION_RATIO"]),
        ),
    )
    log.info("reference host ready: data directory %s, database %s",
             data_dir, engine.url.render_as_string(hide_password=True))
    return app


def _create_engine(url: str) -> sa.Engine:
    engine = sa.create_engine(url, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        # SQLite leaves foreign keys off unless each connection turns them on.
        @sa.event.listens_for(engine, "connect")
        def _enable_foreign_keys(connection, _record):
            cursor = connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()
    return engine


def _secret_key(data_dir: Path) -> str:
    """Return the session-signing key kept in the data directory, creating it once."""
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text(encoding="ascii").strip()

    key = secrets.token_hex(32)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as file:
        file.write(key)
    return key


def db_session():
    """Return the database session of the current request, opening it on first use."""
    if "host_db" not in g:
        from flask import current_app

        g.host_db = current_app.extensions["xnat_host"].session_factory()
    return g.host_db


def _close_db_session(_exc) -> None:
    db = g.pop("host_db", None)
    if db is not None:
        db.close()


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def handle_http_error(error: HTTPException):
        # Routes under /data return JSON. Everything else (the login form, the
        # plugin's blueprints with their own handlers) keeps Flask's default.
        if request.path.startswith("/data/") or request.path == "/data":
            return views.json_error(error)
        return error
