"""Time a backfill of both raw assets (raw_demand, raw_weather) as ONE run.

Prints three figures:
  1. ingest:   the assets' work (read the replay files, replace the window in DuckDB) over the
               full bundled history, without Dagster;
  2. dagster:  `dagster asset materialize --partition-range` of both assets as one run over a
               slice (default 1 week) on a fresh sqlite DAGSTER_HOME, and the per-partition cost;
  3. --full:   the same over the full bundled history (slow: Dagster records one planned and one
               materialisation event per hourly partition and asset in its event log).
Usage: .venv/bin/python bench/backfill_raw.py [--days 7] [--full]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from electricity_assets.datasets import DATASETS  # noqa: E402
from electricity_assets.partitions import hourly_partitions  # noqa: E402
from electricity_assets.settings import PACKAGE_DATA_DIR  # noqa: E402
from electricity_assets.sources.bundled import bundled_coverage, read_bundled  # noqa: E402
from electricity_assets.storage import replace_window  # noqa: E402


def time_ingest(db: Path) -> float:
    start = datetime(2015, 7, 1, 5, tzinfo=UTC)
    end = datetime(2024, 10, 1, tzinfo=UTC)
    began = time.perf_counter()
    with duckdb.connect(str(db)) as conn:
        for dataset in DATASETS.values():
            frame = read_bundled(dataset, start, end, PACKAGE_DATA_DIR)
            frame = frame.assign(source="bundled", ingested_at=datetime.now(UTC))
            replace_window(conn, dataset.table, frame, start, end)
    return time.perf_counter() - began


def time_dagster(first: datetime, last: datetime, workdir: Path) -> tuple[float, int]:
    home = workdir / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home), "ELECTRICITY_HOME": str(workdir),
           "ELECTRICITY_SOURCE": "bundled"}
    fmt = hourly_partitions.fmt
    cmd = [str(ROOT / ".venv/bin/dagster"), "asset", "materialize", "-m",
           "electricity_assets.definitions", "--select", "raw_demand,raw_weather",
           "--partition-range", f"{first.strftime(fmt)}...{last.strftime(fmt)}"]
    began = time.perf_counter()
    subprocess.run(cmd, env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    elapsed = time.perf_counter() - began
    with duckdb.connect(str(workdir / "electricity.duckdb"), read_only=True) as conn:
        rows = conn.execute("SELECT (SELECT count(*) FROM raw_demand) + "
                            "(SELECT count(*) FROM raw_weather)").fetchone()[0]
    return elapsed, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=7, help="longer slice for figure 2")
    parser.add_argument("--full", action="store_true", help="also run the full-history backfill")
    args = parser.parse_args()
    first, last = bundled_coverage(DATASETS["demand"], PACKAGE_DATA_DIR)
    hours_full = int((last - first).total_seconds() // 3600) + 1

    with tempfile.TemporaryDirectory() as tmp:
        seconds = time_ingest(Path(tmp) / "ingest.duckdb")
        print(f"1. ingest only, full history ({hours_full:,} hours, both datasets): "
              f"{seconds:.1f} s")

    # Two slices: the difference is the marginal cost of a partition, without the fixed cost of
    # starting the CLI, loading the code and running the checks.
    timings = []
    for days in (1, args.days):
        with tempfile.TemporaryDirectory() as tmp:
            seconds, rows = time_dagster(first, first + timedelta(days=days, hours=-1), Path(tmp))
        timings.append((days * 24, seconds))
        print(f"2. dagster asset materialize, {days * 24} hourly partitions x 2 assets, one run: "
              f"{seconds:.1f} s ({rows:,} rows)")
    (h1, t1), (h2, t2) = timings
    marginal = (t2 - t1) / (h2 - h1)
    print(f"   marginal cost {marginal * 1000:.0f} ms per hourly partition (both assets); "
          f"extrapolated full history ({hours_full:,} partitions): "
          f"{(t1 + marginal * (hours_full - h1)) / 60:.0f} min")

    if args.full:
        with tempfile.TemporaryDirectory() as tmp:
            seconds, rows = time_dagster(first, last, Path(tmp))
        print(f"3. dagster asset materialize, full history ({hours_full:,} partitions x 2 "
              f"assets), one run: {seconds:.1f} s ({rows:,} rows)")


if __name__ == "__main__":
    main()
