"""The ``greengrader`` command line: a thin click layer over library calls.

Command groups live in one module each (``greengrader/cli/<topic>.py``) exposing
``register(group)``; they are listed in :data:`COMMAND_MODULES`.
"""

from __future__ import annotations

import importlib
import sys

import click

from greengrader import __version__
from greengrader.errors import GreengraderError

COMMAND_MODULES: tuple[str, ...] = (
    "greengrader.cli.carbon",
    "greengrader.cli.db",
    "greengrader.cli.demo",
    "greengrader.cli.grading",
    "greengrader.cli.ops",
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
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except GreengraderError as exc:
        click.echo(f"greengrader: {exc}", err=True)
        sys.exit(2)
    except SystemExit:
        raise
