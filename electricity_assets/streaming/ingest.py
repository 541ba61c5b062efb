"""Write one exact Kafka offset range of a dataset's topic into DuckDB: the run side of streaming.

`kafka_offsets` (the run config the sensor hands to the raw assets) is JSON:

    {"topic": "electricity.demand.v1", "ranges": {"0": [120, 480], "2": [95, 300]}}

with half-open [start, end) offsets per partition. Valid messages are upserted into the dataset's
raw tables (source='kafka', `published_at` = the message's Kafka timestamp) and malformed ones into
`dead_letters`, both keyed so that re-reading the same range - a retried run, a re-delivered
topic - writes the same rows again and never adds any. For a key the latest *published* message
wins (timestamp, then offset), whatever partition it sits in and whichever run reads it; dead
letters are keyed by the topic's id too, so a recreated topic's offsets never replace older ones.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import duckdb
import pandas as pd
from confluent_kafka import Consumer

from electricity_assets import storage
from electricity_assets.datasets import Dataset
from electricity_assets.plausibility import latest_plausible_hour
from electricity_assets.replay_clock import current_time
from electricity_assets.settings import KafkaSettings
from electricity_assets.streaming.client import (
    LostRange,
    OffsetRanges,
    RawMessage,
    new_consumer,
    read_ranges,
    split_lost,
    topic_ids,
)
from electricity_assets.streaming.errors import KafkaConfigError
from electricity_assets.streaming.messages import decode, rows_frame

logger = logging.getLogger(__name__)

PAYLOAD_MAX_CHARS = 1000
CHUNK_MESSAGES = 20_000  # bounded memory for large ranges; each chunk is one idempotent upsert


class OffsetsConfigError(ValueError):
    pass


@dataclass
class IngestResult:
    topic: str
    messages: int = 0
    rows_written: int = 0
    dead_letters: int = 0
    rows_other_runs: int = 0  # valid rows about hours of another span of the same batch
    hours: list[datetime] = field(default_factory=list)
    reasons: dict[str, int] = field(default_factory=dict)  # dead-letter reason -> count
    lost: list[LostRange] = field(default_factory=list)
    topic_id: str | None = None  # the incarnation the offsets were planned on

    @property
    def first_hour(self) -> datetime | None:
        return self.hours[0] if self.hours else None

    @property
    def last_hour(self) -> datetime | None:
        return self.hours[-1] if self.hours else None


def format_offsets(topic: str, ranges: Mapping[int, tuple[int, int]],
                   topic_id: str | None = None) -> str:
    spans = {str(p): [int(s), int(e)] for p, (s, e) in sorted(ranges.items())}
    spec = {"topic": topic, **({"topic_id": topic_id} if topic_id else {}), "ranges": spans}
    return json.dumps(spec, separators=(",", ":"))


def parse_offsets(kafka_offsets: str) -> tuple[str, OffsetRanges, str | None]:
    """(topic, partition -> [start, end), the topic id the ranges were planned on or None)."""
    try:
        spec = json.loads(kafka_offsets)
        topic = spec["topic"]
        topic_id = spec.get("topic_id")
        ranges = {int(p): (int(r[0]), int(r[1])) for p, r in spec["ranges"].items()}
        if not isinstance(topic, str) or not topic:
            raise ValueError("topic must be a non-empty string")
        if topic_id is not None and not isinstance(topic_id, str):
            raise ValueError("topic_id must be a string")
        if any(s < 0 or e < s for s, e in ranges.values()):
            raise ValueError("each range must be [start, end) with 0 <= start <= end")
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise OffsetsConfigError(
            f"kafka_offsets is not valid ({exc}): expected JSON like "
            '{"topic": "electricity.demand.v1", "ranges": {"0": [start, end]}}'
        ) from None
    return topic, ranges, topic_id


DEAD_LETTER_COLUMNS = ["topic", "topic_id", "kafka_partition", "kafka_offset", "payload", "reason",
                       "received_at"]


def published_at(msg: RawMessage, received_at: datetime) -> pd.Timestamp:
    """When the message was published: its Kafka timestamp, else (a broker without) its receipt."""
    if msg.timestamp_ms is not None and msg.timestamp_ms > 0:
        return pd.Timestamp(msg.timestamp_ms, unit="ms", tz="UTC")
    return pd.Timestamp(received_at)


def decode_batch(dataset: Dataset, topic: str, messages: Iterable[RawMessage],
                 received_at: datetime, latest_hour: datetime | None = None,
                 topic_id: str = "") -> tuple[pd.DataFrame, pd.DataFrame]:
    """(raw rows ready for the dataset's table, dead-letter rows) for a batch of messages."""
    rows: list[dict] = []
    order: list[tuple[pd.Timestamp, int]] = []
    dead: list[dict] = []
    for msg in messages:
        row, reason = decode(dataset, msg.value, latest_hour)
        if row is None:
            payload = None if msg.value is None else msg.value.decode("utf-8", "replace")
            dead.append({"topic": topic, "topic_id": topic_id, "kafka_partition": msg.partition,
                         "kafka_offset": msg.offset, "payload": (payload or "")[:PAYLOAD_MAX_CHARS],
                         "reason": reason, "received_at": received_at})
        else:
            rows.append(row)
            order.append((published_at(msg, received_at), msg.offset))
    frame = rows_frame(dataset, rows)
    frame["published_at"] = pd.to_datetime([p for p, _ in order], utc=True)
    # The latest published message of a key wins, not the last one read: corrections sent
    # without a key land in any partition, and partitions are read one after the other.
    frame["_offset"] = [o for _, o in order]
    frame = (frame.sort_values(["published_at", "_offset"], kind="stable")
             .drop_duplicates(list(dataset.key_columns), keep="last")
             .drop(columns="_offset").reset_index(drop=True))
    frame["source"] = "kafka"
    frame["ingested_at"] = received_at
    return frame, pd.DataFrame(dead, columns=DEAD_LETTER_COLUMNS)


def ingest_offsets(conn: duckdb.DuckDBPyConnection, dataset: Dataset, kafka_offsets: str,
                   settings: KafkaSettings | None = None,
                   span: tuple[datetime, datetime] | None = None,
                   latest_hour: datetime | None = None) -> IngestResult:
    """Read exactly the offsets in `kafka_offsets`, upsert valid rows and dead letters.

    `span` (first, last hour, inclusive): write only rows about these hours; the sensor gives the
    batch's other hours to other runs over the same offsets. `latest_hour`: the last plausible
    hour (default: from the data clock now). Offsets the topic no longer holds are returned in
    `lost`, not waited for: a recreated topic must not fail the run forever.
    """
    settings = settings or KafkaSettings.from_env()
    if latest_hour is None:
        latest_hour = latest_plausible_hour(current_time())
    topic, ranges, topic_id = parse_offsets(kafka_offsets)
    result = IngestResult(topic=topic, topic_id=topic_id)
    storage.ensure_tables(conn, [dataset.table, "dead_letters"])  # even for an empty range
    # The incarnation the offsets belong to: in the dead letters' key, so the same offsets of a
    # recreated topic are new letters. Configs planned without it ask the broker.
    incarnation = topic_id or (topic_ids(settings, [topic])[topic] if any(
        e > s for s, e in ranges.values()) else None) or ""
    hours: set[datetime] = set()
    reasons: Counter[str] = Counter()
    consumer = new_consumer(settings)
    try:
        readable, result.lost = _split_lost_waiting(consumer, settings, topic, ranges, topic_id)
        for lost in result.lost:
            logger.warning("topic %s partition %d: offsets %d..%d lost (%s): they were never "
                           "ingested", topic, lost.partition, lost.start, lost.end - 1,
                           lost.reason)
        chunk: list[RawMessage] = []
        for msg in read_ranges(consumer, topic, readable):
            chunk.append(msg)
            if len(chunk) >= CHUNK_MESSAGES:
                _write_chunk(conn, dataset, (topic, incarnation), chunk, result, hours, reasons,
                             span, latest_hour)
                chunk = []
        _write_chunk(conn, dataset, (topic, incarnation), chunk, result, hours, reasons, span,
                     latest_hour)
    finally:
        consumer.close()
    result.hours = sorted(hours)
    result.reasons = dict(reasons)
    logger.info("ingested %s offsets %s: %d messages, %d rows, %d dead letters, %d rows left "
                "to the batch's other runs", topic, {p: list(r) for p, r in ranges.items()},
                result.messages, result.rows_written, result.dead_letters,
                result.rows_other_runs)
    return result


BROKER_WAIT_S = 30.0  # a restarting broker (the stack restarts a dead one in ~2 s)


def _split_lost_waiting(consumer: Consumer, settings: KafkaSettings, topic: str,
                        ranges: OffsetRanges, topic_id: str | None
                        ) -> tuple[OffsetRanges, list[LostRange]]:
    """`split_lost`, waiting up to BROKER_WAIT_S for a broker that does not answer: a run that
    failed here would leave its lost offsets counted nowhere once its retries ran out."""
    deadline = time.monotonic() + BROKER_WAIT_S
    while True:
        try:
            return split_lost(consumer, settings, topic, ranges, topic_id)
        except KafkaConfigError as exc:
            if time.monotonic() > deadline:
                raise
            logger.warning("topic %s: %s; retrying", topic, exc)
            time.sleep(1.0)


def _write_chunk(conn: duckdb.DuckDBPyConnection, dataset: Dataset, topic: tuple[str, str],
                 chunk: list[RawMessage], result: IngestResult, hours: set[datetime],
                 reasons: Counter[str], span: tuple[datetime, datetime] | None,
                 latest_hour: datetime) -> None:
    if not chunk:
        return
    rows, dead = decode_batch(dataset, topic[0], chunk, datetime.now(UTC), latest_hour,
                              topic_id=topic[1])
    if span is not None:
        mine = rows["period_utc"].between(pd.Timestamp(span[0]), pd.Timestamp(span[1]))
        result.rows_other_runs += int((~mine).sum())
        rows = rows[mine]
    result.messages += len(chunk)
    result.rows_written += storage.upsert_published(conn, dataset.table, rows)
    result.dead_letters += storage.upsert(conn, "dead_letters", dead)
    hours.update(ts.to_pydatetime() for ts in rows["period_utc"].unique())
    reasons.update(dead["reason"])
