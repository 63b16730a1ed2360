"""The read-only JSON API (``/api/v1/``): the same documents the pages render.

Authenticate with ``Authorization: Bearer <token>`` (``greengrader users token EMAIL``) or
the dashboard's session cookie. Submissions outside the caller's courses are 404.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from greengrader.web import catalog, detail, listing, overview
from greengrader.web.accounts import Principal
from greengrader.web.app import ServicesDep, SessionDep, admin_only, api_principal, api_scope
from greengrader.web.schemas import (
    AssignmentView,
    Overview,
    QuarantinePage,
    RegionView,
    SubmissionDetail,
    SubmissionPage,
    SubmissionStatus,
)
from greengrader.web.scope import Scope

router = APIRouter(prefix="/api/v1", tags=["dashboard"])
ScopeDep = Annotated[Scope, Depends(api_scope)]
PrincipalDep = Annotated[Principal, Depends(api_principal)]
Opt = Annotated[str | None, Query()]


def _int(name: str, value: str | None) -> int | None:
    if value is None or value.strip() == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise listing.BadFilter(f"{name} must be a whole number, not {value!r}") from None


def make_filters(
    course: str | None, assignment: str | None, status: str | None, region: str | None,
    agreement: str | None, q: str | None, before: str | None,
) -> listing.Filters:
    """Filters from query-string values; empty values mean "any"."""
    return listing.Filters(
        course=_int("course", course), assignment=_int("assignment", assignment),
        status=status or None, region=region or None, agreement=agreement or None,
        q=_int("q", q), before=_int("before", before),
    )


@router.get("/me")
def me(principal: PrincipalDep) -> dict[str, Any]:
    return {"email": principal.email, "role": principal.role, "courses": sorted(principal.courses)}


@router.get("/overview", response_model=Overview)
def get_overview(svc: ServicesDep, session: SessionDep, scope: ScopeDep) -> Overview:
    return overview.overview(svc.ctx, session, scope, svc.provider, svc.queue_depths, svc.past_days)


@router.get("/submissions", response_model=SubmissionPage)
def get_submissions(
    svc: ServicesDep, session: SessionDep, scope: ScopeDep,
    course: Opt = None, assignment: Opt = None, status: Opt = None, region: Opt = None,
    agreement: Opt = None, q: Opt = None, before: Opt = None,
    limit: Annotated[int | None, Query(ge=1, le=500)] = None,
) -> SubmissionPage:
    filters = make_filters(course, assignment, status, region, agreement, q, before)
    return listing.submissions_page(session, scope, filters, limit or svc.ctx.settings.web_page_size)


@router.get("/submissions/{submission_id}", response_model=SubmissionDetail)
def get_submission(svc: ServicesDep, session: SessionDep, scope: ScopeDep, submission_id: int) -> SubmissionDetail:
    return detail.submission_detail(session, scope, submission_id, svc.ctx.settings, svc.comparison)


@router.get("/submissions/{submission_id}/status", response_model=SubmissionStatus)
def get_status(session: SessionDep, scope: ScopeDep, submission_id: int) -> SubmissionStatus:
    return detail.status_of(session, scope, submission_id)


@router.get("/assignments", response_model=list[AssignmentView])
def get_assignments(session: SessionDep, scope: ScopeDep) -> list[AssignmentView]:
    return catalog.assignments(session, scope)


@router.get("/regions", response_model=list[RegionView])
def get_regions(svc: ServicesDep, session: SessionDep, _principal: PrincipalDep) -> list[RegionView]:
    return catalog.regions(svc.ctx, session, svc.provider)


@router.get("/quarantine", response_model=QuarantinePage)
def get_quarantine(
    svc: ServicesDep, session: SessionDep, principal: PrincipalDep, before: Opt = None,
) -> QuarantinePage:
    admin_only(principal)
    return listing.quarantine_page(session, _int("before", before), svc.ctx.settings.web_page_size)


@router.get("/openapi.json", include_in_schema=False)
def openapi(request: Request, _principal: PrincipalDep) -> dict[str, Any]:
    schema: dict[str, Any] = request.app.openapi()
    return schema
