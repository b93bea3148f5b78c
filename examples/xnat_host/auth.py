"""Accounts and sign-in: HTTP Basic for API clients, a login form for browsers.

Both go through flask-login, so the plugin sees the same ``current_user``
either way. State-changing requests that rely on the session cookie must
carry the ``X-CSRFToken`` header (or a ``csrf_token`` form field) with the
token from :func:`xnat_dicom_mappings.security.csrf_token`, the same token
that the plugin's API checks.
"""

from __future__ import annotations

import hmac
import logging
from functools import wraps
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import Blueprint, abort, redirect, render_template_string, request, url_for
from flask_login import LoginManager, current_user, login_user, logout_user
from sqlalchemy.orm import Session as DbSession

from .models import ADMINISTRATOR_ROLE, Role, User

log = logging.getLogger(__name__)

login_manager = LoginManager()
login_manager.login_view = "auth.login"

bp = Blueprint("auth", __name__)

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


def seed_accounts(db: DbSession, config) -> None:
    """Create the administrator and the regular user named in the configuration.

    Accounts that already exist keep their password, so a password changed
    in the database survives a restart.
    """
    admin_role = db.scalar(sa.select(Role).where(Role.name == ADMINISTRATOR_ROLE))
    if admin_role is None:
        admin_role = Role(name=ADMINISTRATOR_ROLE)
        db.add(admin_role)

    accounts = [
        (config["HOST_ADMIN_USERNAME"], config["HOST_ADMIN_PASSWORD"], [admin_role]),
        (config["HOST_USER_USERNAME"], config["HOST_USER_PASSWORD"], []),
    ]
    for username, password, roles in accounts:
        if db.scalar(sa.select(User).where(User.username == username)) is not None:
            continue

        user = User(username=username, role_objects=roles)
        user.set_password(password)
        db.add(user)
        log.info("created account %s", username)

    db.commit()


def _auth_session():
    """Open a session of its own for loading the signed-in user.

    It is closed as soon as the user is loaded (roles included), so the
    connection goes back to the pool at once. With the request's session, a
    request would hold one connection for the user and take a second for the
    plugin's rule store, and a burst of requests could exhaust the pool.
    """
    from flask import current_app

    return current_app.extensions["xnat_host"].session_factory()


def _find_user(username: str) -> User | None:
    with _auth_session() as db:
        return db.scalar(sa.select(User).where(User.username == username))


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    try:
        key = int(user_id)
    except ValueError:
        return None

    with _auth_session() as db:
        return db.get(User, key)


@login_manager.request_loader
def load_user_from_basic_auth(req) -> User | None:
    """Return the user of a valid ``Authorization: Basic`` header, else None."""
    credentials = req.authorization
    if credentials is None or credentials.type != "basic":
        return None

    user = _find_user(credentials.username or "")
    if user is None or not user.check_password(credentials.password or ""):
        log.warning("HTTP Basic sign-in failed for user %r from %s",
                    credentials.username, req.remote_addr)
        return None
    return user


def _wants_json() -> bool:
    return request.path.startswith(("/data/", "/xapi/")) or request.accept_mimetypes.best == "application/json"


@login_manager.unauthorized_handler
def unauthorized():
    if _wants_json():
        abort(401)
    return redirect(url_for("auth.login", next=request.full_path))


def check_csrf() -> None:
    """Abort with 403 when a cookie-authenticated state change lacks the CSRF token."""
    from xnat_dicom_mappings.security import authenticated_by_authorization_header, csrf_token

    # Only a request that HTTP Basic itself authenticated is exempt: a junk
    # Authorization header beside the session cookie still needs the token.
    if request.method in _SAFE_METHODS or authenticated_by_authorization_header():
        return

    sent = request.headers.get("X-CSRFToken") or request.form.get("csrf_token") or ""
    # Bytes, because compare_digest raises TypeError on str with non-ASCII characters.
    if not hmac.compare_digest(sent.encode(), csrf_token().encode()):
        abort(403, description="the X-CSRFToken header is missing or does not match "
                               "the token of this session; reload the page and retry")


def api_login_required(view):
    """Require a signed-in user; 401 with a JSON body otherwise, never a redirect."""
    @wraps(view)
    def wrapper(*args, **kwargs):
        if not current_user.is_authenticated:
            abort(401)
        check_csrf()
        return view(*args, **kwargs)
    return wrapper


def api_admin_required(view):
    """Require an administrator: 401 for no user, 403 for a regular user."""
    @wraps(view)
    def wrapper(*args, **kwargs):
        if not current_user.is_authenticated:
            abort(401)
        if not current_user.is_admin:
            abort(403, description=f"user {current_user.username} is not an administrator; "
                                   f"this request needs the {ADMINISTRATOR_ROLE} role")
        check_csrf()
        return view(*args, **kwargs)
    return wrapper


_LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in</title></head>
<body>
<h1>Sign in</h1>
{% if error %}<p role="alert">{{ error }}</p>{% endif %}
<form method="post">
  <input type="hidden" name="csrf_token" value="{{ token }}">
  <input type="hidden" name="next" value="{{ next }}">
  <p><label>User name <input name="username" autocomplete="username" required></label></p>
  <p><label>Password <input name="password" type="password" autocomplete="current-password" required></label></p>
  <p><button type="submit">Sign in</button></p>
</form>
</body></html>
"""


def _safe_next(target: str | None) -> str:
    # Only local paths, so the login form cannot send a user to another site.
    parts = urlsplit(target or "")
    if not target or parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("views.index")
    return target


@bp.route("/login", methods=["GET", "POST"])
def login():
    from xnat_dicom_mappings.security import csrf_token

    error = None
    next_url = request.values.get("next", "")
    if request.method == "POST":
        check_csrf()
        user = _find_user(request.form.get("username", ""))
        if user is not None and user.check_password(request.form.get("password", "")):
            login_user(user)
            log.info("user %s signed in with the login form", user.username)
            return redirect(_safe_next(next_url))

        log.warning("login form sign-in failed for user %r from %s",
                    request.form.get("username"), request.remote_addr)
        error = "The user name or password is wrong."

    status = 401 if error else 200
    return render_template_string(_LOGIN_PAGE, error=error, token=csrf_token(), next=next_url), status


@bp.route("/logout", methods=["POST"])
def logout():
    check_csrf()
    logout_user()
    return redirect(url_for("auth.login"))


def current_user_name() -> str:
    """Return the signed-in user's name for the audit columns."""
    return current_user.username if current_user.is_authenticated else "anonymous"


__all__ = [
    "api_admin_required", "api_login_required", "bp", "check_csrf", "current_user_name",
    "login_manager", "seed_accounts",
]
