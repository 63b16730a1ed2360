"""The dashboard over HTTP (Starlette's test client) on real Postgres and Redis, with
submissions stored through the real ingest path and scheduled by the real placer."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from greengrader.context import Context
from greengrader.grading.service import grade_submission
from greengrader.models import Assignment, AuditEvent, Submission
from greengrader.web import api, chart_routes, pages
from greengrader.web.accounts import Accounts
from tests.conftest import Processes
from tests.web_data import (
    COURSE_A,
    COURSE_B,
    PASSWORD,
    add_users,
    app_for,
    csrf_of,
    ingest,
    ingest_and_schedule,
    login,
    variant,
)

STUDENT = ("Test Student", "student@example.edu", "A00900102")


@dataclass
class Dashboard:
    ctx: Context
    accounts: Accounts
    app: object
    a_correct: int
    a_partial: int
    a_error: int
    b_correct: int

    def client(self, email: str | None = None, ip: str = "testclient") -> TestClient:
        client = TestClient(self.app, client=(ip, 50000))  # type: ignore[arg-type]
        if email is not None:
            assert login(client, email).status_code == 303
        return client


def _status(ctx: Context, sid: int) -> str:
    with ctx.db.session() as session:
        sub = session.get(Submission, sid)
        assert sub is not None
        return sub.status


@pytest.fixture
def dash(context: Context, fixtures_dir: Path) -> Iterator[Dashboard]:
    payloads = fixtures_dir / "hello-python" / "payloads"
    correct, partial = (payloads / "correct.zip").read_bytes(), (payloads / "partial.zip").read_bytes()
    a1 = ingest_and_schedule(context, variant(correct, submission_id=1001, course_id=COURSE_A))
    a2 = ingest_and_schedule(context, variant(partial, submission_id=1002, course_id=COURSE_A))
    b1 = ingest_and_schedule(context, variant(correct, submission_id=2001, course_id=COURSE_B, assignment_id=40001))
    # An assignment version whose image build failed: grading ends in `error` without Docker.
    a3 = ingest(context, variant(correct, submission_id=1003, course_id=COURSE_A, assignment_id=31338))
    with context.db.transaction() as session:
        sub = session.get(Submission, a3)
        assert sub is not None
        sub.assignment.build_status, sub.assignment.build_log = "broken", "setup.sh: exit 1"
    grade_submission(context, a3)
    assert _status(context, a3) == "error"
    accounts = add_users(context)
    yield Dashboard(context, accounts, app_for(context, accounts), a1, a2, a3, b1)


def _routes(app: object, method: str) -> list[str]:
    """Every page and API route of the app with this method (read from the routers it includes)."""
    routes = [*pages.router.routes, *chart_routes.router.routes, *api.router.routes]
    assert all(r.path == "/healthz" or any(r.path == x.path for x in routes)
               for r in app.routes if hasattr(r, "methods"))  # type: ignore[attr-defined]
    return [r.path for r in routes if method in getattr(r, "methods", set())]


def _fill(path: str, sid: int) -> str:
    return path.replace("{submission_id}", str(sid)).replace("{assignment_id}", "1")


def test_logged_out_requests_get_no_data(dash: Dashboard) -> None:
    anon = dash.client()
    paths = [p for p in _routes(dash.app, "GET") if p != "/login"]
    assert "/api/v1/submissions/{submission_id}" in paths and "/" in paths
    for path in paths:
        r = anon.get(_fill(path, dash.a_correct), follow_redirects=False)
        assert r.status_code in (303, 401), (path, r.status_code)
        assert "1001" not in r.text and "hello" not in r.text.lower(), path
        if path.startswith("/api/"):
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        else:
            assert r.headers["location"].startswith("/login")


def test_every_post_route_refuses_requests_without_the_csrf_token(dash: Dashboard) -> None:
    admin = dash.client("admin@example.edu")
    posts = _routes(dash.app, "POST")
    assert {"/login", "/logout", "/submissions/{submission_id}/regrade", "/submissions/{submission_id}/export"} <= set(posts)
    for path in posts:
        url = _fill(path, dash.a_error)
        for data in ({}, {"csrf_token": "forged"}):
            r = admin.post(url, data={**data, "email": "admin@example.edu", "password": PASSWORD}, follow_redirects=False)
            assert r.status_code == 403, (path, data, r.status_code)
    assert _status(dash.ctx, dash.a_error) == "error"  # the regrade did not happen
    assert admin.get("/api/v1/me").status_code == 200  # nor did the logout


def test_staff_of_course_a_cannot_reach_course_b_by_url_api_or_post(dash: Dashboard) -> None:
    ta = dash.client("ta-a@example.edu")
    listing = ta.get("/api/v1/submissions").json()
    assert {r["id"] for r in listing["rows"]} == {dash.a_correct, dash.a_partial, dash.a_error}
    assert ta.get(f"/submissions/{dash.b_correct}").status_code == 404
    assert ta.get(f"/api/v1/submissions/{dash.b_correct}").status_code == 404
    assert ta.get(f"/api/v1/submissions/{dash.b_correct}/status").status_code == 404
    assert ta.get(f"/charts/submissions/{dash.b_correct}/placement.svg").status_code == 404
    assert ta.get(f"/charts/submissions/{dash.a_correct}/placement.svg").status_code == 200
    assert ta.get(f"/api/v1/submissions?course={COURSE_B}").json()["rows"] == []
    assert str(COURSE_B) not in ta.get("/assignments").text
    token = csrf_of(ta.get(f"/submissions/{dash.a_correct}").text)
    r = ta.post(f"/submissions/{dash.b_correct}/regrade", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 404
    r = ta.post(f"/submissions/{dash.b_correct}/export", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 404
    _, bearer = dash.accounts.issue_token("ta-a@example.edu")
    api = TestClient(dash.app)  # type: ignore[arg-type]
    headers = {"Authorization": f"Bearer {bearer}"}
    assert api.get(f"/api/v1/submissions/{dash.b_correct}", headers=headers).status_code == 404
    assert api.get(f"/api/v1/submissions/{dash.a_correct}", headers=headers).json()["gradescope_id"] == 1001
    assert ta.get("/quarantine").status_code == 403
    admin = dash.client("admin@example.edu")
    assert len(admin.get("/api/v1/submissions").json()["rows"]) == 4
    assert admin.get(f"/api/v1/submissions/{dash.b_correct}").status_code == 200


def test_bearer_tokens_work_until_revoked(dash: Dashboard) -> None:
    api = TestClient(dash.app)  # type: ignore[arg-type]
    token_id, token = dash.accounts.issue_token("ta-b@example.edu", "ci")
    headers = {"Authorization": f"Bearer {token}"}
    assert api.get("/api/v1/me", headers=headers).json()["courses"] == [COURSE_B]
    assert dash.accounts.revoke_tokens("ta-b@example.edu", token_id) == 1
    assert api.get("/api/v1/me", headers=headers).status_code == 401
    assert api.get("/api/v1/me", headers={"Authorization": "Bearer ggt_nonsense"}).status_code == 401


def test_login_is_rate_limited_and_failures_are_audited(dash: Dashboard) -> None:
    client = dash.client()
    limit = dash.ctx.settings.web_login_max_failures
    for _ in range(limit):
        assert login(client, "ta-a@example.edu", "wrong password!").status_code == 401
    r = login(client, "ta-a@example.edu")  # the right password, but too many failures
    assert r.status_code == 429 and "Too many failed logins" in r.text
    with dash.ctx.db.session() as session:
        actions = session.scalars(select(AuditEvent.action).where(AuditEvent.target == "ta-a@example.edu")).all()
    assert actions.count("login_failed") == limit and "login_throttled" in actions
    # The address is limited too; another user from elsewhere is not.
    assert login(dash.client(), "ta-b@example.edu").status_code == 429
    assert login(dash.client(ip="10.1.2.3"), "ta-b@example.edu").status_code == 303


def test_password_reset_ends_open_sessions(dash: Dashboard) -> None:
    ta = dash.client("ta-a@example.edu")
    assert ta.get("/api/v1/me").status_code == 200
    dash.accounts.reset("ta-a@example.edu", "another long password")
    assert ta.get("/api/v1/me").status_code == 401
    assert ta.get("/", follow_redirects=False).headers["location"].startswith("/login")


def test_session_cookie_is_signed_httponly_samesite(dash: Dashboard) -> None:
    r = login(dash.client(), "admin@example.edu")
    cookie = r.headers["set-cookie"].lower()
    assert "greengrader_session=" in cookie and "httponly" in cookie and "samesite=lax" in cookie
    assert "secure" not in cookie  # GREENGRADER_WEB_COOKIE_SECURE is off here
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"] and r.headers["x-frame-options"] == "DENY"
    forged = dash.client()
    forged.cookies.set("greengrader_session", r.cookies["greengrader_session"][:-4] + "AAAA")
    assert forged.get("/api/v1/me").status_code == 401


def test_regrade_and_export_are_audited(dash: Dashboard) -> None:
    admin = dash.client("admin@example.edu")
    token = csrf_of(admin.get(f"/submissions/{dash.a_error}").text)
    r = admin.post(f"/submissions/{dash.a_error}/regrade", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].endswith("done=regrade")
    assert _status(dash.ctx, dash.a_error) in ("received", "scheduled", "queued")
    r = admin.post(f"/submissions/{dash.a_correct}/export", data={"csrf_token": token})
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip" and r.content[:2] == b"PK"
    with dash.ctx.db.session() as session:
        rows = session.scalars(select(AuditEvent).where(AuditEvent.action.in_(["regrade", "export"]))).all()
        assert {(e.action, e.target, e.user_email) for e in rows} == {
            ("regrade", f"submission:{dash.a_error}", "admin@example.edu"),
            ("export", f"submission:{dash.a_correct}", "admin@example.edu"),
        }
        assert session.scalars(select(Assignment.build_status).where(Assignment.gradescope_id == 31338)).one() == "none"


def test_keyset_pagination_filters_and_search(dash: Dashboard, fixtures_dir: Path) -> None:
    correct = (fixtures_dir / "hello-python" / "payloads" / "correct.zip").read_bytes()
    for i in range(5):
        ingest(dash.ctx, variant(correct, submission_id=3000 + i, course_id=COURSE_A))
    admin = dash.client("admin@example.edu")
    seen: list[int] = []
    before = None
    while True:
        page = admin.get("/api/v1/submissions", params={"limit": 3, **({"before": before} if before else {})}).json()
        seen += [r["id"] for r in page["rows"]]
        before = page["next_before"]
        if before is None:
            break
    assert seen == sorted(seen, reverse=True) and len(seen) == len(set(seen)) == 9
    found = admin.get("/api/v1/submissions", params={"q": 3002}).json()["rows"]
    assert [r["gradescope_id"] for r in found] == [3002]
    assert {r["status"] for r in admin.get("/api/v1/submissions?status=error").json()["rows"]} == {"error"}
    assert admin.get("/api/v1/submissions?status=bogus").status_code == 400
    assert admin.get("/api/v1/submissions?q=abc").status_code == 400
    html = admin.get("/submissions", params={"q": "3002"}).text
    assert "3002" in html and "1001" not in html


def test_pages_render_for_admin_and_students_stay_pseudonymised(dash: Dashboard) -> None:
    admin = dash.client("admin@example.edu")
    expectations = {
        "/": ["Carbon saved", "Disagreements", "Regions now", '<img src="/charts/carbon.svg"'],
        "/submissions": ["Gradescope id", "1001", "2001"],
        f"/submissions/{dash.a_correct}": ["Status timeline", "Placement decision", "chosen", "placement.svg", "Regrade"],
        "/assignments": ["Assignments", "31337"],
        "/regions": ["Regions and workers", "/charts/regions.svg"],
        "/quarantine": ["Quarantine"],
    }
    for path, texts in expectations.items():
        r = admin.get(path)
        assert r.status_code == 200, path
        for text in texts:
            assert text in r.text, (path, text)
        for pii in STUDENT:
            assert pii not in r.text, (path, pii)
    for chart in ("/charts/carbon.svg", "/charts/regions.svg", f"/charts/submissions/{dash.a_correct}/placement.svg"):
        r = admin.get(chart)
        assert r.status_code == 200 and r.headers["content-type"] == "image/svg+xml" and "<svg" in r.text, chart
    detail = admin.get(f"/api/v1/submissions/{dash.a_correct}").json()
    assert detail["users"] and all(u.startswith("Student ") for u in detail["users"])
    assert [e["to_status"] for e in detail["events"]][:3] == ["received", "scheduled", "queued"]
    assert detail["decision"]["candidates"] and any(c["chosen"] for c in detail["decision"]["candidates"])
    schema = admin.get("/api/v1/openapi.json").json()
    assert {"/api/v1/overview", "/api/v1/submissions", "/api/v1/submissions/{submission_id}"} <= set(schema["paths"])
    overview = admin.get("/api/v1/overview").json()
    assert overview["counts"]["today"]["queued"] + overview["counts"]["today"]["error"] >= 3


def test_cli_manages_users_and_serves_the_dashboard(env_settings: object, processes: Processes) -> None:
    import socket
    import subprocess
    import sys
    import time

    import requests

    def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "greengrader", *args], input=stdin, text=True,
                              capture_output=True, timeout=60)

    added = cli("users", "add", "TA@Example.edu", "--role", "staff", "--course", "77", "--password-stdin",
                stdin=PASSWORD + "\n")
    assert added.returncode == 0 and "added ta@example.edu (staff, courses 77)" in added.stdout
    again = cli("users", "add", "ta@example.edu", "--role", "staff", "--course", "77", "--password-stdin",
                stdin=PASSWORD + "\n")
    assert again.returncode == 2 and again.stderr.strip() == "greengrader: user ta@example.edu already exists"
    assert "at least 10 characters" in cli("users", "reset", "ta@example.edu", "--password-stdin", stdin="short\n").stderr
    token = cli("users", "token", "ta@example.edu").stdout.strip()
    assert token.startswith("ggt_")
    assert "ta@example.edu" in cli("users", "list").stdout
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    processes.start(sys.executable, "-m", "greengrader", "web", "--port", str(port), name="web")
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            if requests.get(base + "/healthz", timeout=1).text == "ok":
                break
        except requests.ConnectionError:
            time.sleep(0.2)
    assert requests.get(base + "/api/v1/me", timeout=5).status_code == 401
    me = requests.get(base + "/api/v1/me", headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert me.json() == {"email": "ta@example.edu", "role": "staff", "courses": [77]}
    assert cli("users", "token", "ta@example.edu", "--revoke-all").stdout.strip() == "revoked 1 token(s) of ta@example.edu"
    assert requests.get(base + "/api/v1/me", headers={"Authorization": f"Bearer {token}"}, timeout=5).status_code == 401
    assert cli("users", "remove", "ta@example.edu").returncode == 0
    assert "ta@example.edu" not in cli("users", "list").stdout


@pytest.mark.parametrize("query", [
    "q=99999999999999999999", "before=-5", "before=99999999999999999999", "course=1e3", "limit=0", "limit=abc",
    "limit=100000", "status=%00", "region=%27%3B--", "agreement=", "assignment=-1", "q=%20",
])
def test_hostile_list_queries_get_a_clear_4xx_or_an_empty_page(dash: Dashboard, query: str) -> None:
    admin = dash.client("admin@example.edu")
    for path in ("/api/v1/submissions", "/submissions"):
        r = admin.get(f"{path}?{query}")
        assert r.status_code in (200, 400, 422), (path, query, r.status_code, r.text[:200])
        if r.status_code == 400:
            assert r.json()["detail"]


@pytest.mark.parametrize("sid", ["0", "-1", "99999999999999999999", "abc"])
def test_odd_submission_ids_are_not_found(dash: Dashboard, sid: str) -> None:
    admin = dash.client("admin@example.edu")
    for path in (f"/api/v1/submissions/{sid}", f"/submissions/{sid}", f"/api/v1/submissions/{sid}/status"):
        assert admin.get(path).status_code in (404, 422), path
