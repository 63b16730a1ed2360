"""Fuzzing findings against real Postgres: a payload that used to pass validation and then
fail its insert (NUL in text, NaN/Infinity or ``\\u0000`` in jsonb) is now quarantined, and
the valid payload batched with it is stored in the same transaction."""

from __future__ import annotations

import pytest

from greengrader.bridge.ingest import prepare, store_prepared
from greengrader.context import Context
from tests import payloads
from tests.unit.test_payload_regressions import REJECTED

WERE_POISON = ["nul_in_title", "nul_in_a_key", "nan_in_metadata", "overflowing_float_in_metadata", "lone_surrogate"]


@pytest.mark.parametrize("case", WERE_POISON)
def test_unstorable_metadata_is_quarantined_and_its_batch_is_stored(context: Context, case: str) -> None:
    hostile, reason = REJECTED[case]
    valid = payloads.build({**payloads.metadata(submission_id=800001)})
    batch = [prepare(context.settings, hostile, "submissions/c"), prepare(context.settings, valid, "submissions/c")]
    outcomes = store_prepared(context, batch)
    assert [(o.status, o.reason) for o in outcomes] == [("quarantined", reason), ("received", None)]


def test_hostname_with_nul_is_stored_without_it(context: Context) -> None:
    data = payloads.build(extra={"gradescope_data/hostname.txt": b"10.0.\x003.17\n"})
    (outcome,) = store_prepared(context, [prepare(context.settings, data)])
    assert outcome.status == "received"
