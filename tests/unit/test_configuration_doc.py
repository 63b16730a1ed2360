"""Every setting is documented in docs/configuration.md, in the section of its area."""

from __future__ import annotations

import re
from pathlib import Path

from greengrader.settings import AREAS, Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def _sections() -> list[tuple[str, set[str]]]:
    """``(heading, variables with a row)`` of each ``## `` section, in order."""
    parts = re.split(r"^## (.+)$", DOC.read_text(), flags=re.MULTILINE)
    return [(heading, {var for row in text.splitlines() if row.startswith("| `")
                       for var in re.findall(r"`(GREENGRADER_\w+)`", row.split("|")[1])})
            for heading, text in zip(parts[1::2], parts[2::2], strict=True)]


def test_every_setting_has_a_row_and_every_row_a_setting() -> None:
    rows = set().union(*(vars_ for _, vars_ in _sections()))
    fields = {f"GREENGRADER_{name.upper()}" for name in Settings.model_fields}
    assert sorted(fields - rows) == []
    assert sorted(rows - fields) == []  # e.g. a variable that became a constant


def test_each_area_has_its_own_section_in_order() -> None:
    sections = _sections()
    found = []
    for area in AREAS:
        homes = {heading for heading, rows in sections for name in area.model_fields
                 if f"GREENGRADER_{name.upper()}" in rows}
        assert len(homes) == 1, (area.__name__, homes)
        found.append(homes.pop())
    assert found == [heading for heading, _ in sections]
