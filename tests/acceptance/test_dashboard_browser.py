"""The dashboard in a real browser (Playwright driving Debian's Chromium) against a database
filled by the real pipeline: fixture payloads ingested, scheduled by the placer and graded
in Docker. Screenshots of every page at 1280x800 and at a 390 px phone width are written
to ``test-artefacts/screenshots/`` (git-ignored)."""

from __future__ import annotations

import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import playwright.sync_api as playwright_api
import pytest
import uvicorn
from sqlalchemy import select

from greengrader.bridge.ingest import ingest_bytes
from greengrader.context import Context
from greengrader.grading.executors.docker import DockerExecutor
from greengrader.grading.service import grade_submission
from greengrader.models import AuditEvent, Submission
from greengrader.ops.workers import collect_facts, register_worker
from tests.conftest import REPO
from tests.web_data import (
    COURSE_A,
    COURSE_B,
    PASSWORD,
    add_users,
    app_for,
    ingest_and_schedule,
    variant,
)

pytestmark = pytest.mark.docker
SHOTS = REPO / "test-artefacts" / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@dataclass
class Site:
    ctx: Context
    url: str
    executor: DockerExecutor
    accounts: Any
    graded: int
    disagreeing: int
    queued: int
    other_course: int


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _status(ctx: Context, sid: int) -> str:
    with ctx.db.session() as session:
        sub = session.get(Submission, sid)
        assert sub is not None
        return sub.status


@pytest.fixture
def site(context: Context, fixtures_dir: Path, docker_client: Any, base_image: str) -> Iterator[Site]:
    payloads = fixtures_dir / "hello-python" / "payloads"
    correct, partial = (payloads / "correct.zip").read_bytes(), (payloads / "partial.zip").read_bytes()
    executor = DockerExecutor(context.settings, client=docker_client, worker=f"web-{uuid.uuid4().hex[:8]}")
    register_worker(context, collect_facts(hostname=executor.worker), region=context.settings.default_region)
    graded = ingest_and_schedule(context, variant(correct, submission_id=1001, course_id=COURSE_A))
    # Gradescope gave 10 where the autograder really gives 6: a disagreement to find.
    disagreeing = ingest_and_schedule(
        context, variant(partial, submission_id=1002, course_id=COURSE_A, gradescope_score=10.0)
    )
    other = ingest_and_schedule(context, variant(correct, submission_id=2001, course_id=COURSE_B, assignment_id=40001))
    for sid in (graded, disagreeing, other):
        assert grade_submission(context, sid, executor=executor) is not None
    queued = ingest_and_schedule(context, variant(correct, submission_id=1003, course_id=COURSE_A))
    assert _status(context, queued) == "queued"
    assert ingest_bytes(context, b"PK\x03\x04 not really a zip").status == "quarantined"
    accounts = add_users(context)
    app = app_for(context, accounts)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(100):
        if server.started:
            break
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield Site(context, f"http://127.0.0.1:{port}", executor, accounts, graded, disagreeing, queued, other)
    finally:
        server.should_exit = True
        thread.join(10)
        executor.drain()


@pytest.fixture
def browser() -> Iterator[Any]:
    path = shutil.which("chromium")
    assert path, "chromium is not installed (apt-get install -y chromium; scripts/test.sh does)"
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _login(browser: Any, site: Site, email: str, width: int = 1280, height: int = 800) -> Any:
    page = browser.new_context(viewport={"width": width, "height": height}).new_page()
    page.goto(site.url + "/")
    assert page.url.startswith(site.url + "/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(site.url + "/")
    return page


def _shot(page: Any, name: str) -> None:
    page.wait_for_function("Array.from(document.images).every(i => i.complete)")
    broken = page.evaluate("Array.from(document.images).filter(i => !i.naturalWidth).map(i => i.src)")
    assert broken == [], f"{name}: charts that did not load: {broken}"
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    # Readable on a phone means no sideways scrolling of the page itself (wide tables scroll inside).
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), f"{name} overflows"


def test_a_ta_walks_every_page_finds_the_disagreement_and_regrades(browser: Any, site: Site) -> None:
    expect = playwright_api.expect
    page = _login(browser, site, "ta-a@example.edu")
    expect(page.locator("h1")).to_have_text("Overview")
    expect(page.get_by_text("Carbon saved")).to_be_visible()
    _shot(page, "overview-1280")
    page.click("text=see them")  # the disagreements card
    expect(page.locator("table.list tbody tr")).to_have_count(1)
    _shot(page, "submissions-differs-1280")
    page.click("table.list tbody tr a >> nth=0")
    expect(page.locator("#status")).to_have_text("graded")
    expect(page.get_by_text("✗ differs").first).to_be_visible()
    expect(page.get_by_text("we scored 6, Gradescope 10")).to_be_visible()
    chart = page.locator("figure.chart img")
    expect(chart).to_have_count(1)
    chart.scroll_into_view_if_needed()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=chart.element_handle())
    _shot(page, "submission-disagreement-1280")
    for path, heading, name in (("/submissions", "Submissions", "submissions-1280"),
                                ("/assignments", "Assignments", "assignments-1280"),
                                ("/regions", "Regions and workers", "regions-1280")):
        page.goto(site.url + path)
        expect(page.locator("h1")).to_have_text(heading)
        _shot(page, name)
    assert "2001" not in page.goto(site.url + "/submissions").text()  # course B's submission
    page.fill("input[name=q]", "1001")
    page.click("form.filters button")
    expect(page.locator("table.list tbody tr")).to_have_count(1)

    # Regrade: the button sends the graded submission back to the scheduler, audited.
    page.goto(f"{site.url}/submissions/{site.graded}")
    expect(page.locator("#status")).to_have_text("graded")
    page.click("#regrade")
    expect(page.locator("p.notice")).to_contain_text("Regrade requested")
    assert page.locator("#status").inner_text() in ("received", "scheduled", "queued")
    with site.ctx.db.session() as session:
        assert session.scalars(select(AuditEvent.user_email).where(AuditEvent.action == "regrade")).all() == [
            "ta-a@example.edu"
        ]


def test_queued_to_graded_shows_up_within_two_seconds(browser: Any, site: Site) -> None:
    page = _login(browser, site, "ta-a@example.edu")
    overview = page.context.new_page()
    overview.goto(site.url + "/")
    graded_today = overview.locator("[data-k='today.graded']")
    queued_today = overview.locator("[data-k='today.queued']")
    before = int(graded_today.inner_text())
    playwright_api.expect(queued_today).to_have_text("1")
    page.goto(f"{site.url}/submissions/{site.queued}")
    status = page.locator("#status")
    playwright_api.expect(status).to_have_text("queued")
    assert grade_submission(site.ctx, site.queued, executor=site.executor) is not None
    graded_at = time.monotonic()
    playwright_api.expect(status).to_have_text("graded", timeout=2000)
    assert time.monotonic() - graded_at < 2.0
    # The open overview updates its counts in place, without a reload.
    playwright_api.expect(graded_today).to_have_text(str(before + 1), timeout=3000)
    playwright_api.expect(queued_today).to_have_text("0")


def test_admin_pages_and_phone_width(browser: Any, site: Site) -> None:
    admin = _login(browser, site, "admin@example.edu")
    admin.goto(site.url + "/quarantine")
    playwright_api.expect(admin.locator("table.list tbody td b")).to_have_text("corrupt_zip")
    _shot(admin, "quarantine-1280")
    phone = _login(browser, site, "admin@example.edu", width=390, height=844)
    for path, name in (("/", "overview-390"), ("/submissions", "submissions-390"),
                       (f"/submissions/{site.disagreeing}", "submission-390"), ("/regions", "regions-390"),
                       ("/assignments", "assignments-390")):
        phone.goto(site.url + path)
        _shot(phone, name)


def test_access_control_in_the_browser(browser: Any, site: Site) -> None:
    anon = browser.new_context().new_page()
    for path in ("/", "/submissions", f"/submissions/{site.graded}", "/regions"):
        anon.goto(site.url + path)
        assert anon.url.startswith(site.url + "/login") and "1001" not in anon.content()
    response = anon.goto(site.url + "/api/v1/submissions")
    assert response is not None and response.status == 401 and "1001" not in anon.content()

    ta = _login(browser, site, "ta-a@example.edu")
    response = ta.goto(f"{site.url}/submissions/{site.other_course}")
    assert response is not None and response.status == 404
    assert ta.request.get(f"{site.url}/api/v1/submissions/{site.other_course}").status == 404
    _, token = site.accounts.issue_token("ta-a@example.edu")
    api = ta.context.request
    bearer = {"Authorization": f"Bearer {token}"}
    anon_api = anon.context.request
    assert anon_api.get(f"{site.url}/api/v1/submissions/{site.other_course}", headers=bearer).status == 404
    assert anon_api.get(f"{site.url}/api/v1/submissions/{site.graded}", headers=bearer).status == 200
    # A POST with the session cookie but without the CSRF token is refused.
    refused = api.post(f"{site.url}/submissions/{site.graded}/regrade", form={"x": "1"})
    assert refused.status == 403
    assert _status(site.ctx, site.graded) == "graded"
