"""Access control of the API: administrators only, and CSRF tokens for cookie sessions."""

from __future__ import annotations

import functools
import hmac
import logging
import secrets
from typing import Any, Callable

from flask import current_app, g, request, session
from flask_login.signals import user_loaded_from_request
from werkzeug.exceptions import Forbidden, Unauthorized

logger = logging.getLogger(__name__)

#: Key of the CSRF token in ``flask.session``.
CSRF_SESSION_KEY = "_dicom_mappings_csrf_token"

#: Methods that change state and so need the CSRF token on cookie sessions.
STATE_CHANGING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

#: Attribute of ``flask.g`` that contains the user whom the host's flask-login
#: request_loader returned for this request.
_REQUEST_LOADER_USER = "_dicom_mappings_request_loader_user"


def _remember_request_loader_user(sender, user, **extra) -> None:
    # flask-login sends user_loaded_from_request only when the request_loader,
    # not the session cookie or the remember-me cookie, returned a user. It
    # caches that user in flask.g for the rest of the request, and so does this.
    setattr(g, _REQUEST_LOADER_USER, user)


# Connected at import time, so the receiver is in place before the first
# request loads a user. Blinker keeps only a weak reference to the receiver,
# which is enough because this module keeps the function alive.
user_loaded_from_request.connect(_remember_request_loader_user)


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


def authenticated_by_authorization_header() -> bool:
    """Return whether the host's request_loader authenticated this request from its ``Authorization`` header.

    Both must hold: flask-login loaded the current user through the
    request_loader, and the request carries an ``Authorization`` header. The
    request_loader runs only when the session cookie named no valid user and no
    remember-me cookie was sent, so a request that a cookie authenticated never
    counts, whatever headers it also carries. Requiring the header as well keeps
    a request_loader that reads a cookie of its own from counting.

    NOTE: a user that flask-login's deprecated ``header_loader`` returns does
    not count, so such a host's header-authenticated writes need the token.
    """
    if "Authorization" not in request.headers:
        return False

    user = current_user()  # loads the user, and so runs the request_loader, if not done yet
    return user is not None and g.get(_REQUEST_LOADER_USER) is user


def check_csrf() -> None:
    """Raise Forbidden when a state-changing request that a cookie authenticated lacks the CSRF token.

    Only a request that the host's request_loader authenticated from the
    ``Authorization`` header (HTTP Basic, bearer token) is exempt, because a
    cross-site form cannot set that header. Any other ``Authorization`` header
    changes nothing: with a logged-in session cookie, flask-login takes the
    user from the session and never calls the request_loader, so the cookie
    authenticated the request and the token is required.

    NOTE: a browser that has cached HTTP Basic credentials for the site sends
    them on cross-site requests too. Setting ``DICOM_MAPPINGS_AUTH_CHALLENGE``
    to a Basic challenge makes browsers prompt for and cache them.
    """
    settings = _extension().settings
    if not settings["DICOM_MAPPINGS_CSRF_ENABLED"]:
        return
    if request.method not in STATE_CHANGING_METHODS or authenticated_by_authorization_header():
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
