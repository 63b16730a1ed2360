"""``greengrader db``: migrations."""

from __future__ import annotations

import click

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
@click.argument("revision", default="base")
def downgrade(revision: str) -> None:
    """Migrate the database down to REVISION (default: base, i.e. drop everything)."""
    get_database(get_settings()).downgrade(revision)
    click.echo(f"database at {revision}")


@db_group.command("check")
def check() -> None:
    """Fail if the models and the migrations disagree."""
    get_database(get_settings()).check()
    click.echo("models and migrations agree")


def register(group: click.Group) -> None:
    group.add_command(db_group)
