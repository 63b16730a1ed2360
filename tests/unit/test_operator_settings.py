"""Pseudonym key, unknown variables, the carbon source default and CLI durations."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import click
import pytest

from greengrader.carbon import get_provider, resolve_auto
from greengrader.cli.common import Duration
from greengrader.errors import ConfigError
from greengrader.settings import load_settings, unknown_variables

PG = "postgresql+psycopg2://u@db/x"


@pytest.mark.parametrize("key", ["CHANGE_ME", "CHANGE_ME_long_random_string", "greengrader-default-pseudonym-key",
                                 "short"])
def test_placeholder_or_weak_pseudonym_keys_are_refused(key: str) -> None:
    with pytest.raises(ConfigError, match=r"^GREENGRADER_PSEUDONYM_KEY: "):
        load_settings(pseudonym_key=key)


def test_every_shipped_example_key_is_refused() -> None:
    repo = Path(__file__).resolve().parents[2]
    example = (repo / "deploy" / "env" / "greengrader.env.example").read_text()
    key = next(line.split("=", 1)[1] for line in example.splitlines() if line.startswith("GREENGRADER_PSEUDONYM_KEY="))
    with pytest.raises(ConfigError):
        load_settings(pseudonym_key=key)
    k8s = (repo / "deploy" / "k8s" / "secret.example.yaml").read_text()
    assert "GREENGRADER_PSEUDONYM_KEY: CHANGE_ME" in k8s  # ... and "CHANGE_ME" is refused above


def test_a_server_database_needs_a_pseudonym_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="GREENGRADER_PSEUDONYM_KEY: not set"):
        load_settings(home=tmp_path, database_url=PG).pseudonym_secret()
    assert load_settings(home=tmp_path, database_url=PG, pseudonym_key="x" * 32).pseudonym_secret() == b"x" * 32


def test_the_embedded_default_generates_a_private_key_once(tmp_path: Path) -> None:
    s = load_settings(home=tmp_path)
    key = s.pseudonym_secret()
    assert len(key) == 64 and key != b"greengrader-default-pseudonym-key"
    assert s.pseudonym_key_file.stat().st_mode & 0o077 == 0
    assert load_settings(home=tmp_path).pseudonym_secret() == key
    assert load_settings(home=tmp_path / "other").pseudonym_secret() != key


def test_unknown_variables_are_named_with_a_suggestion() -> None:
    warnings = unknown_variables({"GREENGRADER_DATABASE_URI": "x", "GREENGRADER_HOME": "/tmp",
                                  "GREENGRADER_SHARED_DIR": "/s", "GREENGRADER_TEST_PG_HOST": "h", "PATH": "/bin"})
    assert warnings == ["unknown variable GREENGRADER_DATABASE_URI is ignored "
                        "(did you mean GREENGRADER_DATABASE_URL?)"]


def test_carbon_source_auto_uses_imported_data(tmp_path: Path, carbon_dir: Path) -> None:
    s = load_settings(home=tmp_path)
    assert s.carbon_source == "auto"
    assert resolve_auto(s) == "embedded"
    files = sorted((carbon_dir / "electricitymaps_greendcc").glob("*.csv"))[:1]
    assert files, carbon_dir
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(files[0], data / files[0].name)
    s = load_settings(home=tmp_path, carbon_data_dir=data)
    assert resolve_auto(s) == "dataset,embedded"
    assert get_provider(s.carbon_source, s).name == "dataset,embedded"


def test_durations_need_a_unit() -> None:
    d = Duration()
    assert d.convert("180d", None, None) == timedelta(days=180)
    assert d.convert("90s", None, None) == timedelta(seconds=90)
    assert d.convert("1.5h", None, None) == timedelta(minutes=90)
    with pytest.raises(click.BadParameter, match="unit"):
        d.convert("3600", None, None)
