"""Ingestion benchmark: N payloads of ~50 KB through the real Mosquitto into Postgres.

Starts ``greengrader bridge`` as a subprocess on a fresh Postgres database, publishes from
several concurrent publisher processes (QoS 1), and measures from each publish to the
receipt the bridge sends after its commit (so latencies are publish→commit plus the receipt
hop). A fraction of payloads is published twice to exercise deduplication.

    .venv/bin/python benchmarks/ingest.py [-n 5000] [--publishers 4] [--batch 50]

Prints payloads/s, p50/p95 latency and stored / duplicate / lost counts.
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing as mp
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from pathlib import Path

import paho.mqtt.client as mqtt
import psutil
import redis
import sqlalchemy as sa
from paho.mqtt.enums import CallbackAPIVersion

from greengrader.bridge.offload import PREPARE_WORKERS

REPO = Path(__file__).resolve().parent.parent
PG_ADMIN = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
SOURCE = {"run_autograder": b"#!/bin/sh\npython3 tests/run.py\n", "tests/run.py": b"print(1)\n"}


def payload(submission_id: int, size: int) -> bytes:
    meta = {
        "id": submission_id, "created_at": "2026-11-21T11:01:00-08:00",
        "assignment": {"id": 9001, "course_id": 77, "title": "Bench", "total_points": "10.0"},
        "users": [{"id": 1 + submission_id % 5000, "name": f"Student {submission_id}",
                   "email": f"s{submission_id}@example.edu", "sid": f"A{submission_id:08d}"}],
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("gradescope_data/hostname.txt", "10.0.3.17\n")
        base = "gradescope_data/autograder/"
        zf.writestr(base + "submission_metadata.json", json.dumps(meta, indent=2))
        zf.writestr(base + "results/results.json", json.dumps({"score": 10.0, "tests": []}))
        for rel, content in SOURCE.items():
            zf.writestr(base + "source/" + rel, content)
        # Random bytes do not compress, so the payload is ~size bytes on the wire.
        zf.writestr(base + "submission/blob.bin", os.urandom(size))
    return out.getvalue()


def publisher(port: int, topic: str, items: list[tuple[int, bytes]], out: mp.Queue) -> None:  # type: ignore[type-arg]
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(50)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    sent: list[tuple[int, float]] = []
    infos = []
    for gid, data in items:
        sent.append((gid, time.time()))
        infos.append(client.publish(topic, data, qos=1))
    for info in infos:
        info.wait_for_publish(timeout=120)
    client.disconnect()
    client.loop_stop()
    out.put(sent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=5000, help="distinct payloads")
    parser.add_argument("--size", type=int, default=50_000, help="approximate payload bytes")
    parser.add_argument("--publishers", type=int, default=4)
    parser.add_argument("--duplicates", type=float, default=0.02, help="fraction published twice")
    parser.add_argument("--batch", type=int, default=50, help="GREENGRADER_BRIDGE_BATCH_SIZE")
    parser.add_argument("--no-pseudonymise", action="store_true")
    args = parser.parse_args()

    tag = uuid.uuid4().hex[:8]
    port, broker = start_broker(tag)
    dbname = f"gg_bench_{tag}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{dbname}"'))
    db_url = f"postgresql+psycopg2://postgres@127.0.0.1:5432/{dbname}"
    env = {
        **os.environ,
        "GREENGRADER_DATABASE_URL": db_url,
        "GREENGRADER_PSEUDONYM_KEY": "benchmark-only-pseudonym-key-0123",
        "GREENGRADER_BROKER_URL": "redis://127.0.0.1:6379/9",
        "GREENGRADER_HOME": f"/tmp/gg-bench-{tag}",
        "GREENGRADER_MQTT_TOPIC": f"bench{tag}/submissions",
        "GREENGRADER_MQTT_RECEIPT_TOPIC": f"bench{tag}/receipts",
        "GREENGRADER_MQTT_CLIENT_ID": f"bench{tag}-bridge",
        "GREENGRADER_MQTT_SESSION_EXPIRY_S": "600",
        "GREENGRADER_MQTT_PORT": str(port),
        "GREENGRADER_BRIDGE_BATCH_SIZE": str(args.batch),
        "GREENGRADER_PSEUDONYMISE": "false" if args.no_pseudonymise else "true",
    }
    cmd = [sys.executable, "-m", "greengrader"]
    subprocess.run([*cmd, "db", "upgrade"], env=env, check=True, capture_output=True)
    bridge_log = f"/tmp/gg-bench-{tag}.log"
    log = open(bridge_log, "wb")  # noqa: SIM115
    bridge = subprocess.Popen([*cmd, "bridge"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        run(args, env, db_url, bridge, port, broker.pid, bridge_log)
    finally:
        broker.terminate()
        bridge.terminate()
        bridge.wait(timeout=30)
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)'))
        admin.dispose()


def start_broker(tag: str) -> tuple[int, subprocess.Popen[bytes]]:
    """A private Mosquitto with the shipped config (the system one keeps its 1000-message
    default queue, which drops QoS 1 messages under a burst)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    shipped = (REPO / "deploy" / "mosquitto" / "mosquitto.conf").read_text()
    lines = [ln for ln in shipped.splitlines() if not ln.startswith(("listener", "persistence_location", "include_dir", "log_dest"))]
    conf = Path(f"/tmp/gg-bench-{tag}-mosquitto.conf")
    conf.write_text("\n".join([*lines, f"persistence_location /tmp/gg-bench-{tag}-mq/",
                               f"listener {port} 127.0.0.1", "allow_anonymous true", ""]))
    Path(f"/tmp/gg-bench-{tag}-mq").mkdir(exist_ok=True)
    proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    return port, proc


class CpuMeter:
    """CPU seconds (user + system) each part of the pipeline spent since construction.

    Per-message CPU is what decides throughput on a small machine, and unlike payloads/s it
    hardly depends on what else the machine runs.
    """

    def __init__(self, bridge_pid: int, broker_pid: int, dbname: str) -> None:
        self.bridge = psutil.Process(bridge_pid)
        self.broker = psutil.Process(broker_pid)
        self.dbname = dbname
        self.start = self._sample()

    def _sample(self) -> dict[str, float]:
        bridge_workers = sum(_cpu(p) for p in self.bridge.children(recursive=True))
        postgres = sum(
            _cpu(p) for p in psutil.process_iter(["cmdline"])
            if p.info["cmdline"] and self.dbname in " ".join(p.info["cmdline"])
        )
        me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return {
            "bridge": _cpu(self.bridge), "bridge_workers": bridge_workers, "postgres": postgres,
            "mosquitto": _cpu(self.broker), "publishers": kids.ru_utime + kids.ru_stime,
            "benchmark_receipts": me.ru_utime + me.ru_stime,
        }

    def used(self) -> dict[str, float]:
        end = self._sample()
        out = {k: end[k] - self.start[k] for k in end}
        out["total"] = sum(out.values())
        return out


def _cpu(proc: psutil.Process) -> float:
    try:
        times = proc.cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system)


def run(
    args: argparse.Namespace, env: dict[str, str], db_url: str, bridge: subprocess.Popen[bytes], port: int,
    broker_pid: int, bridge_log: str,
) -> None:
    load_at_start = round(os.getloadavg()[0], 2)
    queued_before = redis.Redis.from_url(env["GREENGRADER_BROKER_URL"]).llen("scheduling")
    print(f"building {args.n} payloads of ~{args.size} bytes ...", flush=True)
    items = [(700_000_000 + i, payload(700_000_000 + i, args.size)) for i in range(args.n)]
    dups = items[: int(args.n * args.duplicates)]
    wire = items + dups
    mean_size = statistics.mean(len(d) for _, d in items)

    receipts: dict[int, list[tuple[float, str]]] = {}
    lock = threading.Lock()

    def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        now = time.time()
        last = msg.topic.rsplit("/", 1)[1]
        gid = int(last) if last.isdigit() else -1
        with lock:
            receipts.setdefault(gid, []).append((now, json.loads(msg.payload)["status"]))

    sub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    sub.on_message = on_message
    sub.connect("127.0.0.1", port)
    sub.subscribe(f"{env['GREENGRADER_MQTT_RECEIPT_TOPIC']}/#", qos=1)
    sub.loop_start()
    # Messages published before the bridge's first subscription would be lost (its session
    # does not exist yet); on a loaded machine starting its worker process takes seconds.
    deadline = time.time() + 120
    while b"subscribed to" not in Path(bridge_log).read_bytes():
        assert bridge.poll() is None, "bridge exited"
        assert time.time() < deadline, "bridge did not subscribe"
        time.sleep(0.2)
    time.sleep(0.5)  # the SUBSCRIBE is sent before the log line; let the SUBACK land

    print(f"publishing {len(wire)} messages ({len(dups)} duplicates) from {args.publishers} publishers ...", flush=True)
    cpu = CpuMeter(bridge.pid, broker_pid, db_url.rsplit("/", 1)[1])
    out: mp.Queue = mp.Queue()  # type: ignore[type-arg]
    shares = [wire[i :: args.publishers] for i in range(args.publishers)]
    start = time.time()
    procs = [mp.Process(target=publisher, args=(port, env["GREENGRADER_MQTT_TOPIC"], s, out)) for s in shares]
    for p in procs:
        p.start()
    sent: dict[int, float] = {}
    for _ in procs:
        for gid, t in out.get(timeout=600):
            sent.setdefault(gid, t)
    for p in procs:
        p.join()
    published = time.time()

    last_count, last_change = -1, time.time()
    while True:
        with lock:
            got = sum(len(v) for v in receipts.values())
        if got >= len(wire):
            break
        if got != last_count:
            last_count, last_change = got, time.time()
        elif time.time() - last_change > 30:
            break
        time.sleep(0.2)
    sub.disconnect()
    # The schedule tasks this run enqueued (no worker consumes them); then drop them, their
    # submissions die with the benchmark database.
    broker = redis.Redis.from_url(env["GREENGRADER_BROKER_URL"])
    deadline = time.time() + 10
    while (scheduled := broker.llen("scheduling") - queued_before) < args.n and time.time() < deadline:
        time.sleep(0.2)
    broker.delete("scheduling")
    broker.close()
    sub.loop_stop()

    firsts = {gid: min(t for t, _ in v) for gid, v in receipts.items() if gid in sent}
    end = max(firsts.values())
    latencies = sorted(firsts[g] - sent[g] for g in firsts)
    statuses = [s for v in receipts.values() for _, s in v]
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT count(*) FROM submission")).scalar_one()
        distinct = conn.execute(sa.text("SELECT count(DISTINCT gradescope_id) FROM submission")).scalar_one()
    engine.dispose()
    elapsed = end - start
    cpu_ms = {k: round(1000 * v / len(wire), 3) for k, v in cpu.used().items()}
    print(json.dumps({
        "payloads": args.n, "messages": len(wire), "mean_payload_bytes": round(mean_size),
        "publishers": args.publishers, "batch": args.batch, "prepare_workers": PREPARE_WORKERS,
        "publish_s": round(published - start, 2), "elapsed_s": round(elapsed, 2),
        "payloads_per_s": round(len(wire) / elapsed, 1),
        "p50_ms": round(1000 * latencies[len(latencies) // 2], 1),
        "p95_ms": round(1000 * latencies[int(len(latencies) * 0.95)], 1),
        "stored": stored, "distinct_ids": distinct,
        "duplicates": statuses.count("duplicate"), "quarantined": statuses.count("quarantined"),
        "lost": args.n - distinct,
        "schedule_tasks": scheduled,
        "cpu_ms_per_message": cpu_ms,
        "load_1min_at_start": load_at_start,
    }, indent=2))


if __name__ == "__main__":
    main()
