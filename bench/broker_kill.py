"""Broker kill: kill -9 the bundled broker mid-stream; every acknowledged message is stored or
counted as lost, and the hours of the lost ones are re-fetched from the source.

    .venv/bin/python bench/broker_kill.py [--rate 400] [--kill-at 12] [--stream-for 30]

Starts a Tansu broker on a free port, publishes real replay rows (demand and weather, hour after
hour) at --rate messages a second with the project's Publisher, and meanwhile evaluates the real
kafka_stream_sensor every 5 s; its run requests are executed in order by a runner thread (the
raw assets of stream_ingest_job, in process, on an ephemeral instance), so runs lag the sensor as
queued runs do. At --kill-at seconds the broker gets SIGKILL; the stack's own supervision
(`Stack.supervise_broker`, polled every second) reports, reaps and restarts it. Publishing stops
at --stream-for seconds; the sensor then runs until it has nothing left. Prints what the producer
had acknowledged, what is stored, what the runs counted as lost, what nothing accounts for, and
the result of the refetch_lost_hours runs. Not a test.
"""

from __future__ import annotations

import argparse
import os
import queue
import signal
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta

import dagster as dg
import duckdb
import pandas as pd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=400.0, help="messages per second")
    parser.add_argument("--kill-at", type=float, default=12.0)
    parser.add_argument("--stream-for", type=float, default=30.0)
    args = parser.parse_args()

    home = tempfile.mkdtemp(prefix="bench-broker-kill-")
    os.environ["ELECTRICITY_HOME"] = home
    os.environ["DUCKDB_PATH"] = f"{home}/bench.duckdb"
    os.environ.pop("KAFKA_BROKER_ADDRESS", None)

    from devstack.stack import Stack
    from electricity_assets import definitions
    from electricity_assets.assets.raw import lost_messages, raw_assets
    from electricity_assets.datasets import DEMAND, WEATHER
    from electricity_assets.sensors import kafka_stream_sensor, refetch_lost_hours
    from electricity_assets.settings import PACKAGE_DATA_DIR, KafkaSettings
    from electricity_assets.sources.bundled import read_bundled
    from electricity_assets.streaming.broker import free_port, start_broker
    from electricity_assets.streaming.client import ensure_topics
    from electricity_assets.streaming.producer import Publisher

    port = free_port()
    stack = Stack([], {})
    stack.broker = start_broker(port=port, log_path=None)
    address = stack.broker.address
    os.environ["KAFKA_BROKER_ADDRESS"] = address  # the sensor, runs and producer read it
    settings = KafkaSettings.from_env()
    ensure_topics(settings)
    job = dg.define_asset_job("bench_stream", selection=dg.AssetSelection.assets(*raw_assets))
    defs = dg.Definitions(assets=definitions.assets, jobs=[job], sensors=[kafka_stream_sensor],
                          resources=definitions.build_resources())
    stream_job = defs.resolve_job_def("bench_stream")

    first_hour = datetime(2020, 1, 1, tzinfo=UTC)
    frames = {d.name: read_bundled(d, first_hour, first_hour + timedelta(days=40),
                                   PACKAGE_DATA_DIR) for d in (DEMAND, WEATHER)}
    publisher = Publisher(settings)
    stop_producing = threading.Event()
    published_hours: list[datetime] = []

    def produce() -> None:
        began, sent, hour = time.monotonic(), 0, first_hour
        while not stop_producing.is_set():
            for d in (DEMAND, WEATHER):
                frame = frames[d.name]
                sent += publisher.publish_frame(d, frame[frame["period_utc"] == pd.Timestamp(hour)],
                                                "replay")
            published_hours.append(hour)
            hour += timedelta(hours=1)
            publisher.producer.poll(0)  # delivery reports: the acknowledgements
            ahead = began + sent / args.rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
        publisher.producer.flush(120)
        publisher.ledger.write()

    runs: queue.Queue[dg.RunRequest | None] = queue.Queue()
    results: list[dg.ExecuteInProcessResult] = []

    with dg.DagsterInstance.ephemeral() as instance:
        def run_worker() -> None:
            while (request := runs.get()) is not None:
                for attempt in range(3):  # a failed run is retried twice (dagster/max_retries)
                    result = stream_job.execute_in_process(
                        run_config=request.run_config, tags=request.tags, instance=instance,
                        raise_on_error=False)
                    results.append(result)
                    if result.success:
                        break
                    print(f"run {result.run_id[:8]} failed (attempt {attempt + 1})", flush=True)
                runs.task_done()
            runs.task_done()

        producer = threading.Thread(target=produce, daemon=True)
        runner = threading.Thread(target=run_worker, daemon=True)
        began = time.monotonic()
        producer.start()
        runner.start()
        cursor, killed, idle_ticks, next_tick = None, None, 0, began + 5.0
        while True:
            now = time.monotonic() - began
            if killed is None and now >= args.kill_at:
                killed = stack.broker.process.pid
                os.kill(killed, signal.SIGKILL)
                print(f"t={now:.1f} s: SIGKILL broker pid {killed} "
                      f"({publisher.delivered} messages acknowledged so far)", flush=True)
            if not stack.supervise_broker():
                raise SystemExit("the broker could not be restarted")
            if now >= args.stream_for and not stop_producing.is_set():
                stop_producing.set()
                producer.join()
                print(f"t={now:.1f} s: publishing stopped", flush=True)
            if time.monotonic() >= next_tick:
                next_tick += 5.0
                context = dg.build_sensor_context(instance=instance, cursor=cursor,
                                                  definitions=defs,
                                                  resources=dict(defs.resources or {}))
                try:
                    tick = kafka_stream_sensor.evaluate_tick(context)
                except Exception as exc:  # noqa: BLE001 - the broker is restarting
                    print(f"t={now:.1f} s: sensor tick failed: {exc}", flush=True)
                    continue
                cursor = tick.cursor or cursor
                for request in tick.run_requests:
                    runs.put(request)
                idle = not tick.run_requests and runs.unfinished_tasks == 0
                idle_ticks = idle_ticks + 1 if idle and stop_producing.is_set() else 0
                if idle_ticks >= 2:
                    break
            time.sleep(0.2)
        runs.put(None)
        runner.join()

        db = os.environ["DUCKDB_PATH"]
        with duckdb.connect(db, read_only=True) as conn:
            stored = sum(conn.execute(f"SELECT count(*) FROM {d.table} WHERE source = 'kafka'")
                         .fetchone()[0] for d in (DEMAND, WEATHER))
            lost = conn.execute("SELECT coalesce(sum(messages), 0) FROM stream_losses"
                                ).fetchone()[0]
            by_reason = conn.execute("SELECT reason, sum(messages) FROM stream_losses GROUP BY 1"
                                     ).fetchall()
        acknowledged = publisher.delivered
        losing = [r for r in results if lost_messages(instance.get_run_by_id(r.run_id).tags)]
        print(f"acknowledged by the broker: {acknowledged:,} messages "
              f"({len(published_hours)} hours published, {len(results)} runs, "
              f"{sum(not r.success for r in results)} failed)")
        print(f"stored (source='kafka'):    {stored:,}")
        print(f"counted as lost:           {lost:,}  {dict(by_reason)}")
        print(f"accounted nowhere:         {acknowledged - stored - lost:,}")
        print(f"runs tagged with lost messages: {len(losing)} "
              f"({sum(lost_messages(instance.get_run_by_id(r.run_id).tags) for r in losing):,} "
              "messages)")

        started = time.monotonic()
        for result in losing:
            request = refetch_lost_hours(dg.build_run_status_sensor_context(
                sensor_name="refetch_lost_hours", dagster_event=result.get_run_success_event(),
                dagster_instance=instance, dagster_run=instance.get_run_by_id(result.run_id)))
            if isinstance(request, dg.RunRequest):
                dg.materialize(raw_assets, resources=dict(defs.resources), instance=instance,
                               tags=request.tags)
        with duckdb.connect(db, read_only=True) as conn:
            open_losses = conn.execute("SELECT count(*) FROM stream_losses "
                                       "WHERE refetched_at IS NULL").fetchone()[0]
            hours = conn.execute("SELECT min(first_hour), max(last_hour) FROM stream_losses"
                                 ).fetchone()
            missing = 0
            if hours[0] is not None:
                window = (pd.Timestamp(hours[0]), pd.Timestamp(hours[1]) + pd.Timedelta("1h"))
                for d in (DEMAND, WEATHER):
                    expected = len(read_bundled(d, *window, PACKAGE_DATA_DIR))
                    have = conn.execute(f"SELECT count(*) FROM {d.table} WHERE period_utc >= ? "
                                        "AND period_utc < ?", list(window)).fetchone()[0]
                    missing += expected - have
        print(f"re-fetch: {len(losing)} refetch_lost_hours runs in "
              f"{time.monotonic() - started:.1f} s over hours {hours[0]} .. {hours[1]}; "
              f"losses not re-fetched: {open_losses}; rows of those hours still missing: "
              f"{missing}")
    stack.stop()


if __name__ == "__main__":
    main()
