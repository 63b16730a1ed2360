"""The pages' charts as SVG documents, each behind the same login and course scoping.

Served apart from the HTML so a page renders without waiting for matplotlib, and the
browser loads the charts in parallel.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from greengrader.errors import NotFound
from greengrader.web import catalog, charts, detail, overview
from greengrader.web.accounts import Principal
from greengrader.web.app import ServicesDep, SessionDep, page_principal, page_scope
from greengrader.web.scope import Scope

router = APIRouter(prefix="/charts", include_in_schema=False)
PrincipalDep = Annotated[Principal, Depends(page_principal)]
ScopeDep = Annotated[Scope, Depends(page_scope)]


def _svg(text: str) -> Response:
    return Response(text, media_type="image/svg+xml", headers={"Cache-Control": "private, max-age=30"})


@router.get("/carbon.svg")
def carbon(svc: ServicesDep, session: SessionDep, scope: ScopeDep) -> Response:
    settings = svc.ctx.settings
    baseline = settings.baseline_region or settings.default_region
    summary = overview.carbon_summary(session, scope, baseline, svc.ctx.now(), svc.past_days)
    return _svg(charts.carbon_per_day(summary.days, baseline))


@router.get("/regions.svg")
def regions(svc: ServicesDep, session: SessionDep, _principal: PrincipalDep) -> Response:
    return _svg(charts.intensity_next_24h(catalog.regions(svc.ctx, session, svc.provider), svc.ctx.now()))


@router.get("/submissions/{submission_id}/placement.svg")
def placement(svc: ServicesDep, session: SessionDep, scope: ScopeDep, submission_id: int) -> Response:
    d = detail.submission_detail(session, scope, submission_id, svc.ctx.settings, svc.comparison)
    if d.decision is None:
        raise NotFound(f"submission {submission_id} has no placement decision")
    zones = {r.name: r.zone for r in svc.ctx.regions}
    return _svg(charts.placement(d.decision, svc.provider, zones))


@router.get("/assignments/{assignment_id}/runtimes.svg")
def runtimes(session: SessionDep, scope: ScopeDep, assignment_id: int) -> Response:
    found = [a for a in catalog.assignments(session, scope) if a.id == assignment_id]
    if not found:
        raise NotFound(f"assignment {assignment_id} not found")
    return _svg(charts.runtime_histogram(found[0].runtimes_s))
