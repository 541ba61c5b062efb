"""Time a backfill of both raw assets (raw_demand, raw_weather) as ONE run.

Prints two figures:
  1. ingest:   the assets' work (read the replay files, replace the window in DuckDB) over the
               full bundled history, without Dagster;
  2. dagster:  `dagster asset materialize --partition-range` of both assets (and their checks, as
               the UI selects them) as one run over the full bundled history, on a fresh
               DAGSTER_HOME with the project's dagster.yaml (batched event writes), with the
               number of materialisation events Dagster recorded and the event log's size.
Usage: .venv/bin/python bench/backfill_raw.py [--days N]   (N: a slice from the start instead)
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
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
from electricity_assets.ingest import ingest_window  # noqa: E402
from electricity_assets.partitions import hourly_partitions  # noqa: E402
from electricity_assets.settings import PACKAGE_DATA_DIR, dagster_process_env  # noqa: E402
from electricity_assets.sources.bundled import bundled_coverage  # noqa: E402
from electricity_assets.sources.select import SourceConfig  # noqa: E402


def time_ingest(db: Path) -> float:
    start = datetime(2015, 7, 1, 5, tzinfo=UTC)
    end = datetime(2024, 10, 1, tzinfo=UTC)
    began = time.perf_counter()
    with duckdb.connect(str(db)) as conn:
        for dataset in DATASETS.values():
            ingest_window(conn, dataset, start, end, SourceConfig("bundled", PACKAGE_DATA_DIR))
    return time.perf_counter() - began


def time_dagster(first: datetime, last: datetime, workdir: Path) -> tuple[float, int, int, int]:
    home = workdir / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    env = {**dagster_process_env(), "DAGSTER_HOME": str(home), "ELECTRICITY_HOME": str(workdir),
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
    with sqlite3.connect(home / "history" / "runs" / "index.db") as conn:
        events = conn.execute("SELECT count(*) FROM event_logs "
                              "WHERE dagster_event_type = 'ASSET_MATERIALIZATION'").fetchone()[0]
    log_bytes = sum(f.stat().st_size for f in (home / "history").rglob("*.db"))
    return elapsed, rows, events, log_bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, help="back up only this many days from the start")
    args = parser.parse_args()
    first, last = bundled_coverage(DATASETS["demand"], PACKAGE_DATA_DIR)
    if args.days:
        last = first + timedelta(days=args.days, hours=-1)
    hours = int((last - first).total_seconds() // 3600) + 1

    with tempfile.TemporaryDirectory() as tmp:
        seconds = time_ingest(Path(tmp) / "ingest.duckdb")
        print(f"1. ingest only, full history, both datasets: {seconds:.1f} s")

    with tempfile.TemporaryDirectory() as tmp:
        seconds, rows, events, log_bytes = time_dagster(first, last, Path(tmp))
    print(f"2. dagster asset materialize, {hours:,} hourly partitions x 2 assets + checks, one "
          f"run: {seconds:.1f} s ({rows:,} rows; {events:,} materialisation events, event log "
          f"{log_bytes / 1e6:,.0f} MB)")


if __name__ == "__main__":
    main()
