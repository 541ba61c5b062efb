"""ingest_offsets on the real broker: one row per valid message, every bad one explained."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import duckdb
import pandas as pd
import pytest

from electricity_assets import storage
from electricity_assets.datasets import DEMAND, WEATHER, Dataset
from electricity_assets.settings import PACKAGE_DATA_DIR, KafkaSettings
from electricity_assets.sources.bundled import read_bundled
from electricity_assets.streaming import ingest
from electricity_assets.streaming.client import end_offsets, ensure_topics, new_consumer
from electricity_assets.streaming.errors import KafkaConfigError
from electricity_assets.streaming.ingest import (
    OffsetsConfigError,
    format_offsets,
    ingest_offsets,
    parse_offsets,
)
from electricity_assets.streaming.messages import encode_frame
from electricity_assets.streaming.producer import Publisher

START = datetime(2019, 7, 1, tzinfo=UTC)
END = datetime(2019, 7, 1, 4, tzinfo=UTC)

MALFORMED = [
    (b"CAL", b"{oops", "not JSON"),
    (b"CAL", json.dumps({"region": "CAL", "period_utc": "2019-07-01T01:30:00Z", "type": "D",
                         "value_mwh": 1.0, "source": "x", "produced_at": "2019-07-01T02:00:00Z"}
                        ).encode(), "period_utc not on the hour"),
    (b"TEX", json.dumps({"region": "TEX", "period_utc": "2019-07-01T01:00:00Z", "type": "D",
                         "value_mwh": -3e6, "source": "x", "produced_at": "2019-07-01T02:00:00Z"}
                        ).encode(), "implausible value: value_mwh"),
    # Far future: would have made the sensor plan a run over every partition up to today.
    (b"TEX", json.dumps({"region": "TEX", "period_utc": "2999-01-01T00:00:00Z", "type": "D",
                         "value_mwh": 3, "source": "x", "produced_at": "2019-07-01T02:00:00Z"}
                        ).encode(), "implausible period_utc: more than 8 days after"),
    (b"x", json.dumps({"region": "tx", "period_utc": "2019-07-01T01:00:00Z", "type": "D",
                       "source": "x", "produced_at": "2019-07-01T02:00:00Z"}).encode(),
     "invalid region code"),
]


def publish(settings: KafkaSettings, dataset: Dataset,
            messages: list[tuple[bytes, bytes]]) -> str:
    """Publish, wait for delivery, return kafka_offsets covering the whole topic."""
    topic = settings.topic(dataset)
    ensure_topics(settings, [topic])
    publisher = Publisher(settings)
    publisher.publish(topic, messages)
    publisher.flush()
    consumer = new_consumer(settings)
    try:
        ends = end_offsets(consumer, topic)
    finally:
        consumer.close()
    return format_offsets(topic, {p: (0, high) for p, (_, high) in ends.items()})


def table(path: str, name: str, order: str) -> pd.DataFrame:
    """A table without its write-time columns (the only ones allowed to differ between runs:
    a re-sent message is published again)."""
    stamp = "received_at" if name == "dead_letters" else "ingested_at, published_at"
    with duckdb.connect(path) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        return conn.execute(f"SELECT * EXCLUDE ({stamp}) FROM {name} ORDER BY {order}").df()


@pytest.fixture(scope="module")
def demand_rows() -> pd.DataFrame:
    return read_bundled(DEMAND, START, END, PACKAGE_DATA_DIR)


def test_every_valid_message_is_one_row_and_every_bad_one_a_dead_letter(
        kafka_settings: KafkaSettings, duckdb_path: str, demand_rows: pd.DataFrame) -> None:
    valid = list(encode_frame(DEMAND, demand_rows, "eia_api"))
    # Interleave bad messages so the batch has to proceed past each of them.
    mixed = valid[:10] + [(k, v) for k, v, _ in MALFORMED] + valid[10:]
    offsets = publish(kafka_settings, DEMAND, mixed)

    with duckdb.connect(duckdb_path) as conn:
        result = ingest_offsets(conn, DEMAND, offsets, kafka_settings)

    assert (result.messages, result.rows_written, result.dead_letters) == (
        len(mixed), len(valid), len(MALFORMED))
    assert result.hours == list(pd.date_range(START, END, freq="h", inclusive="left"))
    rows = table(duckdb_path, "raw_demand", "region, type, period_utc")
    assert set(rows["source"]) == {"kafka"}
    expected = demand_rows.sort_values(["region", "type", "period_utc"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(rows[list(DEMAND.columns)], expected, check_dtype=False)

    dead = table(duckdb_path, "dead_letters", "kafka_partition, kafka_offset")
    assert len(dead) == len(MALFORMED)
    by_payload = dict(zip(dead["payload"], dead["reason"], strict=True))
    for _, payload, reason in MALFORMED:
        assert by_payload[payload.decode()].startswith(reason)
    assert set(dead["topic"]) == {kafka_settings.topic(DEMAND)}


def test_redelivering_the_whole_topic_adds_no_rows(
        kafka_settings: KafkaSettings, duckdb_path: str, demand_rows: pd.DataFrame) -> None:
    messages = list(encode_frame(DEMAND, demand_rows, "eia_api")) + [
        (k, v) for k, v, _ in MALFORMED]
    offsets = publish(kafka_settings, DEMAND, messages)
    with duckdb.connect(duckdb_path) as conn:
        ingest_offsets(conn, DEMAND, offsets, kafka_settings)
    first = table(duckdb_path, "raw_demand", "region, type, period_utc")
    first_dead = table(duckdb_path, "dead_letters", "kafka_partition, kafka_offset")

    # The producer re-sends everything (at-least-once), then the whole topic is read again.
    offsets = publish(kafka_settings, DEMAND, messages)
    with duckdb.connect(duckdb_path) as conn:
        again = ingest_offsets(conn, DEMAND, offsets, kafka_settings)
        ingest_offsets(conn, DEMAND, offsets, kafka_settings)

    assert again.messages == 2 * len(messages)
    pd.testing.assert_frame_equal(table(duckdb_path, "raw_demand", "region, type, period_utc"),
                                  first)
    # Each re-sent bad message has its own offset: it is a dead letter of its own, once.
    dead = table(duckdb_path, "dead_letters", "kafka_partition, kafka_offset")
    assert len(dead) == 2 * len(first_dead) == 2 * len(MALFORMED)


def test_a_run_failing_mid_batch_then_retried_writes_the_same_rows(
        kafka_settings: KafkaSettings, duckdb_path: str, isolated_home,
        demand_rows: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> None:
    offsets = publish(kafka_settings, DEMAND, list(encode_frame(DEMAND, demand_rows, "eia_api"))
                      + [(k, v) for k, v, _ in MALFORMED])
    clean_path = str(isolated_home / "clean.duckdb")
    with duckdb.connect(clean_path) as conn:
        ingest_offsets(conn, DEMAND, offsets, kafka_settings)

    monkeypatch.setattr(ingest, "CHUNK_MESSAGES", 25)
    real_upsert = storage.upsert
    calls = {"n": 0}

    def crash_on_third_write(conn, table_name, frame):  # the process dies mid-batch
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("disk full")
        return real_upsert(conn, table_name, frame)

    monkeypatch.setattr(storage, "upsert", crash_on_third_write)
    with duckdb.connect(duckdb_path) as conn, pytest.raises(RuntimeError, match="disk full"):
        ingest_offsets(conn, DEMAND, offsets, kafka_settings)
    partial = table(duckdb_path, "raw_demand", "region, type, period_utc")
    assert 0 < len(partial) < len(demand_rows)

    monkeypatch.setattr(storage, "upsert", real_upsert)
    with duckdb.connect(duckdb_path) as conn:
        ingest_offsets(conn, DEMAND, offsets, kafka_settings)
    for name, order in (("raw_demand", "region, type, period_utc"),
                        ("dead_letters", "kafka_partition, kafka_offset")):
        retried, clean = table(duckdb_path, name, order), table(clean_path, name, order)
        pd.testing.assert_frame_equal(retried, clean)


def test_weather_is_the_same_mechanism(kafka_settings: KafkaSettings, duckdb_path: str) -> None:
    frame = read_bundled(WEATHER, datetime(2020, 3, 1, tzinfo=UTC),
                         datetime(2020, 3, 1, 3, tzinfo=UTC), PACKAGE_DATA_DIR)
    offsets = publish(kafka_settings, WEATHER, list(encode_frame(WEATHER, frame, "open_meteo")))
    with duckdb.connect(duckdb_path) as conn:
        result = ingest_offsets(conn, WEATHER, offsets, kafka_settings)
    assert result.rows_written == len(frame) > 0 and result.dead_letters == 0
    rows = table(duckdb_path, "raw_weather", "region, station, period_utc")
    assert rows["station"].nunique() > 10  # per-station rows survive the round trip
    expected = frame.sort_values(["region", "station", "period_utc"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(rows[list(WEATHER.columns)], expected, check_dtype=False)


def test_a_sub_range_reads_exactly_those_offsets(
        kafka_settings: KafkaSettings, duckdb_path: str, demand_rows: pd.DataFrame) -> None:
    offsets = publish(kafka_settings, DEMAND, list(encode_frame(DEMAND, demand_rows, "eia_api")))
    topic, ranges, _ = parse_offsets(offsets)
    partition = next(p for p, (_, end) in ranges.items() if end >= 5)
    with duckdb.connect(duckdb_path) as conn:
        result = ingest_offsets(conn, DEMAND, format_offsets(topic, {partition: (2, 5)}),
                                kafka_settings)
    assert result.messages == 3 == result.rows_written


def test_offsets_config_errors_say_what_is_expected() -> None:
    with pytest.raises(OffsetsConfigError, match="expected JSON like"):
        parse_offsets('{"topic": "t", "ranges": {"0": [5, 2]}}')
    with pytest.raises(OffsetsConfigError, match="expected JSON like"):
        parse_offsets("not json")


def test_unreachable_broker_gives_a_clear_error(duckdb_path: str) -> None:
    settings = KafkaSettings(bootstrap_servers="127.0.0.1:1")
    with pytest.raises(KafkaConfigError, match="KAFKA_BROKER_ADDRESS"):
        ensure_topics(settings, ["t"], timeout_s=1)


def test_offsets_of_a_recreated_topic_are_recorded_as_lost_not_waited_for(
        kafka_settings: KafkaSettings, duckdb_path: str, demand_rows: pd.DataFrame) -> None:
    import time

    from confluent_kafka.admin import AdminClient

    from electricity_assets.streaming.client import topic_ids

    messages = list(encode_frame(DEMAND, demand_rows, "eia_api"))
    offsets = publish(kafka_settings, DEMAND, messages)
    topic, ranges, _ = parse_offsets(offsets)
    planned_id = topic_ids(kafka_settings, [topic])[topic]
    # The run's config, as the sensor plans it, then the in-memory broker "restarts": the topic
    # comes back with fewer messages than the run was given.
    with_id = format_offsets(topic, ranges, planned_id)
    admin = AdminClient(kafka_settings.client_config())
    admin.delete_topics([topic], operation_timeout=10)[topic].result()
    offsets = publish(kafka_settings, DEMAND, messages[:5])
    _, now_held, _ = parse_offsets(offsets)

    began = time.monotonic()
    with duckdb.connect(duckdb_path) as conn:
        result = ingest_offsets(conn, DEMAND, with_id, kafka_settings)
        assert time.monotonic() - began < 10  # was: wait 60 s, fail, retry, fail forever
        assert result.rows_written == 0
        assert sum(x.end - x.start for x in result.lost) == len(messages)
        assert {x.reason for x in result.lost} == {
            "the topic was recreated (new topic id) before the run read them"}
        # A config without the topic id (planned before ids were recorded): whatever the topic
        # still holds is read, the rest is lost.
        legacy = ingest_offsets(conn, DEMAND, format_offsets(topic, ranges), kafka_settings)
    assert legacy.messages == 5
    assert sum(x.end - x.start for x in legacy.lost) == len(messages) - 5
    assert {x.reason for x in legacy.lost} == {"no longer on the topic (recreated or truncated)"}
    assert sum(e - s for s, e in now_held.values()) == 5


@pytest.mark.parametrize("chunk_messages", [20_000, 1], ids=["one-chunk", "chunk-per-message"])
def test_a_correction_at_a_higher_offset_replaces_the_original(
        kafka_settings: KafkaSettings, duckdb_path: str, demand_rows: pd.DataFrame,
        monkeypatch: pytest.MonkeyPatch, chunk_messages: int) -> None:
    """Two deliveries of one key: the later offset wins, whether both come in one write or the
    correction overwrites a row already stored."""
    monkeypatch.setattr(ingest, "CHUNK_MESSAGES", chunk_messages)
    cal_demand = demand_rows[(demand_rows["region"] == "CAL") & (demand_rows["type"] == "D")]
    original = cal_demand.iloc[[1]]
    correction = original.assign(value_mwh=original["value_mwh"] + 123.0)
    messages = list(encode_frame(DEMAND, demand_rows, "eia_api"))
    offsets = publish(kafka_settings, DEMAND,
                      messages + list(encode_frame(DEMAND, correction, "eia_api")))
    with duckdb.connect(duckdb_path) as conn:
        result = ingest_offsets(conn, DEMAND, offsets, kafka_settings)
    assert result.messages == len(messages) + 1
    rows = table(duckdb_path, "raw_demand", "region, type, period_utc")
    assert len(rows) == len(demand_rows)
    stored = rows[(rows["region"] == "CAL") & (rows["type"] == "D")
                  & (rows["period_utc"] == original["period_utc"].iloc[0])]
    assert stored["value_mwh"].tolist() == correction["value_mwh"].tolist()
