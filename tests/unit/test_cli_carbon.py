"""The carbon CLI commands on the real shared data (in-process, via click's runner)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from greengrader.cli import cli
from greengrader.settings import get_settings


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[CliRunner]:
    monkeypatch.setenv("GREENGRADER_HOME", str(tmp_path / "home"))
    for name in ("GREENGRADER_CARBON_SOURCE", "GREENGRADER_CARBON_DATA_DIR", "GREENGRADER_REGIONS_FILE"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def test_import_show_and_plot(runner: CliRunner, carbon_dir: Path, tmp_path: Path) -> None:
    csv_path = carbon_dir / "electricitymaps_greendcc" / "CA-ON_2022_hourly.csv"
    res = runner.invoke(cli, ["carbon", "import", str(csv_path)])
    assert res.exit_code == 0, res.output
    assert "zones CA-ON" in res.output and "8760 x 3600 s" in res.output
    row = csv_path.read_text(encoding="utf-8").splitlines()[1 + 24 * 31].split(",")  # 2022-02-01 00:00
    res = runner.invoke(cli, ["carbon", "show", "CA-ON", "--from", "2022-02-01T00:00", "--to", "2022-02-01T03:00",
                              "--source", "dataset"])
    assert res.exit_code == 0, res.output
    first = next(line for line in res.output.splitlines() if not line.startswith("#"))
    assert first == f"2022-02-01 00:00:00Z\t{float(row[5]):.2f}"
    png = tmp_path / "on.png"
    res = runner.invoke(cli, ["carbon", "show", "CA-ON", "--from", "2022-02-01", "--to", "2022-02-08",
                              "--source", "dataset", "--plot", str(png)])
    assert res.exit_code == 0 and png.read_bytes()[:4] == b"\x89PNG"


def test_import_rejects_unknown_format(runner: CliRunner, tmp_path: Path) -> None:
    junk = tmp_path / "junk.txt"
    junk.write_text("hello\n")
    res = runner.invoke(cli, ["carbon", "import", str(junk)])
    assert res.exit_code != 0 and "unrecognised carbon data format" in res.output


def test_regions_lists_embedded_intensity(runner: CliRunner) -> None:
    res = runner.invoke(cli, ["regions", "--source", "embedded"])
    assert res.exit_code == 0, res.output
    assert "us-west" in res.output and "region-ca-central" in res.output
    assert "codecarbon US state california" in res.output


def test_mape_table(runner: CliRunner, carbon_dir: Path) -> None:
    runner.invoke(cli, ["carbon", "import", str(carbon_dir / "electricitymaps_greendcc" / "SG_2023_hourly.csv")])
    res = runner.invoke(cli, ["carbon", "mape", "SG", "--horizon-hours", "6"])
    assert res.exit_code == 0 and "seasonal-day" in res.output and "SG" in res.output


def test_imported_data_is_used_by_default_and_regions_flag_mixed_kinds(runner: CliRunner, carbon_dir: Path) -> None:
    csv_path = carbon_dir / "electricitymaps_greendcc" / "CA-ON_2022_hourly.csv"
    assert runner.invoke(cli, ["carbon", "import", str(csv_path)]).exit_code == 0
    res = runner.invoke(cli, ["carbon", "show", "CA-ON", "--from", "2022-02-01T00:00", "--to", "2022-02-01T03:00"])
    assert res.exit_code == 0, res.output
    assert "from embedded" not in res.output.splitlines()[0]  # no --source, no GREENGRADER_CARBON_SOURCE
    res = runner.invoke(cli, ["regions", "--at", "2022-02-01T00:00"])
    assert res.exit_code == 0, res.output
    # The imported zone and the packaged hourly sample (every default zone) are both hourly:
    # nothing is ranked against annual averages, so no warning is needed.
    assert "hourly" in res.output and "annual average" not in res.output
    assert "not comparable" not in res.output


def test_regions_json(runner: CliRunner) -> None:
    import json

    rows = json.loads(runner.invoke(cli, ["regions", "--json", "--source", "embedded"]).output)
    assert {r["region"] for r in rows} >= {"us-west", "ca-central"}
    assert all(r["kind"] == "annual average" and r["intensity"] > 0 for r in rows)
