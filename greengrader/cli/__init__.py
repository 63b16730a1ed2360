"""The ``greengrader`` command line: a thin click layer over library calls.

Command groups live in one module each (``greengrader/cli/<topic>.py``) exposing
``register(group)``; they are listed in :data:`COMMAND_MODULES`.
"""

from __future__ import annotations

import importlib
import sys

import click
from alembic.util.exc import CommandError as AlembicCommandError
from sqlalchemy.exc import SQLAlchemyError

from greengrader import __version__
from greengrader.errors import DatabaseError, GreengraderError

COMMAND_MODULES: tuple[str, ...] = (
    "greengrader.cli.carbon",
    "greengrader.cli.db",
    "greengrader.cli.demo",
    "greengrader.cli.doctor",
    "greengrader.cli.grading",
    "greengrader.cli.ops",
    "greengrader.cli.retention",
    "greengrader.cli.scheduling",
    "greengrader.cli.bridge",
    "greengrader.cli.simulation",
    "greengrader.cli.workers",
    "greengrader.cli.web",
)


@click.group()
@click.version_option(__version__, prog_name="greengrader")
def cli() -> None:
    """GreenGrader: re-run Gradescope grading where the grid is greener."""


for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(cli)


def main() -> None:
    """Console entry point: our errors become one line on stderr, never a traceback."""
    try:
        # Without standalone mode click *returns* the code of a `click.exceptions.Exit`.
        code = cli.main(standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except GreengraderError as exc:
        _fail(str(exc))
    except SQLAlchemyError as exc:
        _fail(str(_database_error(exc)))
    except AlembicCommandError as exc:
        _fail(f"db: {exc}")
    except SystemExit:
        raise


def _fail(message: str) -> None:
    click.echo(f"greengrader: {message}", err=True)
    sys.exit(2)


def _database_error(exc: SQLAlchemyError) -> DatabaseError:
    from greengrader.db import describe_error
    from greengrader.settings import get_settings

    try:
        url = get_settings().effective_database_url
    except GreengraderError:
        url = "(unknown URL)"
    return describe_error(exc, url)
