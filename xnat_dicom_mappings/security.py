"""Access control of the API: administrators only, and CSRF tokens for cookie sessions."""

from __future__ import annotations

import functools
import hmac
import logging
import secrets
from typing import Any, Callable

from flask import current_app, request, session
from werkzeug.exceptions import Forbidden, Unauthorized

logger = logging.getLogger(__name__)

#: Key of the CSRF token in ``flask.session``.
CSRF_SESSION_KEY = "_dicom_mappings_csrf_token"

#: Methods that change state and so need the CSRF token on cookie sessions.
STATE_CHANGING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def csrf_token() -> str:
    """Return the CSRF token of the current session, creating it on first use.

    A page that calls the API with the session cookie sends it back in the
    ``X-CSRFToken`` header (``DICOM_MAPPINGS_CSRF_HEADER``).
    """
    token = session.get(CSRF_SESSION_KEY)
    if not token:
        token = secrets.token_urlsafe(32)
        session[CSRF_SESSION_KEY] = token
    return token


def current_user() -> Any:
    """Return flask-login's current user, or ``None`` when the app has no LoginManager."""
    if not hasattr(current_app, "login_manager"):
        return None

    from flask_login import current_user as proxy

    return proxy._get_current_object()


def _extension():
    return current_app.extensions["dicom_mappings"]


def require_admin() -> Any:
    """Return the current user, or raise Unauthorized or Forbidden.

    Unauthorized (401) when no user is logged in, Forbidden (403) when the
    user is not an administrator according to the host.
    """
    ext = _extension()
    user = current_user()

    if user is None or not getattr(user, "is_authenticated", False):
        raise Unauthorized("Authentication required: log in as an administrator or send HTTP Basic credentials.")

    if not ext.host.is_admin(user):
        logger.warning(
            "rejected %s %s: user %s is not an administrator",
            request.method, request.path, ext.host.user_name(user),
        )
        raise Forbidden("Only administrators may read or change DICOM mapping rules.")

    return user


def check_csrf() -> None:
    """Raise Forbidden when a state-changing cookie-session request lacks the CSRF token.

    A request with an ``Authorization`` header (HTTP Basic, bearer token)
    carries its own credentials, which a cross-site form cannot send, so it
    needs no token.
    """
    settings = _extension().settings
    if not settings["DICOM_MAPPINGS_CSRF_ENABLED"]:
        return
    if request.method not in STATE_CHANGING_METHODS or "Authorization" in request.headers:
        return

    header = settings["DICOM_MAPPINGS_CSRF_HEADER"]
    sent = request.headers.get(header, "")
    expected = session.get(CSRF_SESSION_KEY, "")
    if not sent or not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        logger.warning("rejected %s %s: missing or wrong CSRF token", request.method, request.path)
        raise Forbidden(
            f"Missing or invalid CSRF token: a request that relies on the session cookie must send "
            f"the header {header} with the token of this session, or authenticate with HTTP Basic instead."
        )


def admin_required(view: Callable) -> Callable:
    """Decorate a view so that only an administrator reaches it, with the CSRF check.

    The API blueprint applies the same checks to every one of its routes; this
    decorator is for host views that act on mapping rules.
    """

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        require_admin()
        check_csrf()
        return view(*args, **kwargs)

    return wrapper
