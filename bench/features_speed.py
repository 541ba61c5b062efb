"""Time the feature SQL on the full bundled history (or --data-dir) in a temporary DuckDB.

    .venv/bin/python bench/features_speed.py [--data-dir PATH]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd

from electricity_assets import settings, storage
from electricity_assets.datasets import DEMAND, WEATHER
from electricity_assets.features import compute_demand_features, compute_weather_features
from electricity_assets.sources.bundled import bundled_coverage, read_bundled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=settings.data_dir())
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, duckdb.connect(f"{tmp}/bench.duckdb") as conn:
        conn.execute("SET TimeZone = 'UTC'")
        start, end = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)
        for dataset in (DEMAND, WEATHER):
            raw = read_bundled(dataset, start, end, args.data_dir)
            raw = raw.assign(source="bundled", ingested_at=pd.Timestamp(datetime.now(UTC)))
            storage.replace_window(conn, dataset.table, raw, start, end)
        first, last = bundled_coverage(DEMAND, args.data_dir)
        for name, compute in (("demand_features", compute_demand_features),
                              ("weather_features", compute_weather_features)):
            began = time.perf_counter()
            frame = compute(conn, start, end)
            seconds = time.perf_counter() - began
            print(f"{name:17} {len(frame):>9,} rows  {frame['region'].nunique():>3} regions  "
                  f"{seconds:6.1f} s")
        print(f"demand history {first:%Y-%m-%d %H:%M} .. {last:%Y-%m-%d %H:%M} UTC")


if __name__ == "__main__":
    main()
