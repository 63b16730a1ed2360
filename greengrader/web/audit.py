"""The dashboard's audit log: logins (failed ones rate-limit login), regrades and exports."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from greengrader.models.web import AuditEvent

LOGIN_FAILED = "login_failed"


def record(
    session: Session,
    action: str,
    at: datetime,
    *,
    user_email: str | None = None,
    target: str | None = None,
    client_ip: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    session.add(AuditEvent(
        at=at, action=action, user_email=user_email, target=target, client_ip=client_ip, detail=detail
    ))


def recent_login_failures(session: Session, email: str, client_ip: str | None, since: datetime) -> int:
    """Failed logins since ``since`` for this e-mail or from this address (the larger count)."""
    who = [AuditEvent.target == email]
    if client_ip:
        who.append(AuditEvent.client_ip == client_ip)
    rows = session.execute(
        select(AuditEvent.target, AuditEvent.client_ip)
        .where(AuditEvent.action == LOGIN_FAILED, AuditEvent.at >= since, or_(*who))
    ).all()
    by_email = sum(1 for target, _ in rows if target == email)
    by_ip = sum(1 for _, ip in rows if client_ip and ip == client_ip)
    return max(by_email, by_ip)


def recent(session: Session, limit: int = 100) -> list[AuditEvent]:
    return list(session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)))


def window_start(now: datetime, window_s: float) -> datetime:
    return now - timedelta(seconds=window_s)


def count(session: Session, action: str) -> int:
    return int(session.scalar(select(func.count()).where(AuditEvent.action == action)) or 0)
