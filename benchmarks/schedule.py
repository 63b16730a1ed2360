"""Scheduling throughput: decisions per second in process and through the CAS over HTTP.

Ten regions with real hourly data (../shared/carbon/electricitymaps_greendcc), the
spatio-temporal policy with 6 h of slack and a perfect-foresight forecast, decision times
spread over one week of 2023. Prints:

- in process, one ``Placer.place()`` per decision (what the ``schedule`` task does),
- in process, ``Placer.place_many()`` batches (what ``dispatch`` of a backlog can use),
- the bare kernel on a shared grid (the simulator's path, 1 M jobs x 20 regions x 1 year),
- through ``greengrader cas serve`` (real uvicorn in a subprocess), from concurrent clients.

Targets: >= 10 000 decisions/s in process, >= 1 000/s through CAS HTTP.

    .venv/bin/python benchmarks/schedule.py [--seconds 5] [--clients 4]
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import requests

from greengrader.carbon.dataset import DatasetProvider
from greengrader.carbon.store import CarbonStore
from greengrader.regions.registry import Region
from greengrader.scheduling.cas_client import PATH
from greengrader.scheduling.placement import Placer
from greengrader.scheduling.policies import get_policy
from greengrader.scheduling.types import PlacementRequest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("GREENGRADER_SHARED_DIR", REPO.parent / "shared"))
DATA = SHARED / "carbon" / "electricitymaps_greendcc"
ZONES = ["US-CAL-CISO", "US-TEX-ERCO", "US-MIDA-PJM", "US-NY-NYIS", "CA-ON",
         "GB", "DE-LU", "JP-TK", "AU-NSW", "BR-SP"]
START = datetime(2023, 5, 8, 0, 7, tzinfo=UTC)
SLACK_S = 6 * 3600


def regions() -> list[Region]:
    return [Region(name=z.lower(), zone=z, lat=0.0, lon=0.0, capacity=8, untainted_nodes=2) for z in ZONES]


def regions_toml(path: Path) -> Path:
    path.write_text("".join(f'[regions.{r.name}]\nzone = "{r.zone}"\nlat = 0.0\nlon = 0.0\ncapacity = 8\n\n'
                            for r in regions()))
    return path


def decision_times(n: int) -> list[datetime]:
    # Decisions arrive through one week; consecutive ones share the minute's forecast cache.
    return [START + timedelta(seconds=int(s)) for s in np.linspace(0, 7 * 86_400, n)]


def in_process(home: Path, seconds: float) -> dict[str, float]:
    provider = DatasetProvider(CarbonStore(home, DATA), forecast="oracle")
    placer = Placer(get_policy("spatio-temporal"), provider, regions())
    times = decision_times(200_000)
    placer.place(PlacementRequest(earliest=times[0], runtime_s=60, max_delay_s=SLACK_S), times[0])  # load data
    n, t0 = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < seconds:
        t = START + timedelta(seconds=60 * elapsed)  # a clock running 60x
        placer.place(PlacementRequest(earliest=t, runtime_s=60, max_delay_s=SLACK_S, job=n), t)
        n += 1
    single = n / (time.perf_counter() - t0)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        t = times[n % len(times)]  # every decision at a different time: no forecast reuse
        placer.place(PlacementRequest(earliest=t, runtime_s=60, max_delay_s=SLACK_S, job=n), t)
        n += 1
    cold = n / (time.perf_counter() - t0)
    batch, done, t0 = 2000, 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        t = times[(done // batch) % len(times)]
        reqs = [PlacementRequest(earliest=t, runtime_s=60, max_delay_s=SLACK_S, job=done + i) for i in range(batch)]
        placer.place_many(reqs, t)
        done += batch
    many = done / (time.perf_counter() - t0)
    return {"single": single, "cold": cold, "batch": many}


def kernel() -> float:
    rng = np.random.default_rng(0)
    grid = rng.random((20, 8760)) * 500
    first = rng.integers(0, 8760, 1_000_000)
    policy = get_policy("spatio-temporal")
    t0 = time.perf_counter()
    policy.choose_grid(grid, first, 25)
    return time.perf_counter() - t0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _client(port: int, seconds: float, clock_start: float, out: mp.Queue, path: str = PATH) -> None:  # type: ignore[type-arg]
    # http.client keeps the client cheap so the figure measures the server, not the client.
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.connect()
    # http.client writes headers and body separately: without NODELAY, Nagle + delayed ACK
    # would add ~40 ms per request and measure TCP, not the service.
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    locations = [{"id": f"GreenGrader:{r.name}"} for r in regions()]
    n, errors, t0 = 0, 0, time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < seconds:
        # Requests ask about "now": a clock that runs 60x (one minute per second).
        t = datetime.fromtimestamp(clock_start + 60 * elapsed, UTC)
        body = json.dumps({
            "runtime": 60, "schedule": {"type": "onetime", "start_time": t.isoformat(), "max_delay": SLACK_S},
            "dataset": {"input_size_gb": 0, "output_size_gb": 0}, "candidate_locations": locations,
        })
        conn.request("GET", path, body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        errors += resp.status != 200
        n += 1
    out.put((n, errors, time.perf_counter() - t0))


def through_cas(home: Path, seconds: float, clients: int, workers: int, path: str = PATH) -> tuple[float, int]:
    port = free_port()
    env = {**os.environ, "GREENGRADER_HOME": str(home), "GREENGRADER_CARBON_SOURCE": "dataset",
           "GREENGRADER_CARBON_DATA_DIR": str(DATA), "GREENGRADER_FORECAST": "oracle",
           "GREENGRADER_REGIONS_FILE": str(regions_toml(home / "regions.toml")),
           # The default region must be one of the file's (an unknown one is a start-up error).
           "GREENGRADER_DEFAULT_REGION": regions()[0].name}
    server = subprocess.Popen([sys.executable, "-m", "greengrader", "cas", "serve", "--port", str(port),
                               "--workers", str(workers)],
                              env=env, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("CAS did not start") from None
                time.sleep(0.2)
        for _ in range(workers):  # warm up every worker: each loads the carbon data once
            _client(port, 1.0, START.timestamp(), mp.Queue())
        out: mp.Queue = mp.Queue()  # type: ignore[type-arg]
        procs = [mp.Process(target=_client, args=(port, seconds, START.timestamp(), out, path)) for _ in range(clients)]
        for p in procs:
            p.start()
        results = [out.get() for _ in procs]
        for p in procs:
            p.join()
        total = sum(r[0] for r in results)
        return total / max(r[2] for r in results), sum(r[1] for r in results)
    finally:
        server.terminate()
        server.wait(timeout=10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2, help="uvicorn workers for the CAS")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        rates = in_process(home, args.seconds)
        print(f"in process, place() one at a time: {rates['single']:,.0f} decisions/s "
              f"(10 regions, hourly data, 6 h slack)")
        print(f"in process, place() with a new forecast every decision: {rates['cold']:,.0f} decisions/s")
        print(f"in process, place_many() batches of 2000: {rates['batch']:,.0f} decisions/s (target >= 10,000)")
        print(f"kernel, 1 M jobs x 20 regions x 8760 h, 25 starts: {kernel() * 1000:.0f} ms")
        # The same clients and server against /healthz: the HTTP stack's ceiling on this
        # machine (client and server share the cores), so the CAS figure can be judged.
        ceiling, _ = through_cas(home, args.seconds, args.clients, args.workers, "/healthz")
        print(f"same clients against a trivial endpoint (/healthz): {ceiling:,.0f} requests/s")
        rate, errors = through_cas(home, args.seconds, args.clients, args.workers)
        print(f"through CAS HTTP (uvicorn, {args.workers} workers, {args.clients} clients): {rate:,.0f} decisions/s, "
              f"{errors} errors (target >= 1,000)")


if __name__ == "__main__":
    main()
