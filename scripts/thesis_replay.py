"""Replay the original evaluation's setup on real carbon data (see docs/experiments/thesis-replay.md).

    .venv/bin/python scripts/thesis_replay.py [--carbon-dir ../shared/carbon/electricitymaps_greendcc] [--out DIR]

Prints the measured savings beside the thesis's figures; with --out, also writes the JSON
document and the HTML report with its figures. Same as `greengrader simulate --experiment thesis`.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from greengrader.carbon.dataset import DatasetProvider
from greengrader.carbon.store import CarbonStore
from greengrader.reports import ReportData, build_report
from greengrader.simulation.experiments import summary_lines, thesis_replay

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("GREENGRADER_SHARED_DIR", REPO.parent / "shared"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--carbon-dir", type=Path, default=SHARED / "carbon" / "electricitymaps_greendcc")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as home:
        doc = thesis_replay(DatasetProvider(CarbonStore(Path(home), args.carbon_dir)))
    print("\n".join(summary_lines(doc)))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "thesis.json").write_text(json.dumps(doc, indent=1))
        report = build_report(ReportData(tz=doc["setup"]["tz"], simulation=doc["simulation"],
                                         title="Thesis replay"), args.out)
        print(f"report: {report.html_path}")


if __name__ == "__main__":
    main()
