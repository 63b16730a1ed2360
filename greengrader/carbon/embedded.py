"""Annual-average carbon intensity with no files and no keys, from codecarbon's tables.

codecarbon ships (and maintains) per-country energy mixes with their carbon intensity,
per-US-state emission rates, per-Canadian-province mixes and per-cloud-region impacts.
We read those data files through ``importlib.resources`` at run time (nothing is copied).

Zones resolve in this order: a US or Canadian Electricity Maps zone (mapped to its state or
province), a cloud region such as ``gcp:us-west1`` (the providers codecarbon lists), an
ISO-3166 alpha-3 country, then the country of an Electricity Maps zone (``DE-LU`` -> DEU).

A flat annual average can drive *where* a job runs, never *when*: temporal shifting needs
hourly data (see docs/carbon.md).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from importlib import resources
from importlib.abc import Traversable
from typing import Any

import pycountry

from greengrader.carbon.base import IntensitySeries, constant_series
from greengrader.errors import CarbonDataError
from greengrader.settings import Settings

LBS_PER_MWH_TO_G_PER_KWH = 453.59237 / 1000.0

# Electricity Maps sub-national zones -> US state (codecarbon's usa_emissions.json keys).
US_ZONES = {
    "US-CAL-CISO": "california", "US-CAL-LDWP": "california", "US-TEX-ERCO": "texas",
    "US-MIDA-PJM": "pennsylvania", "US-NY-NYIS": "new york", "US-NE-ISNE": "massachusetts",
    "US-MIDW-MISO": "illinois", "US-NW-BPAT": "washington", "US-NW-PACW": "oregon",
    "US-SW-AZPS": "arizona", "US-SE-SOCO": "georgia", "US-FLA-FPL": "florida",
    "US-CAR-DUK": "north carolina", "US-CENT-SWPP": "kansas", "US-TEN-TVA": "tennessee",
    "US-NW-NEVP": "nevada", "US-SW-PNM": "new mexico", "US-NW-PSCO": "colorado",
}
CA_ZONES = {
    "CA-ON": "ontario", "CA-QC": "quebec", "CA-BC": "british columbia", "CA-AB": "alberta",
    "CA-SK": "saskatchewan", "CA-MB": "manitoba", "CA-NS": "nova scotia", "CA-NB": "new brunswick",
    "CA-PE": "prince edward island", "CA-NL": "newfoundland and labrador",
}
# codecarbon's Canadian mix keys -> its per-source intensity keys.
_CA_SOURCES = {
    "naturalGas": "natural_gas", "petroleum": "petroleum", "coal": "coal", "nuclear": "nuclear",
    "hydro": "hydroelectricity", "tidal": "hydroelectricity", "wind": "wind", "solar": "solar",
    "biomass": "biomass", "other": "world_average",
}


@dataclass(frozen=True)
class Average:
    value: float
    basis: str


def _data() -> Traversable:
    try:
        return resources.files("codecarbon").joinpath("data")
    except ModuleNotFoundError:
        raise CarbonDataError(
            "the embedded carbon averages need the 'codecarbon' package (pip install codecarbon)"
        ) from None


@lru_cache(maxsize=1)
def _tables() -> dict[str, Any]:
    data = _data()
    infra = data.joinpath("private_infra")

    def load(*parts: str) -> Any:
        node = infra
        for p in parts:
            node = node.joinpath(p)
        return json.loads(node.read_text(encoding="utf-8"))

    cloud = list(csv.DictReader(io.StringIO(data.joinpath("cloud", "impact.csv").read_text(encoding="utf-8-sig"))))
    return {
        "world": load("global_energy_mix.json"),
        "usa": load("2023", "usa_emissions.json"),
        "canada": load("2023", "canada_energy_mix.json"),
        "per_source": load("carbon_intensity_per_source.json"),
        "cloud": {f"{r['provider']}:{r['region']}".lower(): r for r in cloud},
    }


def _canada(province: str) -> float:
    t = _tables()
    mix, per_source = t["canada"][province], t["per_source"]
    total = float(mix["total"]) or 1.0
    return sum(float(share) / total * float(per_source[_CA_SOURCES[k]]) for k, share in mix.items() if k in _CA_SOURCES)


def _iso3(zone: str) -> str | None:
    code = zone.split("-")[0].upper()
    if len(code) == 3 and pycountry.countries.get(alpha_3=code):
        return code
    if len(code) == 2:
        country = pycountry.countries.get(alpha_2="GB" if code == "UK" else code)
        return str(country.alpha_3) if country else None
    return None


@lru_cache(maxsize=1024)
def annual_average(zone: str) -> Average:
    """The annual-average intensity (gCO2eq/kWh) codecarbon's tables give ``zone``."""
    t = _tables()
    if zone in US_ZONES:
        state = US_ZONES[zone]
        return Average(float(t["usa"][state]["emissions"]) * LBS_PER_MWH_TO_G_PER_KWH, f"codecarbon US state {state}")
    if zone in CA_ZONES:
        return Average(_canada(CA_ZONES[zone]), f"codecarbon Canadian province {CA_ZONES[zone]}")
    if zone.lower() in t["cloud"]:
        row = t["cloud"][zone.lower()]
        return Average(float(row["impact"]), f"codecarbon cloud region {zone}")
    iso3 = _iso3(zone)
    if iso3 and iso3 in t["world"]:
        entry = t["world"][iso3]
        return Average(float(entry["carbon_intensity"]), f"codecarbon country {iso3} ({entry.get('year', '?')})")
    raise CarbonDataError(
        f"no embedded average for zone {zone!r} (use an Electricity Maps zone, an ISO country "
        "code or a cloud region like 'gcp:us-west1')"
    )


class EmbeddedProvider:
    """Flat annual averages: good for choosing *where*, useless for choosing *when*."""

    name = "embedded"

    def __init__(self, step_s: int = 3600) -> None:
        self.step_s = step_s

    @classmethod
    def from_settings(cls, settings: Settings) -> EmbeddedProvider:
        return cls(step_s=settings.carbon_step_s)

    def _flat(self, zone: str, start: datetime, end: datetime, *, forecast: bool) -> IntensitySeries:
        avg = annual_average(zone)
        return constant_series(zone, avg.value, start, end, source=f"embedded ({avg.basis})",
                               forecast=forecast, step_s=self.step_s)

    def series(self, zone: str, start: datetime, end: datetime) -> IntensitySeries:
        return self._flat(zone, start, end, forecast=False)

    def forecast(self, zone: str, at: datetime, horizon_s: int) -> IntensitySeries:
        return self._flat(zone, at, at + timedelta(seconds=max(horizon_s, 1)), forecast=True)
