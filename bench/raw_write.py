"""Time the raw write of the full bundled history: the whole-window replace of before and the
per-source write (`storage.replace_source_window`: the sources' rows, then the rule's pick).

Prints, for each, the first write into an empty database and a re-run of the same window (the
hourly schedule or a backfill re-pulling unchanged hours), twice. Prints figures; not a test.
Usage: .venv/bin/python bench/raw_write.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from electricity_assets import storage  # noqa: E402
from electricity_assets.datasets import DATASETS  # noqa: E402
from electricity_assets.ingest import write_window  # noqa: E402
from electricity_assets.settings import PACKAGE_DATA_DIR  # noqa: E402
from electricity_assets.sources.select import SourceConfig, load_window  # noqa: E402

START, END = datetime(2015, 7, 1, 5, tzinfo=UTC), datetime(2024, 10, 1, tzinfo=UTC)


def main() -> None:
    config = SourceConfig("bundled", PACKAGE_DATA_DIR)
    fetched = {n: load_window(d, START, END, config) for n, d in DATASETS.items()}
    print("rows:", {n: len(f.rows) for n, f in fetched.items()})
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(2):
            for label in ("whole-window replace", "per-source write"):
                db = Path(tmp) / f"{repeat}-{label}.duckdb"
                with duckdb.connect(str(db)) as conn:
                    for run in ("first write", "re-run"):
                        began = time.perf_counter()
                        for name, dataset in DATASETS.items():
                            if label == "per-source write":
                                write_window(conn, dataset, fetched[name], START, END)
                                continue
                            rows = fetched[name].rows.assign(
                                ingested_at=pd.Timestamp(datetime.now(UTC)))
                            storage.replace_window(conn, dataset.table, rows, START, END)
                        print(f"{label:>20} {run:>11}: {time.perf_counter() - began:6.2f} s")


if __name__ == "__main__":
    main()
