"""Server-rendered pages, the login form, and the audited regrade and export buttons."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from greengrader.models import Status
from greengrader.web import actions, audit, catalog, detail, listing, overview
from greengrader.web.accounts import Principal
from greengrader.web.api import make_filters
from greengrader.web.app import (
    ServicesDep,
    SessionDep,
    admin_only,
    page_principal,
    page_scope,
    template_context,
)
from greengrader.web.scope import Scope
from greengrader.web.security import client_ip, csrf_token, require_csrf, safe_next, start_session

router = APIRouter(include_in_schema=False)
PrincipalDep = Annotated[Principal, Depends(page_principal)]
ScopeDep = Annotated[Scope, Depends(page_scope)]
CSRF = [Depends(require_csrf)]


def _render(request: Request, svc: ServicesDep, name: str, principal: Principal, **values: object) -> HTMLResponse:
    return svc.templates.TemplateResponse(request, name, template_context(request, principal, **values))


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, svc: ServicesDep, next: str = "/") -> HTMLResponse:
    return svc.templates.TemplateResponse(
        request, "login.html", {"csrf": csrf_token(request), "next": safe_next(next), "error": None}
    )


@router.post("/login", dependencies=CSRF)
def login(
    request: Request, svc: ServicesDep, email: Annotated[str, Form()], password: Annotated[str, Form()],
    next: Annotated[str, Form()] = "/",
) -> Response:
    settings, now, ip = svc.ctx.settings, svc.ctx.now(), client_ip(request)
    email = email.strip().lower()
    with svc.ctx.db.transaction() as session:
        since = audit.window_start(now, settings.web_login_window_s)
        throttled = audit.recent_login_failures(session, email, ip, since) >= settings.web_login_max_failures
    principal = None if throttled else svc.accounts.authenticate(email, password)
    with svc.ctx.db.transaction() as session:
        action = "login" if principal else ("login_throttled" if throttled else audit.LOGIN_FAILED)
        audit.record(session, action, now, user_email=principal.email if principal else None, target=email, client_ip=ip)
    if principal is None:
        error = "Too many failed logins: wait a few minutes." if throttled else "Wrong e-mail or password."
        return svc.templates.TemplateResponse(
            request, "login.html", {"csrf": csrf_token(request), "next": safe_next(next), "error": error},
            status_code=429 if throttled else 401,
        )
    start_session(request, principal)
    return RedirectResponse(safe_next(next), 303)


@router.post("/logout", dependencies=CSRF)
def logout(request: Request) -> Response:
    request.session.clear()
    return RedirectResponse("/login", 303)


@router.get("/", response_class=HTMLResponse)
def overview_page(request: Request, svc: ServicesDep, session: SessionDep, principal: PrincipalDep, scope: ScopeDep) -> HTMLResponse:
    data = overview.overview(svc.ctx, session, scope, svc.provider, svc.queue_depths, svc.past_days)
    return _render(request, svc, "overview.html", principal, o=data)


@router.get("/submissions", response_class=HTMLResponse)
def submissions_page(
    request: Request, svc: ServicesDep, session: SessionDep, principal: PrincipalDep, scope: ScopeDep,
    course: str | None = None, assignment: str | None = None, status: str | None = None,
    region: str | None = None, agreement: str | None = None, q: str | None = None, before: str | None = None,
) -> HTMLResponse:
    filters = make_filters(course, assignment, status, region, agreement, q, before)
    page = listing.submissions_page(session, scope, filters, svc.ctx.settings.web_page_size)
    return _render(
        request, svc, "submissions.html", principal, page=page, f=filters.as_dict(),
        statuses=[s.value for s in Status], regions=svc.ctx.regions.names,
        courses=sorted(scope.course_ids) if scope.course_ids is not None else None,
    )


@router.get("/submissions/{submission_id}", response_class=HTMLResponse)
def submission_page(
    request: Request, svc: ServicesDep, session: SessionDep, principal: PrincipalDep, scope: ScopeDep,
    submission_id: int, done: str | None = None,
) -> HTMLResponse:
    d = detail.submission_detail(session, scope, submission_id, svc.ctx.settings, svc.comparison)
    return _render(request, svc, "submission.html", principal, s=d, done=done)


@router.post("/submissions/{submission_id}/regrade", dependencies=CSRF)
def regrade(request: Request, svc: ServicesDep, principal: PrincipalDep, scope: ScopeDep, submission_id: int) -> Response:
    outcome = actions.regrade(svc.ctx, scope, principal, submission_id, client_ip(request))
    done = "regrade" if outcome.requested else "not-finished"
    return RedirectResponse(f"/submissions/{submission_id}?done={done}", 303)


@router.post("/submissions/{submission_id}/export", dependencies=CSRF)
def export(request: Request, svc: ServicesDep, principal: PrincipalDep, scope: ScopeDep, submission_id: int) -> Response:
    name, data = actions.export_payload(svc.ctx, scope, principal, submission_id, client_ip(request))
    return Response(data, media_type="application/zip", headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/assignments", response_class=HTMLResponse)
def assignments_page(request: Request, svc: ServicesDep, session: SessionDep, principal: PrincipalDep, scope: ScopeDep) -> HTMLResponse:
    items = catalog.assignments(session, scope)
    return _render(request, svc, "assignments.html", principal, items=items)


@router.get("/regions", response_class=HTMLResponse)
def regions_page(request: Request, svc: ServicesDep, session: SessionDep, principal: PrincipalDep) -> HTMLResponse:
    items = catalog.regions(svc.ctx, session, svc.provider)
    return _render(request, svc, "regions.html", principal, items=items)


@router.get("/quarantine", response_class=HTMLResponse)
def quarantine_page(request: Request, svc: ServicesDep, session: SessionDep, principal: PrincipalDep,
                    before: str | None = None) -> HTMLResponse:
    admin_only(principal)
    cursor = int(before) if before and before.isdigit() else None
    page = listing.quarantine_page(session, cursor, svc.ctx.settings.web_page_size)
    return _render(request, svc, "quarantine.html", principal, page=page)
