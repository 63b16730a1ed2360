"""Every setting is documented in docs/configuration.md."""

from __future__ import annotations

from pathlib import Path

from greengrader.settings import Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_every_setting_has_a_row() -> None:
    text = DOC.read_text()
    missing = [
        f"GREENGRADER_{name.upper()}"
        for name in Settings.model_fields
        if f"`GREENGRADER_{name.upper()}`" not in text
    ]
    assert missing == []
