"""Helpers shared by the CLI modules."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import click

from greengrader.context import Context
from greengrader.settings import get_settings

F = TypeVar("F", bound=Callable[..., Any])


def cli_context() -> Context:
    """A context from the environment; the embedded SQLite database is migrated on demand."""
    settings = get_settings()
    ctx = Context.from_settings(settings)
    if settings.embedded:
        ctx.db.upgrade()
    return ctx


def resolve_submission(ctx: Context, value: int) -> int:
    """The database id of the submission ``value`` names: its own id, or its Gradescope id.

    Tables show either id, so commands accept both. The database id wins when a number is
    both (they rarely collide: Gradescope ids are far larger); a Gradescope id sent again
    (a re-run) names its newest row.
    """
    from sqlalchemy import select

    from greengrader.errors import NotFound
    from greengrader.models import Submission

    with ctx.db.session() as session:
        if session.get(Submission, value) is not None:
            return value
        newest = session.scalars(
            select(Submission.id).where(Submission.gradescope_id == value).order_by(Submission.id.desc()).limit(1)
        ).first()
    if newest is None:
        raise NotFound(f"no submission with id or Gradescope id {value}")
    return newest


def resolve_submissions(ctx: Context, values: tuple[int, ...]) -> list[int]:
    return [resolve_submission(ctx, v) for v in values]


def json_option(func: F) -> F:
    """``--json``: print the rows as a JSON array instead of a table."""
    return click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of a table.")(func)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        # Two decimals, as scores and seconds read; tiny values (grams of CO2) keep 2 digits.
        return f"{value:.2f}" if value == 0 or abs(value) >= 0.01 else f"{value:.2g}"
    return str(value)


def emit_rows(rows: Sequence[Mapping[str, object]], headers: Mapping[str, str], as_json: bool,
              title: str | None = None) -> None:
    """Rows as JSON, or as a table that is never cut to the 80 columns of a pipe."""
    if as_json:
        click.echo(json.dumps(list(rows), indent=2, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(*headers.values(), title=title)
    for row in rows:
        table.add_row(*(_cell(row.get(key)) for key in headers))
    console = Console()
    # A pipe or file gets rich's 80 columns: wide enough for any row instead.
    (console if console.is_terminal else Console(width=400)).print(table)


def yes_option(func: F) -> F:
    """``--yes``: skip the confirmation of a destructive command."""
    return click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")(func)


def confirm_destructive(question: str, yes: bool) -> None:
    """Ask ``question`` (default no) unless ``yes``; anything but y/yes aborts (exit 1)."""
    if yes:
        return
    # click.confirm raises Abort on "n", on an empty answer and on end of input.
    click.confirm(question, default=False, abort=True, err=True)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


if TYPE_CHECKING:
    _ParamType = click.ParamType[timedelta, Any]
else:  # click < 8.2 has no generic ParamType at run time
    _ParamType = click.ParamType


class Duration(_ParamType):
    """A duration with a unit: ``90s``, ``15m``, ``12h``, ``180d``, ``2w``."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> timedelta:
        if isinstance(value, timedelta):
            return value
        match = _DURATION.match(str(value))
        if match is None:
            self.fail(f"{value!r} is not a duration: give a number and a unit (s, m, h, d or w), e.g. 180d",
                      param, ctx)
        return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
