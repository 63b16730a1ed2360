"""The dashboard's ASGI app: :func:`create_app` takes every collaborator it uses.

Server-rendered pages (Jinja2) and a read-only JSON API under ``/api/v1/`` call the same
query functions, so each page's content is also available as JSON.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy.orm import Session
from starlette.middleware.sessions import SessionMiddleware

from greengrader.carbon.base import CarbonProvider
from greengrader.context import Context
from greengrader.errors import NotFound
from greengrader.ops import observe
from greengrader.web import filters
from greengrader.web.accounts import Accounts, Principal
from greengrader.web.comparison import Comparison, TotalScoreComparison
from greengrader.web.listing import BadFilter
from greengrader.web.overview import PastDays
from greengrader.web.scope import Scope, scope_for
from greengrader.web.security import (
    CsrfRejected,
    Forbidden,
    LoginRequired,
    bearer_principal,
    session_principal,
)

log = logging.getLogger(__name__)
SESSION_COOKIE = "greengrader_session"
# Everything comes from this origin; no framing (the regrade button must not be clickjacked).
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; "
                               "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
QueueDepths = Callable[[Iterable[str]], "dict[str, int] | None"]


@dataclass
class Services:
    """What the request handlers use, built once by :func:`create_app`."""

    ctx: Context
    accounts: Accounts
    provider: CarbonProvider
    comparison: Comparison
    queue_depths: QueueDepths
    templates: Jinja2Templates = field(repr=False)
    past_days: PastDays = field(default_factory=PastDays)


def broker_queue_depths(ctx: Context) -> QueueDepths:
    settings = ctx.settings
    return lambda queues: observe.queue_depths(settings.effective_broker_url, queues, settings.health_timeout_s)


def create_app(
    ctx: Context,
    *,
    accounts: Accounts,
    provider: CarbonProvider,
    comparison: Comparison | None = None,
    queue_depths: QueueDepths | None = None,
    secret_key: str | None = None,
) -> FastAPI:
    settings = ctx.settings
    key = secret_key or settings.web_secret()
    if not key:
        log.warning("no GREENGRADER_WEB_SECRET_KEY: sessions last until this process restarts")
        key = secrets.token_urlsafe(32)
    env = Environment(loader=PackageLoader("greengrader.web", "templates"), autoescape=select_autoescape())
    filters.install(env)
    services = Services(
        ctx=ctx, accounts=accounts, provider=provider, comparison=comparison or TotalScoreComparison(),
        queue_depths=queue_depths or broker_queue_depths(ctx), templates=Jinja2Templates(env=env),
    )
    app = FastAPI(
        title="GreenGrader dashboard API", version="1", docs_url=None, redoc_url=None, openapi_url=None,
    )
    app.state.services = services

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    app.add_middleware(
        SessionMiddleware, secret_key=key, session_cookie=SESSION_COOKIE,
        max_age=settings.web_session_max_age_s, same_site="lax", https_only=settings.web_cookie_secure,
    )
    static = resources.files("greengrader.web") / "static"
    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    _handlers(app)

    from greengrader.web import api, chart_routes, pages

    app.include_router(pages.router)
    app.include_router(chart_routes.router)
    app.include_router(api.router)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> PlainTextResponse:
        return PlainTextResponse("ok")

    return app


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _handlers(app: FastAPI) -> None:
    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, _exc: LoginRequired) -> Response:
        if _wants_json(request):
            return JSONResponse({"detail": "not authenticated"}, 401, headers={"WWW-Authenticate": "Bearer"})
        return RedirectResponse(f"/login?next={request.url.path}", 303)

    @app.exception_handler(Forbidden)
    async def forbidden(_request: Request, _exc: Forbidden) -> Response:
        return JSONResponse({"detail": "admins only"}, 403)

    @app.exception_handler(CsrfRejected)
    async def csrf(_request: Request, _exc: CsrfRejected) -> Response:
        return PlainTextResponse("CSRF token missing or wrong: reload the page and try again", 403)

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> Response:
        if _wants_json(request):
            return JSONResponse({"detail": str(exc)}, 404)
        return PlainTextResponse(str(exc), 404)

    @app.exception_handler(BadFilter)
    async def bad_filter(_request: Request, exc: BadFilter) -> Response:
        return JSONResponse({"detail": str(exc)}, 400)


# --- dependencies ------------------------------------------------------------------------


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


ServicesDep = Annotated[Services, Depends(services)]


def db_session(svc: ServicesDep) -> Iterator[Session]:
    with svc.ctx.db.session() as session:
        yield session


SessionDep = Annotated[Session, Depends(db_session)]


def page_principal(request: Request, svc: ServicesDep) -> Principal:
    principal = session_principal(request, svc)
    if principal is None:
        raise LoginRequired()
    return principal


def api_principal(request: Request, svc: ServicesDep) -> Principal:
    principal = bearer_principal(request, svc) or session_principal(request, svc)
    if principal is None:
        raise LoginRequired()
    return principal


def page_scope(principal: Annotated[Principal, Depends(page_principal)], session: SessionDep) -> Scope:
    return scope_for(session, principal)


def api_scope(principal: Annotated[Principal, Depends(api_principal)], session: SessionDep) -> Scope:
    return scope_for(session, principal)


def admin_only(principal: Principal) -> Principal:
    if not principal.is_admin:
        raise Forbidden()
    return principal


def template_context(request: Request, principal: Principal, **values: Any) -> dict[str, Any]:
    from greengrader.web.security import csrf_token

    svc = services(request)
    return {
        "request": request, "me": principal, "csrf": csrf_token(request),
        "poll_ms": svc.ctx.settings.web_poll_interval_ms, **values,
    }
