"""Health report logic: state ranking, thresholds, the one-line Nagios output."""

from __future__ import annotations

import base64

import pytest

from greengrader.errors import ConfigError
from greengrader.ops.exporter import Credentials, credentials_from, is_loopback
from greengrader.ops.health import Check, Report, State, _threshold, worst


def test_critical_outranks_warning_outranks_unknown() -> None:
    assert worst([State.OK, State.UNKNOWN]) is State.UNKNOWN
    assert worst([State.UNKNOWN, State.WARNING]) is State.WARNING
    assert worst([State.CRITICAL, State.WARNING, State.UNKNOWN]) is State.CRITICAL
    assert worst([]) is State.OK


def test_threshold_zero_disables() -> None:
    assert _threshold(10_000, 0, 0) is State.OK
    assert _threshold(299, 300, 1800) is State.OK
    assert _threshold(300, 300, 1800) is State.WARNING
    assert _threshold(1800, 300, 1800) is State.CRITICAL


def test_status_line_is_one_line_with_perfdata() -> None:
    report = Report(
        [
            Check("database", State.OK, "database ok", {"up": 1}),
            Check("broker", State.CRITICAL, "unreachable", {"up": 0}),
            Check("backlog", State.WARNING, "backlog 7", {"received": 7, "note": "x"}),
        ]
    )
    line = report.status_line()
    assert "\n" not in line
    assert line.startswith("GREENGRADER CRITICAL - database ok; broker CRITICAL: unreachable;")
    assert line.endswith("| database_up=1 broker_up=0 backlog_received=7")
    assert report.as_dict()["exit_code"] == 2


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_credentials_accept_only_the_exact_pair() -> None:
    creds = Credentials("prom", "s3cret:with:colons")
    assert creds.accepts(_basic("prom", "s3cret:with:colons"))
    assert not creds.accepts(_basic("prom", "wrong"))
    assert not creds.accepts(_basic("other", "s3cret:with:colons"))
    assert not creds.accepts("Bearer abc")
    assert not creds.accepts("Basic !!!notbase64")
    assert not creds.accepts("")


def test_credentials_must_come_in_pairs() -> None:
    assert credentials_from(None, None) is None
    with pytest.raises(ConfigError):
        credentials_from("prom", None)


@pytest.mark.parametrize(
    ("addr", "loopback"), [("127.0.0.1", True), ("::1", True), ("localhost", True), ("0.0.0.0", False), ("10.0.0.5", False)]
)
def test_loopback_detection(addr: str, loopback: bool) -> None:
    assert is_loopback(addr) is loopback
