"""Configuration keys of the extension, with their defaults.

Every key starts with ``DICOM_MAPPINGS_``. A host sets them in ``app.config``
or passes them to :class:`~xnat_dicom_mappings.DicomMappings` as keyword
options, either as the full key or as the lowercase rest of it
(``auto_migrate=False`` sets ``DICOM_MAPPINGS_AUTO_MIGRATE``). Keyword options
win over ``app.config``, and ``app.config`` wins over the defaults below.
"""

from __future__ import annotations

from typing import Any, Mapping

PREFIX = "DICOM_MAPPINGS_"

#: SQLAlchemy URL of the rule database. ``None`` keeps the rules in an SQLite
#: file named by ``DICOM_MAPPINGS_SQLITE_FILENAME`` in ``app.instance_path``.
DICOM_MAPPINGS_DATABASE_URL: str | None = None

#: File name of the default SQLite database inside ``app.instance_path``.
DICOM_MAPPINGS_SQLITE_FILENAME = "dicom_mappings.sqlite3"

#: Extra keyword arguments for ``sqlalchemy.create_engine``. ``pool_pre_ping``
#: is always on, so a pool recovers by itself after the database comes back.
DICOM_MAPPINGS_ENGINE_OPTIONS: dict = {}

#: Apply the packaged Alembic migrations on first use. With ``False`` the
#: schema must be brought up to date with ``flask dicom-mappings db upgrade``.
#: Until then every API request fails with 503, and the log names that command.
DICOM_MAPPINGS_AUTO_MIGRATE = True

#: URL prefix of the REST API. XNAT serves the same routes at ``/xapi/dicom_mappings``.
DICOM_MAPPINGS_URL_PREFIX = "/xapi/dicom_mappings"

#: Largest request body, in bytes, for every route except ``/import``.
#: A larger body fails with 413.
DICOM_MAPPINGS_MAX_BODY_BYTES = 64 * 1024

#: Largest body, in bytes, of ``POST /import``.
DICOM_MAPPINGS_MAX_IMPORT_BYTES = 8 * 1024 * 1024

#: Maximum number of rules that one ``POST /import`` accepts. A larger bundle
#: fails with 413 before any of its rules is validated. Every rule of an import
#: is validated and written in one request and one transaction, so this bounds
#: the time and memory of that request.
DICOM_MAPPINGS_MAX_IMPORT_RULES = 10_000

#: Maximum number of files in one ``POST /preview``, zip members counted one by one.
DICOM_MAPPINGS_PREVIEW_MAX_FILES = 500

#: Largest total size, in bytes, of the files of one ``POST /preview`` once
#: unzipped. A larger upload gets a 413.
DICOM_MAPPINGS_PREVIEW_MAX_BYTES = 64 * 1024 * 1024

#: Largest ``pageSize`` a list or history request may ask for.
DICOM_MAPPINGS_MAX_PAGE_SIZE = 1000

#: Require the ``X-CSRFToken`` header on state-changing requests, except on
#: those that the host's flask-login request_loader authenticated from the
#: ``Authorization`` header. A request that the session cookie authenticated
#: needs the token even when it also carries an ``Authorization`` header.
DICOM_MAPPINGS_CSRF_ENABLED = True

#: Name of the request header that carries the CSRF token.
DICOM_MAPPINGS_CSRF_HEADER = "X-CSRFToken"

#: Value of the ``WWW-Authenticate`` header on 401 responses, such as
#: ``'Basic realm="XNAT"'``. ``None`` sends no header, so a browser page that
#: calls the API never pops up its own login dialog.
DICOM_MAPPINGS_AUTH_CHALLENGE: str | None = None

#: Seconds that the archive hook keeps the rules in memory. Every rule change
#: made through this process clears the cache at once. The limit bounds how
#: long another process (another worker of the same site) can apply old rules.
#: ``None`` keeps them until the next change in this process.
DICOM_MAPPINGS_RULE_CACHE_SECONDS: float | None = 60.0

#: Files given by path that an archived session needs before the archive hook
#: reads them in a pool of worker processes, one per usable CPU, when the
#: machine has at least two. The pool starts on the first such session and
#: runs until the process exits or calls ``pool.shutdown_pool()``. ``None``
#: reads every file in the calling process. NOTE: a server that runs several
#: processes gets one pool in each.
DICOM_MAPPINGS_PARALLEL_MIN_FILES: int | None = 200

#: Register the admin page blueprint.
DICOM_MAPPINGS_ADMIN_ENABLED = True

#: URL prefix of the admin page.
DICOM_MAPPINGS_ADMIN_URL = "/admin/dicom-mappings"

#: Register the REST API blueprint. Turn off for a process that only archives.
DICOM_MAPPINGS_API_ENABLED = True


def defaults() -> dict[str, Any]:
    """Return every configuration key of this module with its default value."""
    values = {}
    for name, value in globals().items():
        if name.startswith(PREFIX):
            values[name] = value.copy() if isinstance(value, dict) else value
    return values


def option_key(name: str) -> str:
    """Return the configuration key for a keyword option or a full key.

    Raises ``TypeError`` for a name that is not one of the keys above, so a
    misspelt option fails at start-up instead of being ignored.
    """
    key = name if name.startswith(PREFIX) else PREFIX + name.upper()
    if key not in defaults():
        known = ", ".join(sorted(k[len(PREFIX):].lower() for k in defaults()))
        raise TypeError(f"unknown DicomMappings option {name!r}; known options: {known}")
    return key


def resolve(app_config: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """Return the effective settings: options, then ``app_config``, then the defaults."""
    settings = defaults()
    for key in settings:
        if key in app_config:
            settings[key] = app_config[key]
    for name, value in options.items():
        settings[option_key(name)] = value
    return settings
