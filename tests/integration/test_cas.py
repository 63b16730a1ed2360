"""The CAS HTTP service (real uvicorn on a free port) with c3lab request/response shapes,
malformed requests, and the CAS client against it and against a server answering garbage."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import uvicorn
from pytest_httpserver import HTTPServer

from greengrader.carbon.dataset import DatasetProvider
from greengrader.carbon.store import CarbonStore
from greengrader.errors import CasError
from greengrader.regions.registry import load_regions
from greengrader.scheduling.cas_client import CasClient
from greengrader.scheduling.cas_service import create_app
from greengrader.scheduling.placement import Placer
from greengrader.scheduling.policies import SpatioTemporal
from greengrader.scheduling.types import PlacementRequest

START = datetime(2023, 5, 10, 18, 30, tzinfo=UTC)
REGIONS = list(load_regions())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def provider(carbon_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> DatasetProvider:
    home = tmp_path_factory.mktemp("cas-home")
    return DatasetProvider(CarbonStore(home, carbon_dir / "electricitymaps_greendcc"), forecast="oracle")


@pytest.fixture(scope="module")
def cas_url(provider: DatasetProvider) -> Iterator[str]:
    placer = Placer(SpatioTemporal(), provider, REGIONS, capacity_aware=False, queue_aware=False)
    app = create_app(placer, REGIONS, lambda: START)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def c3lab_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "runtime": 50,
        "schedule": {"type": "onetime", "start_time": START.isoformat(), "max_delay": 0},
        "dataset": {"input_size_gb": 0, "output_size_gb": 0},
        "candidate_locations": [{"id": f"Nautilus:{r.name}.ucsd"} for r in REGIONS] + [{"id": "Nautilus:mars.x"}],
        "use_prediction": False,
        "carbon_data_source": "c3lab",
    }
    body.update(changes)
    return body


def call(url: str, body: Any, method: str = "GET") -> requests.Response:
    # The original clients send a JSON body with GET.
    return requests.request(method, url + "/carbon-aware-scheduler/", json=body, timeout=30)


def test_get_with_json_body_returns_the_c3lab_shape(cas_url: str, provider: DatasetProvider) -> None:
    resp = call(cas_url, c3lab_body())
    assert resp.status_code == 200, resp.text
    doc = resp.json()
    assert doc["runtime"] == 50 and doc["schedule"]["max_delay"] == 0  # the request is echoed
    raw = doc["raw-scores"]
    assert set(raw) == {f"Nautilus:{r.name}.ucsd" for r in REGIONS}
    for scores in raw.values():
        assert {"energy-usage", "carbon-emission-from-compute", "carbon-emission-from-migration",
                "carbon-emission"} <= set(scores)
        assert scores["carbon-emission"] == pytest.approx(
            scores["carbon-emission-from-compute"] + scores["carbon-emission-from-migration"])
    best = doc["optimal-regions"][0]["candidates"][0]
    assert raw[best]["carbon-emission"] == min(v["carbon-emission"] for v in raw.values())
    truth = {f"Nautilus:{r.name}.ucsd": provider.series(r.zone, START, START + timedelta(hours=1)).at(START)
             for r in REGIONS}
    assert best == min(truth, key=lambda k: truth[k])  # the true minimum of the real data
    ratings = [g["rating"] for g in doc["optimal-regions"]]
    assert ratings == sorted(ratings)
    assert set(doc["weighted-scores"]) == set(raw)
    assert doc["optimal-start-time"] == START.isoformat()
    assert any("mars" in w for w in doc["warnings"])
    assert doc["original-region"] is None


def test_post_with_slack_picks_a_start_within_max_delay_and_never_worse(cas_url: str) -> None:
    spatial = call(cas_url, c3lab_body(), "POST").json()
    body = c3lab_body(schedule={"type": "onetime", "start_time": START.isoformat(), "max_delay": 12 * 3600})
    doc = call(cas_url, body, "POST").json()
    start = datetime.fromisoformat(doc["optimal-start-time"])
    assert START <= start <= START + timedelta(hours=12)
    best_now = min(v["carbon-emission"] for v in spatial["raw-scores"].values())
    best_delayed = min(v["carbon-emission"] for v in doc["raw-scores"].values())
    assert best_delayed <= best_now + 1e-12


def test_candidate_providers_means_every_region(cas_url: str) -> None:
    body = c3lab_body(candidate_providers=["Nautilus"])
    del body["candidate_locations"]
    doc = call(cas_url, body).json()
    assert set(doc["raw-scores"]) == {f"GreenGrader:{r.name}" for r in REGIONS}


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"runtime": 50}, 422),  # no candidates
        (c3lab_body(runtime=-1), 422),
        (c3lab_body(runtime="fifty"), 422),
        (c3lab_body(candidate_providers=["AWS"]), 422),  # both kinds of candidates
        (c3lab_body(schedule={"type": "poisson", "interval": 60}), 422),
        (c3lab_body(schedule={"type": "onetime", "max_delay": -5}), 422),
        (c3lab_body(candidate_locations=[]), 422),
        ([1, 2, 3], 422),
        (c3lab_body(candidate_locations=[{"id": "AWS:nowhere"}]), 400),  # no viable candidate
        (c3lab_body(schedule={"type": "onetime", "start_time": "1990-01-01T00:00:00+00:00"}), 400),
    ],
)
def test_malformed_requests_get_clean_errors(cas_url: str, body: Any, status: int) -> None:
    resp = call(cas_url, body)
    assert resp.status_code == status, resp.text
    assert "detail" in resp.json()
    assert "Traceback" not in resp.text
    assert "no viable candidate: no viable candidate" not in resp.text


def test_body_that_is_not_json_is_422(cas_url: str) -> None:
    resp = requests.post(cas_url + "/carbon-aware-scheduler/", data=b"{runtime: 50", timeout=10,
                         headers={"Content-Type": "application/json"})
    assert resp.status_code == 422 and "JSON" in resp.json()["detail"]


def test_client_round_trip(cas_url: str) -> None:
    client = CasClient(cas_url, timeout_s=10)
    names = [r.name for r in REGIONS]
    req = PlacementRequest(earliest=START, runtime_s=120, max_delay_s=6 * 3600)
    p = client.place(req, names)
    assert p.region in names and START <= p.start <= START + timedelta(hours=6)
    assert p.expected_g > 0 and p.candidates[p.region].expected_g == pytest.approx(p.expected_g)


def test_client_turns_garbage_and_outages_into_cas_error(httpserver: HTTPServer) -> None:
    names = [r.name for r in REGIONS]
    req = PlacementRequest(earliest=START, runtime_s=60)
    httpserver.expect_request("/carbon-aware-scheduler/").respond_with_data("<html>oops</html>")
    with pytest.raises(CasError, match="non-JSON"):
        CasClient(httpserver.url_for("/"), retries=0).place(req, names)
    httpserver.clear()
    httpserver.expect_request("/carbon-aware-scheduler/").respond_with_json({"optimal-regions": []})
    with pytest.raises(CasError, match="optimal-regions"):
        CasClient(httpserver.url_for("/"), retries=0).place(req, names)
    httpserver.clear()
    httpserver.expect_request("/carbon-aware-scheduler/").respond_with_json(
        {"optimal-regions": [{"rating": 0, "candidates": ["GreenGrader:atlantis"]}]})
    with pytest.raises(CasError, match="not one of the candidates"):
        CasClient(httpserver.url_for("/"), retries=0).place(req, names)
    httpserver.clear()
    httpserver.expect_request("/carbon-aware-scheduler/").respond_with_data("busy", status=503)
    with pytest.raises(CasError, match="503"):
        CasClient(httpserver.url_for("/"), retries=1).place(req, names)
    assert len(httpserver.log) == 2  # retried once
    with pytest.raises(CasError, match="unreachable"):
        CasClient(f"http://127.0.0.1:{free_port()}", retries=0, timeout_s=1).place(req, names)


def test_cas_serve_on_a_busy_port_fails_before_announcing(tmp_path: Any) -> None:
    import socket
    import subprocess
    import sys

    from tests.conftest import clean_environ

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = subprocess.run([sys.executable, "-m", "greengrader", "cas", "serve", "--port", str(port)],
                             env={**clean_environ(), "GREENGRADER_HOME": str(tmp_path)},
                             capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "listening" not in out.stderr and f"cannot listen on 127.0.0.1:{port}" in out.stderr
    assert out.stderr.count("\n") == 1


def test_healthz_is_part_of_the_documented_api(cas_url: str) -> None:
    assert requests.get(cas_url + "/healthz", timeout=10).json()
    assert "/healthz" in requests.get(cas_url + "/openapi.json", timeout=10).json()["paths"]
def test_start_time_without_zone_is_utc_with_a_warning(cas_url: str) -> None:
    naive = call(cas_url, c3lab_body(schedule={"type": "onetime", "start_time": "2023-05-10T18:30:00"}))
    aware = call(cas_url, c3lab_body())
    assert naive.status_code == 200, naive.text
    doc = naive.json()
    assert doc["optimal-start-time"] == START.isoformat()
    assert doc["optimal-regions"] == aware.json()["optimal-regions"]
    assert any("no time zone" in w for w in doc["warnings"])
    assert not any("no time zone" in w for w in aware.json()["warnings"])


def test_carbon_data_source_that_is_not_configured_is_a_warning(cas_url: str) -> None:
    doc = call(cas_url, c3lab_body(carbon_data_source="c3lab")).json()
    assert any("carbon_data_source 'c3lab'" in w for w in doc["warnings"])


def test_use_prediction_picks_forecast_or_actual_values(carbon_dir: Path, tmp_path: Path) -> None:
    from greengrader.scheduling.cas_service import decide

    # Persistence holds the nowcast flat, so with prediction the job runs at once; with
    # actual values it waits for the real minimum, which the oracle placement confirms.
    persistence = DatasetProvider(CarbonStore(tmp_path / "p", carbon_dir / "electricitymaps_greendcc"),
                                  forecast="persistence")
    oracle = DatasetProvider(CarbonStore(tmp_path / "o", carbon_dir / "electricitymaps_greendcc"), forecast="oracle")
    body = c3lab_body(schedule={"type": "onetime", "start_time": START.isoformat(), "max_delay": 12 * 3600})
    placer = Placer(SpatioTemporal(), persistence, REGIONS, capacity_aware=False, queue_aware=False)
    truth = Placer(SpatioTemporal(), oracle, REGIONS, capacity_aware=False, queue_aware=False)
    actual = decide(placer, REGIONS, {**body, "use_prediction": False}, START)
    predicted = decide(placer, REGIONS, {**body, "use_prediction": True}, START)
    expected = decide(truth, REGIONS, {**body, "use_prediction": True}, START)
    assert actual["optimal-start-time"] == expected["optimal-start-time"] != START.isoformat()
    assert predicted["optimal-start-time"] == START.isoformat()
