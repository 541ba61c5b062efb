"""Time a backfill of both raw assets (raw_demand, raw_weather) as ONE run.

Prints two figures:
  1. ingest:   the assets' work (read the replay files, replace the window in DuckDB) over the
               full bundled history, without Dagster;
  2. dagster:  `dagster asset materialize --partition-range` of both assets (and their checks, as
               the UI selects them) as one run over the full bundled history, on a fresh
               DAGSTER_HOME, side by side on each instance storage: the project's dagster.yaml
               (sqlite, batched event writes) and Postgres (`dagster-postgres`, a local server
               this script starts), with the materialisation events recorded and the storage size.
Usage: .venv/bin/python bench/backfill_raw.py [--days N] [--storage sqlite,postgres]
       (N: a slice from the start instead of the full history)
"""

from __future__ import annotations

import argparse
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

from devstack.postgres import LocalPostgres, write_instance_yaml  # noqa: E402
from electricity_assets.datasets import DATASETS  # noqa: E402
from electricity_assets.ingest import ingest_window  # noqa: E402
from electricity_assets.partitions import hourly_partitions  # noqa: E402
from electricity_assets.settings import PACKAGE_DATA_DIR, dagster_process_env  # noqa: E402
from electricity_assets.sources.bundled import bundled_coverage  # noqa: E402
from electricity_assets.sources.select import SourceConfig  # noqa: E402
from electricity_assets.streaming.broker import free_port  # noqa: E402


def time_ingest(db: Path) -> float:
    start = datetime(2015, 7, 1, 5, tzinfo=UTC)
    end = datetime(2024, 10, 1, tzinfo=UTC)
    began = time.perf_counter()
    with duckdb.connect(str(db)) as conn:
        for dataset in DATASETS.values():
            ingest_window(conn, dataset, start, end, SourceConfig("bundled", PACKAGE_DATA_DIR))
    return time.perf_counter() - began


def time_dagster(first: datetime, last: datetime, workdir: Path,
                 postgres_url: str | None = None) -> tuple[float, int, int, int]:
    """Seconds, rows, materialisation events and storage bytes of one ranged run."""
    home = workdir / "dagster_home"
    write_instance_yaml(home, postgres=postgres_url is not None)
    env = {**dagster_process_env(), "DAGSTER_HOME": str(home), "ELECTRICITY_HOME": str(workdir),
           "ELECTRICITY_SOURCE": "bundled", "DAGSTER_POSTGRES_URL": postgres_url or ""}
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
    count = ("SELECT count(*) FROM event_logs "
             "WHERE dagster_event_type = 'ASSET_MATERIALIZATION'")
    if postgres_url is None:
        with sqlite3.connect(home / "history" / "runs" / "index.db") as conn:
            events = conn.execute(count).fetchone()[0]
        size = sum(f.stat().st_size for f in (home / "history").rglob("*.db"))
    else:
        import psycopg2

        with psycopg2.connect(postgres_url.replace("+psycopg2", "")) as conn:
            with conn.cursor() as cur:
                cur.execute(count)
                events = cur.fetchone()[0]
                cur.execute("SELECT pg_database_size(current_database())")
                size = cur.fetchone()[0]
        conn.close()
    return elapsed, rows, events, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, help="back up only this many days from the start")
    parser.add_argument("--storage", default="sqlite,postgres")
    args = parser.parse_args()
    first, last = bundled_coverage(DATASETS["demand"], PACKAGE_DATA_DIR)
    if args.days:
        last = first + timedelta(days=args.days, hours=-1)
    hours = int((last - first).total_seconds() // 3600) + 1

    with tempfile.TemporaryDirectory() as tmp:
        seconds = time_ingest(Path(tmp) / "ingest.duckdb")
        print(f"1. ingest only, full history, both datasets: {seconds:.1f} s")

    print(f"2. dagster asset materialize, {hours:,} hourly partitions x 2 assets + checks, "
          "one run:")
    print(f"   {'storage':<10} {'seconds':>8} {'rows':>11} {'events':>8} {'storage MB':>11}")
    for storage in args.storage.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            if storage == "postgres":
                workdir.chmod(0o711)  # as root the server runs as `postgres`
                with LocalPostgres(workdir / "pgdata", free_port()) as server:
                    result = time_dagster(first, last, workdir, server.url)
            else:
                result = time_dagster(first, last, workdir)
        seconds, rows, events, size = result
        print(f"   {storage:<10} {seconds:>8.1f} {rows:>11,} {events:>8,} {size / 1e6:>11,.0f}",
              flush=True)


if __name__ == "__main__":
    main()
