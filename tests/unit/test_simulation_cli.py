"""`greengrader simulate` and `greengrader report` through the CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from greengrader.cli import cli
from greengrader.errors import GreengraderError
from greengrader.settings import get_settings


@pytest.fixture
def data_dir(tmp_path: Path, carbon_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("GREENGRADER_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    d = tmp_path / "carbon"
    d.mkdir()
    for zone in ("US-CAL-CISO", "US-MIDA-PJM"):
        name = f"{zone}_2023_hourly.csv"
        (d / name).symlink_to(carbon_dir / "electricitymaps_greendcc" / name)
    yield d
    get_settings.cache_clear()


def test_simulate_json_then_report(data_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    save = tmp_path / "sim.json"
    res = runner.invoke(cli, [
        "simulate", "--carbon-dir", str(data_dir), "--regions", "us-west,us-east", "--from", "2023-03-13",
        "--to", "2023-03-20", "--slack", "6h", "--capacity", "3", "--json", "--save", str(save),
    ])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc == json.loads(save.read_text())
    assert doc["trace"]["jobs"] == 134 and doc["config"]["slack_s"] == 6 * 3600
    labels = {r["label"] for r in doc["runs"]}
    assert {"static", "spatio-temporal", "spatio-temporal [seasonal-day] (capacity)"} <= labels
    res = runner.invoke(cli, ["report", "--no-db", "--simulation", str(save), "--out", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "rep" / "report.html").stat().st_size > 10_000
    assert (tmp_path / "rep" / "emissions_per_policy.png").exists()


def test_simulate_outside_the_data_fails_cleanly(data_dir: Path) -> None:
    res = CliRunner().invoke(cli, ["simulate", "--carbon-dir", str(data_dir), "--regions", "us-west",
                                   "--from", "2030-01-01", "--to", "2030-01-08"])
    assert res.exit_code != 0
    assert isinstance(res.exception, GreengraderError)


def test_slack_needs_a_unit_and_help_names_the_values() -> None:
    runner = CliRunner()
    out = runner.invoke(cli, ["simulate", "--slack", "3600"])
    assert out.exit_code == 2 and "unit" in out.output
    out = runner.invoke(cli, ["simulate", "--from", "yesterday"])
    assert out.exit_code == 2 and "ISO 8601" in out.output and "Traceback" not in out.output
    helptext = runner.invoke(cli, ["simulate", "--help"]).output
    assert "carbon-optimal" in helptext and "90m, 24h, 2d" in helptext
    assert "ISO 8601" in runner.invoke(cli, ["report", "--help"]).output
    assert "graded" in runner.invoke(cli, ["submissions", "--help"]).output
def test_simulate_honours_pue_and_emission_factor_with_carbon_dir(data_dir: Path) -> None:
    def total(*extra: str) -> float:
        res = CliRunner().invoke(cli, [
            "simulate", "--carbon-dir", str(data_dir), "--regions", "us-west,us-east", "--from", "2023-03-13",
            "--to", "2023-03-20", "--policies", "static", "--forecasts", "oracle", "--json", *extra,
        ])
        assert res.exit_code == 0, res.output
        doc = json.loads(res.output)
        return float(next(r["total_g"] for r in doc["runs"] if r["label"] == "static"))

    base = total("--pue", "1.0")
    assert total("--pue", "1.5") == pytest.approx(1.5 * base)
    assert total("--pue", "1.0", "--emission-factor", "direct") < base  # direct excludes lifecycle


def test_simulate_works_with_nothing_imported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GREENGRADER_HOME", str(tmp_path / "fresh"))
    get_settings.cache_clear()
    try:
        res = CliRunner().invoke(cli, ["simulate", "--slack", "6h", "--json"])
        assert res.exit_code == 0, res.output
        doc = json.loads(res.output)
        assert all("packaged sample" in s for s in doc["carbon"]["sources"])
        blend = next(r for r in doc["runs"] if r["label"] == "spatio-temporal [blend]")
        assert blend["share_of_oracle_extra"] is None or blend["share_of_oracle_extra"] > 0
        res = CliRunner().invoke(cli, ["simulate", "--experiment", "thesis"])
        assert res.exit_code == 0, res.output
        assert "headline:" in res.output and "g saved vs static" in res.output
    finally:
        get_settings.cache_clear()
