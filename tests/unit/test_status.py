from __future__ import annotations

import itertools

import pytest

from greengrader.errors import InvalidTransition
from greengrader.models import Status, Submission
from greengrader.models.status import ALLOWED, TERMINAL, can_transition


def test_happy_path_is_allowed() -> None:
    path = [Status.RECEIVED, Status.SCHEDULED, Status.QUEUED, Status.RUNNING, Status.GRADED]
    for current, target in itertools.pairwise(path):
        assert can_transition(current, target)


@pytest.mark.parametrize("terminal", sorted(TERMINAL))
def test_terminal_only_reopens_for_regrade(terminal: Status) -> None:
    assert ALLOWED[terminal] == frozenset({Status.RECEIVED})


def test_move_to_records_history_and_rejects_skips() -> None:
    sub = Submission(status=Status.RECEIVED.value)
    sub.move_to(Status.SCHEDULED, "placed in us-west")
    assert sub.status == "scheduled"
    assert [(e.from_status, e.to_status) for e in sub.events] == [("received", "scheduled")]
    with pytest.raises(InvalidTransition, match="'scheduled' -> 'graded'"):
        sub.move_to(Status.GRADED)
    assert sub.status == "scheduled"
