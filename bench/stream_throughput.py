"""Throughput: 250,000 demand messages from the producer to DuckDB rows through the sensor path.

    .venv/bin/python bench/stream_throughput.py [--messages 250000] [--downstream]

Starts a Tansu broker on a free port (or uses KAFKA_BROKER_ADDRESS), publishes real demand rows
(all regions, D and DF, ~14 months of the bundled EIA data), then repeats: evaluate
kafka_stream_sensor, and for each requested run do the run's work - `ingest_offsets` on the run's
config, the exact call the raw assets make - until the sensor has nothing left.
--dagster-runs executes the requested runs with `execute_in_process` instead (raw assets only;
with --downstream the whole stream_ingest_job) on a sqlite instance made from the project's
dagster.yaml: this adds Dagster's bookkeeping, one materialization event per hourly partition per
asset (~10,400 for a 14-month catch-up of raw_demand). Prints figures; not a test.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=250_000)
    parser.add_argument("--batch", type=int, default=50_000,
                        help="KAFKA_MAX_BATCH_MESSAGES for the sensor (default 50,000)")
    parser.add_argument("--dagster-runs", action="store_true")
    parser.add_argument("--downstream", action="store_true")
    args = parser.parse_args()

    home = tempfile.mkdtemp(prefix="bench-throughput-")
    from electricity_assets.settings import DAGSTER_PROCESS_ENV

    os.environ.update(DAGSTER_PROCESS_ENV)  # the stack's Dagster settings (batched event writes)
    os.environ["ELECTRICITY_HOME"] = home
    os.environ["DUCKDB_PATH"] = f"{home}/bench.duckdb"
    os.environ["KAFKA_MAX_BATCH_MESSAGES"] = str(args.batch)
    os.environ.setdefault("KAFKA_DEMAND_TOPIC", f"bench.demand.{int(time.time())}")
    os.environ.setdefault("KAFKA_WEATHER_TOPIC", f"bench.weather.{int(time.time())}")

    from electricity_assets import definitions
    from electricity_assets.datasets import DEMAND
    from electricity_assets.settings import PACKAGE_DATA_DIR, KafkaSettings
    from electricity_assets.sources.bundled import read_bundled
    from electricity_assets.streaming.broker import start_broker
    from electricity_assets.streaming.client import ensure_topics
    from electricity_assets.streaming.ingest import ingest_offsets
    from electricity_assets.streaming.producer import Publisher

    with start_broker(port=0) as broker:
        os.environ["KAFKA_BROKER_ADDRESS"] = broker.address
        settings = KafkaSettings.from_env()
        rows = read_bundled(DEMAND, datetime(2018, 10, 1, tzinfo=UTC),
                            datetime(2020, 4, 2, tzinfo=UTC), PACKAGE_DATA_DIR)
        rows = rows.sort_values(["period_utc", "region", "type"]).head(args.messages)
        print(f"{len(rows):,} demand rows, {rows['region'].nunique()} regions, types "
              f"{sorted(rows['type'].unique())}, {rows['period_utc'].min():%Y-%m-%d} .. "
              f"{rows['period_utc'].max():%Y-%m-%d}; broker {broker.address}")

        began, began_wall = time.perf_counter(), time.time()
        ensure_topics(settings)
        publisher = Publisher(settings)
        publisher.publish_frame(DEMAND, rows, "replay")
        publisher.flush()
        del publisher  # close its connections before the broker stops
        produced = time.perf_counter()

        from electricity_assets.assets.raw import raw_assets
        from electricity_assets.jobs import stream_ingest_job
        from electricity_assets.sensors import kafka_stream_sensor

        raw_only = dg.define_asset_job(
            "stream_ingest_raw_only",
            selection=dg.AssetSelection.assets(*raw_assets).without_checks())
        defs = dg.Definitions(assets=definitions.assets, jobs=[stream_ingest_job, raw_only],
                              sensors=[kafka_stream_sensor],
                              resources=definitions.build_resources())
        resolved = defs.resolve_job_def(
            "stream_ingest_job" if args.downstream else "stream_ingest_raw_only")
        sensor = defs.resolve_sensor_def("kafka_stream_sensor")
        cursor, runs, tick_s, run_s = None, 0, 0.0, 0.0
        # The stack's instance: sqlite storage from the project's dagster.yaml (batched events).
        dagster_home = Path(home) / "dagster_home"
        dagster_home.mkdir()
        shutil.copy(Path(__file__).resolve().parent.parent / "dagster.yaml", dagster_home)
        os.environ["DAGSTER_HOME"] = str(dagster_home)
        with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
            while True:
                t0 = time.perf_counter()
                data = sensor.evaluate_tick(dg.build_sensor_context(
                    instance=instance, cursor=cursor, definitions=defs,
                    resources=dict(defs.resources or {})))
                t1 = time.perf_counter()
                tick_s += t1 - t0
                if not data.run_requests:
                    break
                for request in data.run_requests:
                    runs += 1
                    if not args.dagster_runs:
                        offsets = request.run_config["ops"][DEMAND.table]["config"]
                        with duckdb.connect(os.environ["DUCKDB_PATH"]) as conn:
                            ingest_offsets(conn, DEMAND, offsets["kafka_offsets"], settings)
                        continue
                    quiet = {**request.run_config,
                             "loggers": {"console": {"config": {"log_level": "WARNING"}}}}
                    resolved.execute_in_process(run_config=quiet, tags=request.tags,
                                                instance=instance)
                run_s += time.perf_counter() - t1
                cursor = data.cursor
        done = time.perf_counter()

    with duckdb.connect(os.environ["DUCKDB_PATH"], read_only=True) as conn:
        stored, last_write = conn.execute(
            "SELECT count(*), epoch(max(ingested_at)) FROM raw_demand").fetchone()
        dead = conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0]
    total = done - began
    print(f"produce + deliver : {produced - began:6.1f} s")
    print(f"sensor ticks      : {tick_s:6.1f} s")
    print(f"runs ({runs:>3})        : {run_s:6.1f} s  "
          f"({'Dagster runs' if args.dagster_runs else 'ingest_offsets per run config'}"
          f"{', whole stream_ingest_job' if args.downstream else ''})")
    to_rows = last_write - began_wall
    print(f"produced -> all rows in DuckDB: {to_rows:6.1f} s  -> {len(rows) / to_rows:,.0f} "
          "messages/s (target < 30 s for 250,000)")
    if args.dagster_runs:
        print(f"total incl. Dagster bookkeeping: {total:6.1f} s (one materialization event per "
              "hourly partition per asset)")
    print(f"raw_demand rows   : {stored:,}; dead letters: {dead:,} "
          f"(rows + dead letters = {stored + dead:,} of {len(rows):,} messages)")


if __name__ == "__main__":
    main()
