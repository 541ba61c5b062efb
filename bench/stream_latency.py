"""Latency: a message produced on Kafka -> its issue's rows in demand_forecasts, in a local stack.

    .venv/bin/python bench/stream_latency.py [--samples 3] [--poison]

Seeds a temporary home (CAL demand + weather history up to 2020-03-30, features, a CAL
multi-horizon champion in a temporary MLflow store and the serving champion index, as
trained_models leaves them), starts a Tansu broker and `dagster-daemon run` on this file as the
code location (raw, features and forecast assets + stream_ingest_job + kafka_stream_sensor, the
sensor ticking every 5 s; the run queue from the repo's dagster.yaml, runs launched as
subprocesses exactly as under `dagster dev`). Then, for each sample, publishes the next hour of
CAL demand and weather and polls DuckDB until the issue that hour completes (its partition) has
its 48 rows. The first sample
includes the daemon's start-up. `--poison` publishes, with every sample, demand messages about
2999-01-01 and 0001-01-01 in the same batch (the adversarial run's stall), with
DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS unset as under a plain `dagster dev`; they must
end as dead letters without slowing the valid hour. Prints figures; not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # `bench.lib` importable
FIRST_LIVE_HOUR = datetime(2020, 3, 30, 6, tzinfo=UTC)


def build_defs():
    """The code location the daemon loads: the streaming path and the assets it runs."""
    import dagster as dg

    from electricity_assets import definitions
    from electricity_assets.jobs import stream_ingest_job
    from electricity_assets.sensors import kafka_stream_sensor

    return dg.Definitions(assets=definitions.assets, jobs=[stream_ingest_job],
                          sensors=[kafka_stream_sensor],
                          resources=definitions.build_resources(),
                          executor=dg.in_process_executor)


def seed(home: Path, until: datetime) -> None:
    from bench.lib.workspace import build_workspace
    from electricity_assets.modeling import champion_cache, horizons, issuing
    from electricity_assets.modeling.registry import MlflowConfig
    from electricity_assets.settings import (
        PACKAGE_DATA_DIR,
        mlflow_artifact_root,
        mlflow_tracking_uri,
    )

    folder = home / "seed"
    folder.mkdir()
    with duckdb.connect() as conn:
        for name in ("eia930_hourly.csv.gz", "weather_hourly.csv.gz"):
            conn.execute(f"""COPY (SELECT * FROM read_csv('{PACKAGE_DATA_DIR / name}',
                all_varchar = true) WHERE region = 'CAL' AND period_utc >= '2020-01-25'
                AND period_utc::TIMESTAMPTZ < '{until.isoformat()}')
                TO '{folder / name}' (HEADER, COMPRESSION gzip)""")
    config = MlflowConfig(mlflow_tracking_uri(), mlflow_artifact_root())
    with duckdb.connect(os.environ["DUCKDB_PATH"]) as conn:
        build_workspace(conn, folder)
        horizons.train_and_register_horizons(conn, until, config, regions=["CAL"])
    champion_cache.resolve(["CAL"], issuing.MlflowChampions(lambda: config), home)


def forecast_present(hour: datetime) -> bool:
    """The issue of `hour`'s partition (issued at its end) is stored, all 48 hours."""
    try:
        with duckdb.connect(os.environ["DUCKDB_PATH"], read_only=True) as conn:
            return conn.execute(
                "SELECT count(*) FROM demand_forecasts WHERE region = 'CAL' AND issue_utc = ?",
                [hour + timedelta(hours=1)]).fetchone()[0] == 48
    except duckdb.Error:  # table not created yet, or a run holds the write lock right now
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--poison", action="store_true",
                        help="add far-future and far-past messages to every sample's batch")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="bench-latency-"))
    from electricity_assets.settings import DAGSTER_PROCESS_ENV

    os.environ.update({
        **DAGSTER_PROCESS_ENV,
        "ELECTRICITY_HOME": str(home), "DUCKDB_PATH": str(home / "bench.duckdb"),
        "DAGSTER_HOME": str(home / "dagster_home"),
        "KAFKA_DEMAND_TOPIC": "bench.demand.v1", "KAFKA_WEATHER_TOPIC": "bench.weather.v1"})
    if args.poison:  # the instance storage alone must keep planned events per asset
        os.environ.pop("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", None)
    (home / "dagster_home").mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster_home" / "dagster.yaml")

    from electricity_assets.datasets import DEMAND, WEATHER
    from electricity_assets.sensors import SENSOR_INTERVAL_SECONDS
    from electricity_assets.settings import PACKAGE_DATA_DIR, KafkaSettings
    from electricity_assets.sources.bundled import read_bundled
    from electricity_assets.streaming.broker import start_broker
    from electricity_assets.streaming.client import ensure_topics
    from electricity_assets.streaming.producer import Publisher

    t0 = time.perf_counter()
    seed(home, FIRST_LIVE_HOUR)
    print(f"seeded history, features and a CAL champion in {time.perf_counter() - t0:.0f} s "
          f"({home})")
    daemon = None
    with start_broker(port=0) as broker:
        os.environ["KAFKA_BROKER_ADDRESS"] = broker.address
        settings = KafkaSettings.from_env()
        ensure_topics(settings)
        log = open(home / "daemon.log", "wb")  # noqa: SIM115 - closed below
        daemon = subprocess.Popen(
            [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-f", __file__,
             "-a", "defs"], cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        publisher = Publisher(settings)
        latencies: list[float] = []
        try:
            for i in range(args.samples):
                hour = FIRST_LIVE_HOUR + timedelta(hours=i)
                for dataset in (DEMAND, WEATHER):
                    rows = read_bundled(dataset, hour, hour + timedelta(hours=1),
                                        PACKAGE_DATA_DIR)
                    publisher.publish_frame(dataset, rows[rows["region"] == "CAL"], "replay")
                if args.poison:
                    publisher.publish(settings.topic(DEMAND), [
                        (b"CAL", json.dumps({"region": "CAL", "period_utc": when, "type": "D",
                                             "value_mwh": 1.0, "source": "adversary",
                                             "produced_at": "2020-03-30T00:00:00Z"}).encode())
                        for when in ("2999-01-01T00:00:00Z", "0001-01-01T00:00:00Z")])
                publisher.flush()
                produced = time.perf_counter()
                while not forecast_present(hour):
                    if daemon.poll() is not None:
                        raise SystemExit(f"dagster-daemon exited: see {home / 'daemon.log'}")
                    if time.perf_counter() - produced > args.timeout:
                        raise SystemExit(f"no forecast after {args.timeout:.0f} s: see "
                                         f"{home / 'daemon.log'}")
                    time.sleep(0.5)
                latencies.append(time.perf_counter() - produced)
                note = " (includes daemon start-up)" if i == 0 else ""
                print(f"hour {hour:%Y-%m-%d %H:%MZ}: produced -> its issue's 48 rows in "
                      f"{latencies[-1]:5.1f} s{note}", flush=True)
            wait_for_runs(args.timeout)
        finally:
            os.killpg(daemon.pid, signal.SIGTERM)
            try:
                daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(daemon.pid, signal.SIGKILL)
            log.close()
    warm = latencies[1:] or latencies
    if args.poison:
        with duckdb.connect(os.environ["DUCKDB_PATH"], read_only=True) as conn:
            dead = conn.execute("SELECT count(*) FROM dead_letters WHERE reason LIKE "
                                "'implausible period_utc%'").fetchone()[0]
        print(f"poison messages published: {2 * args.samples}, dead letters: {dead}")
    print(f"sensor interval {SENSOR_INTERVAL_SECONDS} s; warm latency: "
          f"{', '.join(f'{x:.1f}' for x in warm)} s, median {statistics.median(warm):.1f} s, "
          f"max {max(warm):.1f} s (target: median < 15 s)")
    print_run_breakdown()


def wait_for_runs(timeout_s: float) -> None:
    """Let the last run finish (the forecast row is written before the run ends)."""
    import dagster as dg

    instance = dg.DagsterInstance.get()
    deadline = time.perf_counter() + timeout_s
    active = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED,
              dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]
    while instance.get_runs(filters=dg.RunsFilter(statuses=active)):
        if time.perf_counter() > deadline:
            return
        time.sleep(1)


def print_run_breakdown() -> None:
    """Where the time goes: queue + process start, and run execution, per streamed run."""
    import dagster as dg

    instance = dg.DagsterInstance.get()
    for record in reversed(instance.get_run_records(limit=20)):
        if record.start_time is None or record.end_time is None:
            continue
        run = record.dagster_run
        steps = {s.step_key: s.end_time - s.start_time
                 for s in instance.get_run_step_stats(run.run_id)
                 if s.end_time and s.start_time}
        print(f"run {run.run_id[:8]} {run.status.value}: created -> started "
              f"{record.start_time - record.create_timestamp.timestamp():4.1f} s, executed "
              f"{record.end_time - record.start_time:4.1f} s; steps "
              + ", ".join(f"{k} {v:.1f} s" for k, v in steps.items()))


if __name__ == "__main__":
    main()
else:  # loaded by dagster-daemon as the code location
    defs = build_defs()
