from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from greengrader.errors import CarbonDataError
from greengrader.times import as_utc, parse_instant


@pytest.mark.parametrize(("text", "expected"), [
    ("2024-03-01T12:00:00Z", datetime(2024, 3, 1, 12, tzinfo=UTC)),
    ("2024-03-01 12:00", datetime(2024, 3, 1, 12, tzinfo=UTC)),
    ("2024-03-01", datetime(2024, 3, 1, tzinfo=UTC)),
    ("2024-03-01T13:00:00+01:00", datetime(2024, 3, 1, 12, tzinfo=UTC)),
    # Docker: nanoseconds and Z
    ("2024-03-01T12:00:00.123456789Z", datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)),
    ("2024-03-01T12:00:00.5+00:00", datetime(2024, 3, 1, 12, 0, 0, 500000, tzinfo=UTC)),
])
def test_parses_every_shape_we_receive_to_aware_utc(text: str, expected: datetime) -> None:
    got = parse_instant(text)
    assert got == expected
    assert got.utcoffset() == timedelta(0)


@pytest.mark.parametrize("text", ["yesterday", "2024-13-01", "", "12:00"])
def test_unreadable_text_is_a_value_error_naming_it(text: str) -> None:
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_instant(text)


def test_as_utc_converts_aware_and_rejects_naive() -> None:
    assert as_utc(datetime(2024, 1, 1, 1, tzinfo=timezone(timedelta(hours=1)))) == datetime(2024, 1, 1, tzinfo=UTC)
    with pytest.raises(CarbonDataError):
        as_utc(datetime(2024, 1, 1))
