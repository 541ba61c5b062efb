"""kafka_stream_sensor + stream_ingest_job on the real broker, from message to DuckDB rows."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from electricity_assets import storage
from electricity_assets.datasets import DEMAND, WEATHER
from electricity_assets.settings import PACKAGE_DATA_DIR, KafkaSettings
from electricity_assets.sources.bundled import read_bundled
from electricity_assets.streaming.batches import StreamCursor, _allocate, plan_batches
from electricity_assets.streaming.client import ensure_topics
from electricity_assets.streaming.errors import KafkaConfigError
from electricity_assets.streaming.producer import Publisher

START = datetime(2020, 1, 15, tzinfo=UTC)  # demand and weather replay files overlap in Q1 2020
END = datetime(2020, 1, 15, 3, tzinfo=UTC)
BAD = (b"CAL", b'{"region": "CAL", "period_utc": "2020-01-15T01:00:00Z", "type": "D"}')


def build_defs() -> dg.Definitions:
    from electricity_assets import definitions
    from electricity_assets.jobs import stream_ingest_job
    from electricity_assets.sensors import kafka_stream_sensor

    return dg.Definitions(assets=definitions.assets, jobs=[stream_ingest_job],
                          sensors=[kafka_stream_sensor], resources=definitions.build_resources())


def publish(settings: KafkaSettings, start: datetime, end: datetime,
            extra: list[tuple[bytes, bytes]] = ()) -> int:
    ensure_topics(settings)
    publisher = Publisher(settings)
    sent = 0
    for dataset in (DEMAND, WEATHER):
        frame = read_bundled(dataset, start, end, PACKAGE_DATA_DIR)
        sent += publisher.publish_frame(dataset, frame, "replay")
    sent += publisher.publish(settings.topic(DEMAND), extra)
    publisher.flush()
    return sent


def tick(defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None):
    sensor = defs.resolve_sensor_def("kafka_stream_sensor")
    context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs,
                                      resources=dict(defs.resources or {}))
    return sensor.evaluate_tick(context)


def execute(defs: dg.Definitions, instance: dg.DagsterInstance, request: dg.RunRequest,
            raise_on_error: bool = True) -> dg.ExecuteInProcessResult:
    job = defs.resolve_job_def("stream_ingest_job")
    return job.execute_in_process(run_config=request.run_config, tags=request.tags,
                                  instance=instance, raise_on_error=raise_on_error)


def rows(path: str, table: str) -> pd.DataFrame:
    stamp = "received_at" if table == "dead_letters" else "ingested_at"
    with duckdb.connect(path) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        return conn.execute(f"SELECT * EXCLUDE ({stamp}) FROM {table} ORDER BY ALL").df()


@pytest.fixture
def instance() -> dg.DagsterInstance:
    with dg.DagsterInstance.ephemeral() as instance:
        yield instance


def test_sensor_to_raw_rows_exactly_once(kafka_settings: KafkaSettings, duckdb_path: str,
                                         instance: dg.DagsterInstance,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DUCKDB_PATH", duckdb_path)
    defs = build_defs()
    sent = publish(kafka_settings, START, END, [BAD])

    first = tick(defs, instance, None)
    twice = tick(defs, instance, None)  # the same tick evaluated again
    assert len(first.run_requests) == 1
    request = first.run_requests[0]
    assert [(r.run_key, r.run_config) for r in twice.run_requests] == [
        (request.run_key, request.run_config)]
    assert request.tags["dagster/asset_partition_range_start"] == "2020-01-15-00:00"
    assert request.tags["dagster/asset_partition_range_end"] == "2020-01-15-02:00"
    assert request.tags["kafka/messages"] == str(sent)
    assert request.tags["dagster/max_retries"] == "2"

    # A run dies mid-batch (the dead-letter write fails after raw rows were written) ...
    real_upsert = storage.upsert

    def dead_letters_fail(conn, table, frame):
        if table == "dead_letters":
            raise RuntimeError("disk full")
        return real_upsert(conn, table, frame)

    monkeypatch.setattr(storage, "upsert", dead_letters_fail)
    assert not execute(defs, instance, request, raise_on_error=False).success
    monkeypatch.setattr(storage, "upsert", real_upsert)
    # ... is re-executed with the same config, and the duplicate tick's run executes too.
    assert execute(defs, instance, request).success
    assert execute(defs, instance, twice.run_requests[0]).success

    demand = rows(duckdb_path, DEMAND.table)
    expected = read_bundled(DEMAND, START, END, PACKAGE_DATA_DIR)
    assert len(demand) == len(expected) and set(demand["source"]) == {"kafka"}
    assert len(rows(duckdb_path, WEATHER.table)) == len(
        read_bundled(WEATHER, START, END, PACKAGE_DATA_DIR))
    dead = rows(duckdb_path, "dead_letters")
    assert list(dead["reason"]) == ["missing field: source; missing field: produced_at; "
                                    "missing field: value_mwh"]

    # Nothing new: skip. A new live hour: a run for exactly that hour and those offsets.
    assert not tick(defs, instance, first.cursor).run_requests
    publish(kafka_settings, END, END + pd.Timedelta(hours=1))
    later = tick(defs, instance, first.cursor)
    assert len(later.run_requests) == 1
    assert later.run_requests[0].tags["dagster/asset_partition_range_start"] == "2020-01-15-03:00"
    assert later.run_requests[0].tags["dagster/asset_partition_range_end"] == "2020-01-15-03:00"
    assert execute(defs, instance, later.run_requests[0]).success
    assert len(rows(duckdb_path, DEMAND.table)) == len(
        read_bundled(DEMAND, START, END + pd.Timedelta(hours=1), PACKAGE_DATA_DIR))


def test_batches_are_bounded_and_cover_every_offset_once(kafka_settings: KafkaSettings) -> None:
    settings = KafkaSettings(**{**kafka_settings.__dict__, "max_batch_messages": 40})
    sent = publish(settings, START, END)
    batches, cursor = plan_batches(settings, None, max_batches=100)
    assert all(b.messages <= 40 for b in batches)
    covered: dict[tuple[str, int], list[tuple[int, int]]] = {}
    for batch in batches:
        for name, ranges in batch.ranges.items():
            for partition, span in ranges.items():
                covered.setdefault((name, partition), []).append(span)
    for spans in covered.values():  # contiguous, no overlap, no gap
        assert spans[0][0] == 0
        assert all(a[1] == b[0] for a, b in zip(spans, spans[1:], strict=False))
    assert sum(e - s for spans in covered.values() for s, e in spans) == sent
    assert len({b.run_key for b in batches}) == len(batches)
    again, _ = plan_batches(settings, cursor.to_json())
    assert again == []


def test_allocate_shares_the_budget_fairly() -> None:
    backlog = {("demand", 0): (0, 100), ("demand", 1): (10, 12), ("weather", 0): (5, 105)}
    assert _allocate(backlog, 50) == {("demand", 0): (0, 24), ("demand", 1): (10, 12),
                                      ("weather", 0): (5, 29)}
    assert _allocate(backlog, 1000) == {k: v for k, v in backlog.items()}


def test_a_corrupt_cursor_says_how_to_recover() -> None:
    with pytest.raises(KafkaConfigError, match="reset it in the UI"):
        StreamCursor.parse('{"topics": 3}')


def test_a_recreated_topic_is_read_again_under_new_run_keys(
        kafka_settings: KafkaSettings) -> None:
    from confluent_kafka.admin import AdminClient

    publish(kafka_settings, START, END)
    before, cursor = plan_batches(kafka_settings, None)
    topic = kafka_settings.topic(DEMAND)
    admin = AdminClient(kafka_settings.client_config())
    admin.delete_topics([topic], operation_timeout=10)[topic].result()
    # The in-memory broker restarted, say: the topic is back with fewer messages than before.
    publish(kafka_settings, START, START + pd.Timedelta(hours=1))
    after, _ = plan_batches(kafka_settings, cursor.to_json())
    demand_ranges = after[0].ranges["demand"]
    assert min(start for start, _ in demand_ranges.values()) == 0
    assert sum(e - s for s, e in demand_ranges.values()) == len(
        read_bundled(DEMAND, START, START + pd.Timedelta(hours=1), PACKAGE_DATA_DIR))
    assert after[0].run_key not in {b.run_key for b in before}


def test_partition_range_is_clamped_to_existing_partitions() -> None:
    from electricity_assets.sensors import _partition_key

    first, last = "2015-07-01-05:00", "2026-01-01-10:00"
    assert _partition_key(datetime(2020, 1, 15, 3, tzinfo=UTC), first, last) == "2020-01-15-03:00"
    # Day-ahead DF rows and weather forecasts are about hours that have no partition yet.
    assert _partition_key(datetime(2026, 1, 2, tzinfo=UTC), first, last) == last
    assert _partition_key(datetime(2001, 1, 1, tzinfo=UTC), first, last) == first
    assert _partition_key(None, first, last) == last  # only unreadable messages in the batch


def test_a_broker_that_is_down_skips_the_tick_with_the_reason(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from electricity_assets.resources import KafkaResource
    from electricity_assets.sensors import kafka_stream_sensor

    result = kafka_stream_sensor(dg.build_sensor_context(
        cursor=None, resources={"kafka": KafkaResource(bootstrap_servers="127.0.0.1:1")}))
    assert isinstance(result, dg.SkipReason)
    assert "KAFKA_BROKER_ADDRESS" in (result.skip_message or "")


def test_hour_spans_cut_at_gaps_and_stay_bounded() -> None:
    from electricity_assets.streaming.batches import hour_spans

    h = [datetime(2020, 1, 15, i, tzinfo=UTC) for i in range(4)]
    assert hour_spans(h) == [(h[0], h[3])]
    late = datetime(2016, 1, 1, tzinfo=UTC)  # a correction years back
    assert hour_spans([*h, late]) == [(late, late), (h[0], h[3])]
    # A day apart is still one stretch; more than MAX_GAP apart is not.
    assert len(hour_spans([h[0], h[0] + pd.Timedelta(hours=24)])) == 1
    assert len(hour_spans([h[0], h[0] + pd.Timedelta(hours=25)])) == 2
    # Scattered hours: at most max_spans runs, the widest gaps cut.
    days = [datetime(2019, 1, 1, tzinfo=UTC) + pd.Timedelta(days=2 ** i) for i in range(6)]
    spans = hour_spans(days, max_spans=3)
    assert spans == [(days[0], days[3]), (days[4], days[4]), (days[5], days[5])]


def test_a_far_future_message_among_valid_ones_stalls_nothing(
        kafka_settings: KafkaSettings, duckdb_path: str, project_dagster_home: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The 2999-01-01 message of the adversarial run, on the real broker, with the project's
    own instance storage: bounded runs, the poison one a dead letter, a short tick."""
    import time

    monkeypatch.delenv("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", raising=False)
    monkeypatch.setenv("DUCKDB_PATH", duckdb_path)
    poison = [(b"CAL", json_message(period)) for period in
              ("2999-01-01T00:00:00Z", "9999-12-31T23:00:00Z", "0001-01-01T00:00:00Z")]
    late = (b"TEX", json_message("2016-01-01T00:00:00Z"))  # a valid correction years back
    defs = build_defs()

    began = time.monotonic()
    sent = publish(kafka_settings, START, END, [poison[0], *poison[1:], late])
    with dg.DagsterInstance.from_config(str(project_dagster_home)) as instance:
        tick_began = time.monotonic()
        result = tick(defs, instance, None)
        tick_s = time.monotonic() - tick_began
        ranges = [(r.tags["dagster/asset_partition_range_start"],
                   r.tags["dagster/asset_partition_range_end"]) for r in result.run_requests]
        assert ranges == [("2016-01-01-00:00", "2016-01-01-00:00"),
                          ("2020-01-15-00:00", "2020-01-15-02:00")]
        assert len({r.run_key for r in result.run_requests}) == 2
        runs = [execute(defs, instance, request) for request in result.run_requests]
        latency_s = time.monotonic() - began
        planned = [len(instance.get_records_for_run(
            run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED).records)
            for run in runs]
    print(f"poison in batch: tick {tick_s:.1f} s, publish -> rows {latency_s:.1f} s")
    assert tick_s < 5, f"sensor tick took {tick_s:.1f} s"
    assert latency_s < 60, f"valid rows landed after {latency_s:.1f} s"
    assert planned == [5, 5]  # one per asset of stream_ingest_job, whatever the range

    demand = rows(duckdb_path, DEMAND.table)
    expected = read_bundled(DEMAND, START, END, PACKAGE_DATA_DIR)
    assert len(demand) == len(expected) + 1  # + the 2016 correction, written exactly once
    assert demand["period_utc"].min() == pd.Timestamp("2016-01-01", tz="UTC")
    dead = rows(duckdb_path, "dead_letters")
    assert len(dead) == 3 and sent == len(expected) + len(rows(
        duckdb_path, WEATHER.table)) + 4
    assert sorted(reason.split(" (")[0] for reason in dead["reason"]) == [
        "implausible period_utc: before the first hourly partition 2015-07-01T05:00Z",
        "implausible period_utc: more than 8 days after the data clock's now",
        "implausible period_utc: more than 8 days after the data clock's now"]


def json_message(period_utc: str) -> bytes:
    import json

    return json.dumps({"region": "TEX", "period_utc": period_utc, "type": "D",
                       "value_mwh": 41000.0, "source": "adversary",
                       "produced_at": "2020-01-15T03:00:00Z"}).encode()


def test_after_a_stream_run_the_raw_checks_describe_its_materialisation(
        kafka_settings: KafkaSettings, duckdb_path: str, instance: dg.DagsterInstance,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Stream runs leave the checks out (latency); their companion run makes the UI truthful
    instead of "0 / 4 passed" against the latest materialisation."""
    from electricity_assets import definitions
    from electricity_assets.resources import build_resources
    from electricity_assets.sensors import raw_checks_after_stream_runs

    monkeypatch.setenv("DUCKDB_PATH", duckdb_path)
    defs = dg.Definitions(assets=definitions.assets, asset_checks=definitions.asset_checks,
                          jobs=definitions.jobs, sensors=definitions.sensors,
                          resources=build_resources())
    publish(kafka_settings, START, END)
    stream = execute(defs, instance, tick(defs, instance, None).run_requests[0])

    def check_targets() -> dict[str, int | None]:
        targets = {}
        for dataset in (DEMAND, WEATHER):
            for name in ("no_duplicate_keys", "missing_hours", "implausible_values", "freshness"):
                key = dg.AssetCheckKey(dg.AssetKey(dataset.table), name)
                history = instance.event_log_storage.get_asset_check_execution_history(key, 1)
                evaluation = (history[0].event.dagster_event.event_specific_data
                              if history and history[0].event else None)
                targets[f"{dataset.table}.{name}"] = (
                    evaluation.target_materialization_data.storage_id
                    if evaluation and evaluation.target_materialization_data else None)
        return targets

    assert set(check_targets().values()) == {None}  # the stream run evaluated none
    context = dg.build_run_status_sensor_context(
        sensor_name="raw_checks_after_stream_runs", dagster_instance=instance,
        dagster_run=stream.dagster_run, dagster_event=stream.get_run_success_event())
    request = raw_checks_after_stream_runs(context)
    assert isinstance(request, dg.RunRequest)
    checks = defs.resolve_job_def("raw_checks_job").execute_in_process(
        instance=instance, tags=request.tags)
    assert checks.success
    latest = {d.table: instance.fetch_materializations(dg.AssetKey(d.table), limit=1)
              .records[0].storage_id for d in (DEMAND, WEATHER)}
    assert check_targets() == {key: latest[key.split(".")[0]] for key in check_targets()}


def test_a_run_whose_topic_was_recreated_succeeds_and_shows_the_lost_offsets(
        kafka_settings: KafkaSettings, duckdb_path: str, instance: dg.DagsterInstance,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The adversarial run's retry failed forever with 'was the topic recreated?'."""
    from confluent_kafka.admin import AdminClient

    monkeypatch.setenv("DUCKDB_PATH", duckdb_path)
    defs = build_defs()
    publish(kafka_settings, START, END)
    request = tick(defs, instance, None).run_requests[0]
    topic = kafka_settings.topic(DEMAND)
    admin = AdminClient(kafka_settings.client_config())
    admin.delete_topics([topic], operation_timeout=10)[topic].result()
    ensure_topics(kafka_settings)  # the in-memory broker restarted: the topic is back, empty

    result = execute(defs, instance, request)
    assert result.success
    metadata = instance.fetch_materializations(dg.AssetKey(DEMAND.table), limit=1).records[
        0].asset_materialization.metadata
    assert metadata["lost_messages"].value == len(read_bundled(DEMAND, START, END,
                                                               PACKAGE_DATA_DIR))
    assert "the topic was recreated" in metadata["lost_offsets"].value
    assert "lost_messages" not in instance.fetch_materializations(
        dg.AssetKey(WEATHER.table), limit=1).records[0].asset_materialization.metadata
