"""Dashboard benchmark: overview and submissions list with N submissions in Postgres.

Seeds one submission per assignment through the real ingest path (prepare + store), then
multiplies them in SQL to N submissions (statuses, regions, receipt times over a week),
with a Result and a Decision for every graded one. Requests go through the whole ASGI app
in process (session cookie, scoping, queries, templates, charts), so the time is what the
server spends per request, without the network.

    .venv/bin/python benchmarks/web.py [-n 100000] [--repeat 30]

Prints median and p95 milliseconds per page for an admin and for a one-course staff user.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import sqlalchemy as sa

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from greengrader.bridge.ingest import prepare, store_prepared  # noqa: E402
from greengrader.context import Context  # noqa: E402
from greengrader.db import Database  # noqa: E402
from greengrader.settings import load_settings  # noqa: E402
from greengrader.web.accounts import Accounts  # noqa: E402
from tests.payloads import build, metadata  # noqa: E402
from tests.web_data import PASSWORD, app_for, login  # noqa: E402

PG = "postgresql+psycopg2://postgres@127.0.0.1:5432/"
COURSES, ASSIGNMENTS_PER_COURSE = 4, 5
REGIONS = ["us-west", "us-east", "us-central", "ca-central", "us-northeast"]

FILL = """
INSERT INTO submission (gradescope_id, assignment_id, sha256, size, metadata, users, hostname,
                        gradescope_score, received_at, status, updated_at, region, attempts)
SELECT 10000000 + g, s.assignment_id, md5(g::text) || md5((g + 1)::text), s.size, s.metadata, s.users,
       s.hostname, CASE WHEN g % 37 = 0 THEN 10.0 ELSE 6.0 END,
       now() - (g % 10080) * interval '1 minute',
       CASE WHEN g % 50 = 0 THEN 'queued' WHEN g % 97 = 0 THEN 'error' ELSE 'graded' END,
       now(), (:regions)[1 + g % 5], 1
FROM generate_series(1, :n) AS g
JOIN (SELECT row_number() OVER (ORDER BY id) - 1 AS k, * FROM submission) AS s ON s.k = g % :seeds
"""
RESULTS = """
INSERT INTO result (submission_id, region, outcome, message, score, max_score, tests, started_at,
                    finished_at, runtime_s, turnaround_s, energy_kwh, carbon_g, intensity, agrees, created_at)
SELECT id, region, 'graded', 'Graded.', 6.0, 10.0, '[{"name": "t", "score": 6.0, "max_score": 10.0}]'::jsonb,
       received_at, received_at + interval '2 seconds', 1 + (id % 7) * 0.3, 5.0,
       1e-6 * (1 + id % 7), 1e-4 * (1 + id % 7), 100 + (id % 5) * 50, gradescope_score = 6.0, now()
FROM submission WHERE status = 'graded'
"""
DECISIONS = """
INSERT INTO decision (submission_id, policy, candidates, region, start_at, expected_g, runtime_estimate_s,
                      reason, created_at)
SELECT id, 'carbon-optimal',
       jsonb_build_object('us-west', jsonb_build_object('intensity', 260.0, 'expected_g', 0.03),
                          region, jsonb_build_object('intensity', 100 + (id % 5) * 50, 'expected_g', 0.01)),
       region, received_at, 0.01, 60.0, 'bench', received_at
FROM submission WHERE region IS NOT NULL
"""


def seed(ctx: Context) -> None:
    items = []
    for c in range(COURSES):
        for a in range(ASSIGNMENTS_PER_COURSE):
            meta = metadata(submission_id=900000 + c * 100 + a, assignment_id=5000 + c * 100 + a, course_id=77 + c)
            items.append(prepare(ctx.settings, build(meta)))
    outcomes = store_prepared(ctx, items)
    assert all(o.status == "received" for o in outcomes), outcomes


def fill(db: Database, n: int) -> float:
    t0 = time.perf_counter()
    with db.engine.begin() as conn:
        seeds = conn.scalar(sa.text("SELECT count(*) FROM submission"))
        conn.execute(sa.text(FILL).bindparams(sa.bindparam("regions", type_=sa.ARRAY(sa.String))),
                     {"n": n - seeds, "seeds": seeds, "regions": REGIONS})
        conn.execute(sa.text(RESULTS))
        conn.execute(sa.text(DECISIONS))
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE"))
    return time.perf_counter() - t0


QUERIES = [0]


def count_queries(*_args: object) -> None:
    QUERIES[0] += 1


def timed(client: object, url: str, repeat: int) -> tuple[float, float, float, int]:
    times: list[float] = []
    for _ in range(repeat + 2):
        t0 = time.perf_counter()
        r = client.get(url)  # type: ignore[attr-defined]
        times.append((time.perf_counter() - t0) * 1000)
        assert r.status_code == 200, (url, r.status_code, r.text[:200])
    first, rest = times[0], sorted(times[2:])  # the first two warm caches and the pool
    before = QUERIES[0]
    client.get(url)  # type: ignore[attr-defined]
    return first, statistics.median(rest), rest[int(0.95 * (len(rest) - 1))], QUERIES[0] - before


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=30)
    args = ap.parse_args()
    name = f"gg_bench_web_{os.getpid()}"
    admin = sa.create_engine(PG + "postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    db = Database(PG + name)
    try:
        db.upgrade()
        settings = load_settings(database_url=db.url, broker_url="redis://127.0.0.1:6379/14",
                                 pseudonym_key="benchmark-only-pseudonym-key-0123")
        ctx = Context.from_settings(settings)
        ctx.db = db
        seed(ctx)
        print(f"filled {args.n} submissions in {fill(db, args.n):.1f} s")
        accounts = Accounts(db)
        accounts.add("admin@example.edu", "admin", PASSWORD)
        accounts.add("ta@example.edu", "staff", PASSWORD, [77])
        from fastapi.testclient import TestClient

        app = app_for(ctx, accounts)
        with db.engine.connect() as conn:
            middle = conn.scalar(sa.text("SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY id) FROM submission"))
            some_gs = conn.scalar(sa.text(f"SELECT gradescope_id FROM submission ORDER BY id DESC "
                                          f"OFFSET {min(777, args.n // 2)} LIMIT 1"))
        pages = [
            ("overview (HTML)", "/"), ("overview (JSON)", "/api/v1/overview"),
            ("submissions, first page", "/submissions"), ("submissions, middle page", f"/submissions?before={middle}"),
            ("submissions, status=error", "/submissions?status=error"),
            ("submissions, agreement=differs", "/submissions?agreement=differs"),
            ("submissions, region=ca-central", "/submissions?region=ca-central"),
            ("submissions, search by Gradescope id", f"/submissions?q={some_gs}"),
            ("submissions (JSON, 500 rows)", "/api/v1/submissions?limit=500"),
            ("carbon chart (SVG)", "/charts/carbon.svg"),
        ]
        sa.event.listen(db.engine, "before_cursor_execute", count_queries)
        print(f"load average before: {os.getloadavg()[0]:.1f}")
        print(f"{'page':40} {'user':6} {'first ms':>9} {'median ms':>10} {'p95 ms':>8} {'queries':>8}")
        for email, who in (("admin@example.edu", "admin"), ("ta@example.edu", "staff")):
            client = TestClient(app)
            assert login(client, email).status_code == 303
            for label, url in pages:
                first, med, p95, queries = timed(client, url, args.repeat)
                print(f"{label:40} {who:6} {first:9.1f} {med:10.1f} {p95:8.1f} {queries:8d}")
        print(f"load average after: {os.getloadavg()[0]:.1f}")
        with db.engine.connect() as conn:
            plan = conn.execute(sa.text(
                "EXPLAIN SELECT id FROM submission WHERE status = 'error' AND id < :m ORDER BY id DESC LIMIT 51"
            ), {"m": middle}).scalars().all()
        print("list plan (status filter, keyset):", " / ".join(p.strip() for p in plan[:3]))
    finally:
        db.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
