"""Who a request is, and the CSRF check every POST passes.

Pages authenticate with the signed session cookie (Starlette's ``SessionMiddleware``:
itsdangerous-signed, HttpOnly, SameSite=Lax, Secure when configured). The JSON API also
accepts ``Authorization: Bearer <token>``. The session holds the user id, the user's
session epoch (a password reset bumps it, ending every session) and the CSRF token.
"""

from __future__ import annotations

import hmac
import secrets
from typing import TYPE_CHECKING

from fastapi import Request

from greengrader.web.accounts import Principal

if TYPE_CHECKING:
    from greengrader.web.app import Services

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


class LoginRequired(Exception):
    """No valid session or token: pages redirect to the login form, the API answers 401."""


class Forbidden(Exception):
    """Logged in, but the page is for admins."""


class CsrfRejected(Exception):
    """A POST without the session's CSRF token."""


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


async def require_csrf(request: Request) -> None:
    """Dependency of every POST route: the form field or header must match the session's token."""
    expected = request.session.get("csrf")
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        value = (await request.form()).get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not isinstance(expected, str) or not sent or not hmac.compare_digest(expected, sent):
        raise CsrfRejected()


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def start_session(request: Request, principal: Principal) -> None:
    request.session.clear()
    request.session.update({"uid": principal.user_id, "epoch": principal.session_epoch})
    csrf_token(request)  # a fresh token after login


def session_principal(request: Request, services: Services) -> Principal | None:
    uid, epoch = request.session.get("uid"), request.session.get("epoch")
    if not isinstance(uid, int) or not isinstance(epoch, int):
        return None
    principal = services.accounts.from_session(uid, epoch)
    if principal is None:
        request.session.clear()
    return principal


def bearer_principal(request: Request, services: Services) -> Principal | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return services.accounts.from_token(token.strip())


def safe_next(target: str | None) -> str:
    """Only same-site paths after login (never ``//host`` or a scheme)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
