"""``greengrader web`` (the dashboard) and ``greengrader users`` (its accounts)."""

from __future__ import annotations

import sys

import click
from rich.console import Console
from rich.table import Table

from greengrader.cli.common import cli_context
from greengrader.db import get_database
from greengrader.settings import get_settings
from greengrader.web.accounts import Accounts


def _accounts() -> Accounts:
    settings = get_settings()
    db = get_database(settings)
    if settings.embedded:
        db.upgrade()
    return Accounts(db)


def _password(given_stdin: bool) -> str:
    if given_stdin:
        return sys.stdin.readline().rstrip("\n")
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


@click.command("web")
@click.option("--host", help="Address to listen on (default GREENGRADER_WEB_HOST).")
@click.option("--port", type=int, help="Port (default GREENGRADER_WEB_PORT).")
def web(host: str | None, port: int | None) -> None:
    """Serve the course-staff dashboard and its JSON API (/api/v1/)."""
    import uvicorn

    from greengrader.carbon import get_provider
    from greengrader.web import create_app

    ctx = cli_context()
    settings = ctx.settings
    app = create_app(ctx, accounts=Accounts(ctx.db), provider=get_provider(settings.carbon_source, settings))
    # proxy_headers: behind the TLS proxy, client addresses (login rate limit) come from X-Forwarded-For.
    uvicorn.run(app, host=host or settings.web_host, port=port or settings.web_port, proxy_headers=True,
                log_level="info")


@click.group("users")
def users_group() -> None:
    """Dashboard accounts: staff (per course) and admins."""


@users_group.command("add")
@click.argument("email")
@click.option("--role", type=click.Choice(["staff", "admin"]), required=True)
@click.option("--course", "courses", type=int, multiple=True, help="Gradescope course id (repeatable; staff).")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
def users_add(email: str, role: str, courses: tuple[int, ...], password_stdin: bool) -> None:
    """Create a user (the password is prompted for, or read with --password-stdin)."""
    user = _accounts().add(email, role, _password(password_stdin), courses)
    scope = "all courses" if user.is_admin else "courses " + ", ".join(map(str, sorted(user.courses)))
    click.echo(f"added {user.email} ({user.role}, {scope})")


@users_group.command("list")
def users_list() -> None:
    """Every user with role, courses and active tokens."""
    table = Table("email", "role", "courses", "active tokens", "created")
    for u in _accounts().users():
        table.add_row(u.email, u.role, ", ".join(map(str, u.courses)) or "all", str(u.active_tokens),
                      u.created_at.strftime("%Y-%m-%d %H:%M"))
    Console().print(table)


@users_group.command("remove")
@click.argument("email")
def users_remove(email: str) -> None:
    """Delete a user, their course grants and tokens."""
    _accounts().remove(email)
    click.echo(f"removed {email}")


@users_group.command("reset")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the new password from the first line of stdin.")
def users_reset(email: str, password_stdin: bool) -> None:
    """Set a new password; the user's open sessions end."""
    _accounts().reset(email, _password(password_stdin))
    click.echo(f"password of {email} reset; their sessions have ended")


@users_group.command("token")
@click.argument("email")
@click.option("--name", default="", help="A label for the token.")
@click.option("--revoke", "revoke_id", type=int, help="Revoke the token with this id instead.")
@click.option("--revoke-all", is_flag=True, help="Revoke every token of the user instead.")
def users_token(email: str, name: str, revoke_id: int | None, revoke_all: bool) -> None:
    """Issue an API bearer token for EMAIL (printed once), or revoke tokens."""
    accounts = _accounts()
    if revoke_id is not None or revoke_all:
        n = accounts.revoke_tokens(email, None if revoke_all else revoke_id)
        click.echo(f"revoked {n} token(s) of {email}")
        return
    token_id, token = accounts.issue_token(email, name)
    click.echo(f"token {token_id} for {email} (shown once; use as 'Authorization: Bearer ...'):", err=True)
    click.echo(token)


def register(group: click.Group) -> None:
    group.add_command(web)
    group.add_command(users_group)
