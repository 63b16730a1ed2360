"""``greengrader db``: migrations."""

from __future__ import annotations

import click

from greengrader.cli.common import confirm_destructive, yes_option
from greengrader.db import get_database
from greengrader.settings import get_settings


@click.group("db")
def db_group() -> None:
    """Database migrations (Alembic)."""


@db_group.command("upgrade")
@click.argument("revision", default="head")
def upgrade(revision: str) -> None:
    """Migrate the database up to REVISION (default: head)."""
    get_database(get_settings()).upgrade(revision)
    click.echo(f"database at {revision}")


@db_group.command("downgrade")
@click.argument("revision")
@yes_option
def downgrade(revision: str, yes: bool) -> None:
    """Migrate the database down to REVISION (e.g. -1, or base: drop every table).

    Dropped tables lose their data, so this asks first (default no) unless --yes is given.
    """
    db = get_database(get_settings())
    confirm_destructive(
        f"Downgrade {db.url} to {revision!r}? Tables dropped on the way lose their data.", yes
    )
    db.downgrade(revision)
    click.echo(f"database at {revision}")


@db_group.command("check")
def check() -> None:
    """Fail if the models and the migrations disagree."""
    get_database(get_settings()).check()
    click.echo("models and migrations agree")


def register(group: click.Group) -> None:
    group.add_command(db_group)
