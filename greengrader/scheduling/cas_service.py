"""A carbon-aware scheduler (CAS) HTTP service compatible with c3lab's API shape.

``GET /carbon-aware-scheduler/`` with a JSON body (as the original clients send) or
``POST``; the request and response shapes are in docs/scheduling.md. Decisions come from
the same policy kernels as in-process scheduling (spatio-temporal, which is carbon-optimal
when ``max_delay`` is 0) over our carbon providers. Invalid input gives 422, no viable
candidate 400, anything else a JSON 500 — never a traceback.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from greengrader.context import Context
from greengrader.errors import CarbonDataError, SchedulingError
from greengrader.ops.metrics import count_decision
from greengrader.regions.registry import Region
from greengrader.scheduling.cas_client import PATH, PROVIDER, location_id
from greengrader.scheduling.cas_sources import PlacerPool
from greengrader.scheduling.placement import Placer
from greengrader.scheduling.types import Placement, PlacementRequest
from greengrader.times import as_utc

log = logging.getLogger(__name__)
# Network energy per GB moved between regions (a round figure from the literature on WAN
# transfer energy; it only matters when a request declares input or output data).
WAN_KWH_PER_GB = 0.03


class Schedule(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: Literal["onetime", "poisson", "uniform-random"] = "onetime"
    start_time: datetime | None = None
    interval: float | None = Field(default=None, gt=0)
    max_delay: float = Field(default=0, ge=0, le=7 * 86_400)

    @field_validator("start_time")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        # The original clients send local-looking stamps without an offset: read them as UTC
        # (decide() adds a warning).
        if value is not None and (value.tzinfo is None or value.utcoffset() is None):
            return value.replace(tzinfo=UTC)
        return value


class Dataset(BaseModel):
    model_config = ConfigDict(extra="allow")

    input_size_gb: float = Field(default=0, ge=0)
    output_size_gb: float = Field(default=0, ge=0)


class Location(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str = Field(min_length=1, max_length=200)
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)


class CasRequest(BaseModel):
    """c3lab's request body."""

    model_config = ConfigDict(extra="allow")

    runtime: float = Field(gt=0, le=7 * 86_400)
    schedule: Schedule = Field(default_factory=Schedule)
    dataset: Dataset = Field(default_factory=Dataset)
    candidate_providers: list[str] | None = Field(default=None, min_length=1)
    candidate_locations: list[Location] | None = Field(default=None, min_length=1)
    original_location: str | None = None
    carbon_data_source: str = "c3lab"
    use_prediction: bool = False
    watts_per_core: float = Field(default=5.0, gt=0, le=10_000)
    core_count: int = Field(default=1, ge=1, le=4096)
    optimize_carbon: bool = True
    desired_renewable_ratio: float | None = Field(default=None, ge=0, le=1)

    @model_validator(mode="after")
    def _one_candidate_kind(self) -> CasRequest:
        if (self.candidate_providers is None) == (self.candidate_locations is None):
            raise ValueError("give exactly one of candidate_providers or candidate_locations")
        if self.schedule.type != "onetime":
            raise ValueError(f"schedule type {self.schedule.type!r} is not supported (only 'onetime')")
        return self


class ErrorBody(BaseModel):
    """Every non-200 answer: a message, or pydantic's list of field errors for a 422."""

    detail: str | list[dict[str, Any]]


class Ranking(BaseModel):
    rating: float
    candidates: list[str]


class CasDecision(BaseModel):
    """c3lab's response (documentation only: the request body's fields are echoed too)."""

    model_config = ConfigDict(extra="allow")

    original_region: str | None = Field(alias="original-region")
    optimal_regions: list[Ranking] = Field(alias="optimal-regions")
    weighted_scores: dict[str, float] = Field(alias="weighted-scores")
    raw_scores: dict[str, dict[str, Any]] = Field(alias="raw-scores")
    isos: dict[str, str]
    warnings: list[str]
    optimal_start_time: str = Field(alias="optimal-start-time")
    start_times: dict[str, str | None] = Field(alias="start-times")
    policy: str
    reason: str


def _openapi_operation(method: str) -> dict[str, Any]:
    """The request body for the spec: the handler reads raw JSON itself (GET bodies, its own
    error shapes), so FastAPI cannot infer it."""
    return {
        "operationId": f"schedule_{method}",
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CasRequest"}}},
        },
    }


def _add_request_schema(app: FastAPI) -> None:
    default = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = default()
            defs = CasRequest.model_json_schema(ref_template="#/components/schemas/{model}")
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(defs.pop("$defs", {}))
            components["CasRequest"] = defs
        return app.openapi_schema or default()

    app.openapi = openapi  # type: ignore[method-assign]


def _resolve(req: CasRequest, regions: list[Region], warnings: list[str]) -> dict[str, Region]:
    """Candidate id -> our region. Ids are ``provider:region`` (``provider:region.zone`` and
    ``provider:<carbon zone>`` are accepted too); unknown ids are skipped with a warning."""
    enabled = [r for r in regions if r.enabled]
    if req.candidate_providers is not None:
        known = {PROVIDER.lower(), "nautilus"}
        if not any(p.lower() in known for p in req.candidate_providers):
            warnings.append(f"providers {req.candidate_providers} are not ours; using every {PROVIDER} region")
        return {location_id(r.name): r for r in enabled}
    by_name = {r.name: r for r in enabled}
    by_zone = {r.zone: r for r in enabled}
    out: dict[str, Region] = {}
    for loc in req.candidate_locations or []:
        key = loc.id.split(":", 1)[-1]
        region = by_name.get(key) or by_name.get(key.split(".", 1)[0]) or by_zone.get(key)
        if region is None:
            warnings.append(f"unknown candidate location {loc.id!r} skipped")
        else:
            out[loc.id] = region
    return out


def _response(req: CasRequest, body: dict[str, Any], ids: dict[str, Region], p: Placement,
              warnings: list[str]) -> dict[str, Any]:
    moved_gb = req.dataset.input_size_gb + req.dataset.output_size_gb
    raw: dict[str, dict[str, Any]] = {}
    starts: dict[str, str | None] = {}
    for loc, region in ids.items():
        c = p.candidates.get(region.name)
        if c is None or c.best_intensity is None or not c.feasible:
            continue
        wan_kwh = 0.0 if region.name == req.original_location else moved_gb * WAN_KWH_PER_GB
        compute_g = p.energy_kwh * c.best_intensity
        migration_g = wan_kwh * c.best_intensity
        raw[loc] = {
            "energy-usage": p.energy_kwh, "carbon-emission-from-compute": compute_g,
            "carbon-emission-from-migration": migration_g, "carbon-emission": compute_g + migration_g,
            "wan-network-usage": 0.0 if wan_kwh == 0 else moved_gb, "carbon-intensity": c.best_intensity,
            "start-time": c.best_start,
        }
        starts[loc] = c.best_start
    if not raw:
        raise SchedulingError("no viable candidate")
    worst = max(v["carbon-emission"] for v in raw.values()) or 1.0
    weighted = {loc: v["carbon-emission"] / worst for loc, v in raw.items()}
    chosen = next(loc for loc, r in ids.items() if r.name == p.region)
    ranking: list[dict[str, Any]] = []
    for loc in [chosen, *sorted((x for x in weighted if x != chosen), key=lambda x: weighted[x])]:
        if ranking and abs(ranking[-1]["rating"] - weighted[loc]) < 1e-12:
            ranking[-1]["candidates"].append(loc)
        else:
            ranking.append({"rating": weighted[loc], "candidates": [loc]})
    return {
        **body,
        "original-region": req.original_location,
        "optimal-regions": ranking,
        "weighted-scores": weighted,
        "raw-scores": raw,
        "isos": {loc: r.zone for loc, r in ids.items()},
        "warnings": warnings,
        "optimal-start-time": p.start.isoformat(),
        "start-times": starts,
        "policy": p.policy,
        "reason": p.reason,
    }


class FastJSONResponse(JSONResponse):
    """A JSON response rendered with orjson: the ~5 KB ranking for ten candidates takes
    ~170 us with the json module, a large share of a decision. What orjson refuses (an
    integer beyond 64 bits echoed from the request body) is rendered by the json module."""

    def render(self, content: Any) -> bytes:
        try:
            return orjson.dumps(content)
        except orjson.JSONEncodeError:
            return super().render(content)


def _naive(text: str) -> bool:
    try:
        return datetime.fromisoformat(text).tzinfo is None
    except ValueError:
        return False


def decide(placer: Placer | PlacerPool, regions: list[Region], body: Any, now: datetime) -> dict[str, Any]:
    """The whole request -> response mapping (raises ValidationError / SchedulingError)."""
    req = CasRequest.model_validate(body)
    warnings: list[str] = []
    raw_start = body.get("schedule", {}).get("start_time") if isinstance(body.get("schedule"), dict) else None
    if isinstance(raw_start, str) and req.schedule.start_time is not None and _naive(raw_start):
        warnings.append(f"start_time {raw_start!r} has no time zone; read as UTC")
    pool = placer if isinstance(placer, PlacerPool) else PlacerPool(placer)
    chosen_placer = pool.get(req.carbon_data_source, req.use_prediction, warnings)
    ids = _resolve(req, regions, warnings)
    if not ids:
        raise SchedulingError("no viable candidate: none of the candidates is a known region")
    start = as_utc(req.schedule.start_time) if req.schedule.start_time else now
    placement = chosen_placer.place(
        PlacementRequest(earliest=start, runtime_s=req.runtime, max_delay_s=req.schedule.max_delay,
                         cores=req.core_count, watts_per_core=req.watts_per_core, regions=sorted({r.name for r in ids.values()})),
        start, replay=req.schedule.start_time is None,
    )
    out = _response(req, body, ids, placement, warnings)
    static = next((r.name for r in ids.values() if r.name == req.original_location), None)
    count_decision(placement.policy, placement.fallback, placement.saved_vs(static) if static else None)
    return out


def create_app(placer: Placer | PlacerPool, regions: list[Region], clock: Callable[[], datetime]) -> FastAPI:
    """The CAS app over ``placer`` (which should use a carbon-minimising policy)."""
    app = FastAPI(title="GreenGrader carbon-aware scheduler", docs_url=None, redoc_url=None)

    async def handle(request: Request) -> JSONResponse:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except (ValueError, RecursionError) as exc:  # RecursionError: "[[[[..." nested too deep
            return JSONResponse({"detail": f"body is not valid JSON: {type(exc).__name__}"}, status_code=422)
        if not isinstance(body, dict):
            return JSONResponse({"detail": "body must be a JSON object"}, status_code=422)
        try:
            return FastJSONResponse(decide(placer, regions, body, clock()))
        except ValidationError as exc:
            errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
            return JSONResponse({"detail": errors}, status_code=422)
        except (SchedulingError, CarbonDataError) as exc:
            message = str(exc)  # placement's own errors already start with the phrase
            detail = message if message.startswith("no viable candidate") else f"no viable candidate: {message}"
            return JSONResponse({"detail": detail}, status_code=400)
        except Exception:  # the contract: a JSON 500, never a traceback to the client
            log.exception("CAS request failed")
            return JSONResponse({"detail": "internal error"}, status_code=500)

    responses: dict[int | str, dict[str, Any]] = {
        200: {"model": CasDecision, "description": "The ranking and the chosen start time"},
        400: {"model": ErrorBody, "description": "No viable candidate"},
        422: {"model": ErrorBody, "description": "The body is not a valid request"},
        500: {"model": ErrorBody, "description": "An internal error (never a traceback)"},
    }
    for method in ("get", "post"):
        app.add_api_route(PATH, handle, methods=[method.upper()], response_model=None,
                          responses=responses, openapi_extra=_openapi_operation(method))
    app.add_api_route(PATH.rstrip("/"), handle, methods=["GET", "POST"], include_in_schema=False)
    _add_request_schema(app)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def app_from_context(ctx: Context) -> FastAPI:
    """The CAS app for a :class:`~greengrader.context.Context` (settings, regions, clock)."""
    from greengrader.carbon import get_provider
    from greengrader.scheduling.policies import SpatioTemporal

    s = ctx.settings
    placer = Placer(
        SpatioTemporal(), get_provider(s.carbon_source, s), list(ctx.regions),
        watts_per_core=s.schedule_watts_per_core, pue=s.pue, capacity_aware=False, queue_aware=False,
        forecast_margin=s.forecast_margin,
    )
    _warm(placer, ctx.now())
    return create_app(PlacerPool(placer, lambda name: get_provider(name, s)), list(ctx.regions), ctx.now)


def _warm(placer: Placer, now: datetime) -> None:
    # Load each zone's data before taking requests, so the first requests (and every
    # uvicorn worker) do not pay for parsing data sets.
    for region in placer.regions:
        # A replaying data set may not cover today; its data are loaded all the same.
        with contextlib.suppress(CarbonDataError):
            placer.provider.forecast(region.zone, now, 3600)


def app_from_env() -> FastAPI:
    """App factory for uvicorn worker processes (each builds its context from settings)."""
    return app_from_context(Context.from_settings())


def serve(ctx: Context, host: str = "127.0.0.1", port: int = 8080, workers: int = 1) -> None:
    """Run the service with uvicorn (blocks). Several workers share the port, each with its
    own context built from the environment."""
    import uvicorn

    if workers > 1:
        uvicorn.run("greengrader.scheduling.cas_service:app_from_env", factory=True, host=host, port=port,
                    workers=workers, log_level="warning", access_log=False)
        return
    uvicorn.run(app_from_context(ctx), host=host, port=port, log_level="warning", access_log=False)
