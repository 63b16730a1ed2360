"""Dashboard test data: Gradescope fixture payloads re-targeted at other courses and ids,
stored through the real ingest path, scheduled by the real placer; plus users and a
logged-in test client."""

from __future__ import annotations

import io
import json
import re
import zipfile
from typing import Any

from fastapi.testclient import TestClient

from greengrader.bridge.ingest import ingest_bytes
from greengrader.carbon import get_provider
from greengrader.context import Context
from greengrader.scheduling.service import schedule_submission
from greengrader.web import create_app
from greengrader.web.accounts import Accounts

COURSE_A, COURSE_B = 4242, 5151
PASSWORD = "correct horse battery staple"
META = "gradescope_data/autograder/submission_metadata.json"
RESULTS = "gradescope_data/autograder/results/results.json"


def variant(
    original: bytes, *, submission_id: int, course_id: int, assignment_id: int = 31337,
    gradescope_score: float | None = None,
) -> bytes:
    """The payload with new Gradescope ids (and optionally another Gradescope score)."""
    src = zipfile.ZipFile(io.BytesIO(original))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == META:
                meta = json.loads(data)
                meta["id"] = submission_id
                meta["assignment"]["id"], meta["assignment"]["course_id"] = assignment_id, course_id
                data = json.dumps(meta).encode()
            elif info.filename == RESULTS and gradescope_score is not None:
                results = json.loads(data)
                results["score"] = gradescope_score
                data = json.dumps(results).encode()
            dst.writestr(info, data)
    return out.getvalue()


def ingest(ctx: Context, data: bytes) -> int:
    outcome = ingest_bytes(ctx, data)
    assert outcome.status == "received", outcome
    assert outcome.submission_id is not None
    return outcome.submission_id


def ingest_and_schedule(ctx: Context, data: bytes) -> int:
    from tests.integration.scheduling_helpers import live_workers

    live_workers(ctx)  # placement counts live workers only
    sid = ingest(ctx, data)
    assert schedule_submission(ctx, sid) is not None
    return sid


def add_users(ctx: Context) -> Accounts:
    accounts = Accounts(ctx.db)
    accounts.add("admin@example.edu", "admin", PASSWORD)
    accounts.add("ta-a@example.edu", "staff", PASSWORD, [COURSE_A])
    accounts.add("ta-b@example.edu", "staff", PASSWORD, [COURSE_B])
    return accounts


def app_for(ctx: Context, accounts: Accounts) -> Any:
    provider = get_provider(ctx.settings.carbon_source, ctx.settings)
    return create_app(ctx, accounts=accounts, provider=provider, secret_key="test-secret-" + "x" * 20)


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def login(client: TestClient, email: str, password: str = PASSWORD) -> Any:
    token = csrf_of(client.get("/login").text)
    return client.post(
        "/login", data={"email": email, "password": password, "csrf_token": token}, follow_redirects=False
    )
