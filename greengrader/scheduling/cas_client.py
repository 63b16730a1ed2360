"""Client of a carbon-aware scheduler (CAS) with c3lab's API shape, used by ``schedule``.

Sends the job's real runtime estimate and slack (the original always sent ``runtime: 50,
max_delay: 0``), retries connection failures, timeouts and 5xx with exponential backoff,
and turns every failure — unreachable, timeout, HTTP error, a body that is not the
expected shape — into :class:`~greengrader.errors.CasError`; the caller then decides in
process and records the fallback in the Decision.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import requests
from tenacity import (
    retry,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from greengrader.errors import CasError
from greengrader.scheduling.types import Candidate, Placement, PlacementRequest
from greengrader.settings import Settings
from greengrader.times import as_utc, parse_instant

PATH = "/carbon-aware-scheduler/"
PROVIDER = "GreenGrader"


class _Retryable(Exception):
    pass


def location_id(region: str) -> str:
    """The c3lab candidate id for one of our regions (``provider:region``)."""
    return f"{PROVIDER}:{region}"


def region_of(location: str) -> str:
    """Our region name from a candidate id (the part after the provider prefix)."""
    return location.split(":", 1)[1] if ":" in location else location


def request_body(req: PlacementRequest, regions: Sequence[str], *, watts_per_core: float = 5.0) -> dict[str, Any]:
    return {
        "runtime": max(1, round(req.runtime_s)),
        "schedule": {
            "type": "onetime",
            "start_time": as_utc(req.earliest).isoformat(),
            "max_delay": int(req.max_delay_s),
        },
        "dataset": {"input_size_gb": 0, "output_size_gb": 0},
        "candidate_locations": [{"id": location_id(r)} for r in regions],
        "use_prediction": True,
        "watts_per_core": watts_per_core,
        "core_count": max(1, round(req.cores)),
    }


def _parse_time(text: Any) -> datetime:
    if not isinstance(text, str):
        raise CasError(f"CAS start time is not a string: {text!r}")
    try:
        return parse_instant(text)
    except ValueError as exc:
        raise CasError(f"CAS start time {text!r} is not an ISO 8601 time: {exc}") from None


def parse_response(doc: Any, req: PlacementRequest, regions: Sequence[str]) -> Placement:
    """A Placement from a c3lab-shaped answer; anything unexpected raises CasError."""
    try:
        best = doc["optimal-regions"][0]["candidates"][0]
        location = str(best["id"] if isinstance(best, dict) else best)
        raw: dict[str, Any] = doc.get("raw-scores") or {}
        scores = raw.get(location) or {}
        start_text = doc.get("optimal-start-time") or (best.get("start_time") if isinstance(best, dict) else None)
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise CasError(f"CAS answer lacks optimal-regions[0].candidates[0]: {exc!r}") from None
    region = region_of(location)
    if region not in regions:
        raise CasError(f"CAS chose {location!r}, which is not one of the candidates")
    start = _parse_time(start_text) if start_text else as_utc(req.earliest)
    try:
        kwh = float(scores.get("energy-usage", 0.0))
        grams = float(scores.get("carbon-emission", scores.get("carbon-emission-from-compute", 0.0)))
    except (TypeError, ValueError, AttributeError) as exc:
        raise CasError(f"CAS raw-scores for {location!r} are not numbers: {exc}") from None
    candidates = {}
    for loc, sc in raw.items():
        if isinstance(sc, dict):
            try:
                e, g = float(sc.get("energy-usage", 0.0)), float(sc.get("carbon-emission", 0.0))
            except (TypeError, ValueError):
                continue
            name = region_of(str(loc))
            candidates[name] = Candidate(region=name, zone=str(sc.get("zone", "")),
                                         intensity=g / e if e > 0 else None, expected_g=g)
    warnings = doc.get("warnings") or []
    return Placement(
        policy=str(doc.get("policy", "cas")), region=region, start=start, expected_g=grams,
        intensity=grams / kwh if kwh > 0 else float("nan"), runtime_s=req.runtime_s, energy_kwh=kwh,
        reason_text=f"CAS: {doc.get('reason') or location}" + (f" (warnings: {warnings})" if warnings else ""),
        candidate_detail=candidates,
    )


class CasClient:
    """Talks to one CAS base URL."""

    def __init__(self, url: str, *, timeout_s: float = 5.0, retries: int = 2,
                 session: requests.Session | None = None, watts_per_core: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.retries = retries
        self.session = session or requests.Session()
        self.watts_per_core = watts_per_core

    @classmethod
    def from_settings(cls, settings: Settings) -> CasClient:
        if not settings.cas_url:
            raise CasError("GREENGRADER_CAS_URL is not set")
        return cls(settings.cas_url, timeout_s=settings.cas_timeout_s, retries=settings.cas_retries,
                   watts_per_core=settings.schedule_watts_per_core)

    def place(self, req: PlacementRequest, regions: Sequence[str]) -> Placement:
        body = request_body(req, regions, watts_per_core=self.watts_per_core)
        return parse_response(self._post(body), req, regions)

    def _post(self, body: dict[str, Any]) -> Any:
        @retry(
            retry=retry_if_exception_type(_Retryable),
            stop=stop_after_attempt(self.retries + 1),
            wait=wait_exponential(multiplier=0.2, max=2.0),
            reraise=True,
        )
        def attempt() -> Any:
            try:
                resp = self.session.post(self.url + PATH, json=body, timeout=self.timeout_s)
            except (requests.ConnectionError, requests.Timeout) as exc:
                raise _Retryable(f"CAS unreachable at {self.url}: {exc}") from exc
            if resp.status_code >= 500:
                raise _Retryable(f"CAS error {resp.status_code}: {resp.text[:200]}")
            if resp.status_code != 200:
                raise CasError(f"CAS refused the request ({resp.status_code}): {resp.text[:200]}")
            try:
                return resp.json()
            except ValueError:
                raise CasError(f"CAS answered non-JSON: {resp.text[:120]!r}") from None

        try:
            return attempt()
        except _Retryable as exc:
            raise CasError(str(exc)) from None
        except requests.RequestException as exc:
            raise CasError(f"CAS request failed: {exc}") from None


