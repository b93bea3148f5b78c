"""The ``flask dicom-mappings`` command group."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from .errors import StoreUnavailable
from .storage import RuleStore

dicom_mappings = AppGroup("dicom-mappings", help="Manage the DICOM mapping rules of xnat-dicom-mappings.")


@dicom_mappings.group("db")
def db() -> None:
    """Manage the schema of the rule database (Alembic migrations)."""


def _store() -> RuleStore:
    ext = current_app.extensions.get("dicom_mappings")
    if ext is None:
        raise click.ClickException(
            "this app does not register the extension; call DicomMappings(app) in the app factory"
        )
    return RuleStore(ext.engine)


def _url(store: RuleStore) -> str:
    return store.engine.url.render_as_string(hide_password=True)


@db.command("upgrade")
@click.argument("revision", default="head")
def upgrade(revision: str) -> None:
    """Apply the packaged migrations up to REVISION (default: head)."""
    store = _store()
    try:
        store.upgrade(revision)
        current = store.current_revision()
    except StoreUnavailable as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{_url(store)} is at revision {current}")


@db.command("downgrade")
@click.argument("revision")
def downgrade(revision: str) -> None:
    """Revert the packaged migrations down to REVISION ("base" drops the tables and their rules)."""
    store = _store()
    try:
        store.downgrade(revision)
        current = store.current_revision()
    except StoreUnavailable as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{_url(store)} is at revision {current or 'base'}")


@db.command("current")
def current() -> None:
    """Show the revision of the rule database and whether it is the newest."""
    store = _store()
    try:
        revision = store.current_revision()
    except StoreUnavailable as exc:
        raise click.ClickException(str(exc)) from exc

    head = store.head_revision()
    if revision is None:
        click.echo(f"{_url(store)} has no rule tables; run `flask dicom-mappings db upgrade`")
    elif revision == head:
        click.echo(f"{_url(store)} is at revision {revision} (head)")
    else:
        click.echo(f"{_url(store)} is at revision {revision}; the newest is {head}, run `flask dicom-mappings db upgrade`")
