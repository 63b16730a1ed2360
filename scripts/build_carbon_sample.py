"""Build the packaged hourly sample (greengrader/data/carbon/hourly.npz) from the public
Electricity Maps hourly exports, read through the product's own importer.

    .venv/bin/python scripts/build_carbon_sample.py [--carbon-dir ../shared/carbon/electricitymaps_greendcc]

Zones: those of the default regions (greengrader/data/regions.toml); years 2022 and 2023;
both emission factors; values as uint16 in 0.1 g/kWh. See greengrader/data/carbon/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from greengrader.carbon.dataset import DatasetProvider
from greengrader.carbon.sample import FILE, SCALE
from greengrader.carbon.store import CarbonStore
from greengrader.regions.registry import load_regions

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("GREENGRADER_SHARED_DIR", REPO.parent / "shared"))
START, END = datetime(2022, 1, 1, tzinfo=UTC), datetime(2024, 1, 1, tzinfo=UTC)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--carbon-dir", type=Path, default=SHARED / "carbon" / "electricitymaps_greendcc")
    ap.add_argument("--out", type=Path, default=REPO / "greengrader" / "data" / "carbon" / FILE)
    args = ap.parse_args()
    zones = list(dict.fromkeys(r.zone for r in load_regions()))
    arrays: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as home:
        for factor in ("lifecycle", "direct"):
            provider = DatasetProvider(CarbonStore(Path(home) / factor, args.carbon_dir, factor=factor))
            for zone in zones:
                values = provider.series(zone, START, END).values
                if values.max() * SCALE > np.iinfo(np.uint16).max:
                    raise SystemExit(f"{zone}: {values.max()} g/kWh does not fit the uint16 scale")
                arrays[f"{zone}/{factor}"] = np.round(values * SCALE).astype(np.uint16)
    meta = {"zones": zones, "start_s": START.timestamp(), "step_s": 3600,
            "span": f"{START:%Y-%m-%d} .. {END:%Y-%m-%d} UTC", "scale": SCALE,
            "source": "Electricity Maps hourly exports (electricitymaps.com)"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, meta=np.array(json.dumps(meta)), **arrays)
    print(f"{args.out}: {args.out.stat().st_size / 1024:.0f} KB, zones {', '.join(zones)}")


if __name__ == "__main__":
    main()
