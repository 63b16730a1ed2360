"""What each dashboard page shows, as the JSON API returns it (the HTML renders the same)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class StatusCounts(BaseModel):
    today: dict[str, int]
    week: dict[str, int]


class RegionNow(BaseModel):
    name: str
    zone: str
    enabled: bool
    capacity: int
    queue_depth: int | None
    live_workers: int
    intensity: float | None
    intensity_error: str | None = None


class CarbonDay(BaseModel):
    day: str
    emitted_g: float
    baseline_g: float
    jobs: int


class CarbonSummary(BaseModel):
    baseline_region: str
    emitted_g: float
    baseline_g: float
    saved_g: float
    graded_jobs: int
    days: list[CarbonDay]


class Alert(BaseModel):
    check: str
    state: str
    summary: str


class Overview(BaseModel):
    generated_at: datetime
    counts: StatusCounts
    regions: list[RegionNow]
    carbon: CarbonSummary
    disagreements: int
    alerts: list[Alert]


class SubmissionIdentity(BaseModel):
    """What names a submission on every page: its ids, assignment and status."""

    id: int
    gradescope_id: int
    course_gradescope_id: int
    assignment_id: int
    assignment_title: str
    status: str


class SubmissionRow(SubmissionIdentity):
    region: str | None
    received_at: datetime
    score: float | None
    max_score: float | None
    gradescope_score: float | None
    agrees: bool | None
    carbon_g: float | None
    runtime_s: float | None


class SubmissionPage(BaseModel):
    rows: list[SubmissionRow]
    next_before: int | None
    filters: dict[str, str]


class Event(BaseModel):
    at: datetime
    from_status: str | None
    to_status: str
    reason: str | None


class CandidateView(BaseModel):
    region: str
    zone: str | None
    intensity: float | None
    expected_g: float | None
    best_start: str | None
    feasible: bool
    why_not: str | None
    queue_wait_s: float
    chosen: bool


class DecisionView(BaseModel):
    id: int
    policy: str
    region: str
    start_at: datetime
    created_at: datetime
    expected_g: float | None
    runtime_estimate_s: float | None
    reason: str | None
    fallback: str | None
    candidates: list[CandidateView]


class TestRow(BaseModel):
    name: str
    ours_score: float | None
    ours_max: float | None
    ours_status: str | None
    gradescope_score: float | None
    gradescope_status: str | None
    same: bool | None


class ComparisonView(BaseModel):
    """Our result against Gradescope's; ``kind`` names the comparison that produced it."""

    kind: str
    ours: float | None
    gradescope: float | None
    agrees: bool | None
    explanation: str
    tests: list[TestRow]


class ResultView(BaseModel):
    outcome: str
    message: str | None
    score: float | None
    max_score: float | None
    region: str | None
    worker: str | None
    started_at: datetime | None
    finished_at: datetime | None
    runtime_s: float | None
    turnaround_s: float | None
    cpu_s: float | None
    energy_kwh: float | None
    carbon_g: float | None
    intensity: float | None
    sandbox: str | None
    output: str
    output_truncated: bool


class SubmissionDetail(SubmissionIdentity):
    status_reason: str | None
    region: str | None
    not_before: datetime | None
    received_at: datetime
    updated_at: datetime
    attempts: int
    users: list[str]
    events: list[Event]
    decision: DecisionView | None
    earlier_decisions: int
    result: ResultView | None
    comparison: ComparisonView


class SubmissionStatus(BaseModel):
    """The small document open submission pages poll."""

    id: int
    status: str
    updated_at: datetime
    events: int


class TestFlakiness(BaseModel):
    name: str
    runs: int
    differs: int


class AssignmentView(BaseModel):
    id: int
    course_gradescope_id: int
    gradescope_id: int
    title: str
    version: str
    build_status: str
    image_tag: str | None
    build_log: str | None
    submissions: int
    graded: int
    agreement_rate: float | None
    runtime_p50_s: float | None
    runtime_p90_s: float | None
    runtimes_s: list[float]
    tests: list[TestFlakiness]


class WorkerView(BaseModel):
    hostname: str
    region: str | None
    cpu_model: str | None
    cores: int | None
    memory_gb: float | None
    last_heartbeat: datetime
    alive: bool


class RegionView(BaseModel):
    name: str
    zone: str
    enabled: bool
    capacity: int
    untainted_nodes: int
    live_workers: int
    workers: list[WorkerView]
    intensity_now: float | None
    next_24h: list[float]
    step_s: int
    error: str | None = None


class QuarantineRow(BaseModel):
    id: int
    reason: str
    detail: str | None
    sha256: str
    size: int
    topic: str | None
    truncated: bool
    received_at: datetime


class QuarantinePage(BaseModel):
    rows: list[QuarantineRow]
    next_before: int | None
