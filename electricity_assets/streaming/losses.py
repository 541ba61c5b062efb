"""The ledger of Kafka messages lost before ingestion, and of their hours re-fetched from source.

A stream run that finds offsets of its range gone (`client.split_lost`: the broker lost the
topic, retention deleted them, or the sensor handed it the lost part of an old incarnation)
records each lost offset range here with the hours the run covered. A source pull of the same
dataset (the run the `refetch_lost_hours` sensor requests, or any schedule/backfill run) that
covers those hours marks them re-fetched. The raw assets' `no_lost_messages` check fails while a
loss is not re-fetched yet.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import duckdb
import pandas as pd

from electricity_assets import storage
from electricity_assets.storage import Column, Table
from electricity_assets.streaming.client import LostRange

STREAM_LOSSES = Table("stream_losses", (
    Column("dataset", "VARCHAR", False),
    Column("topic", "VARCHAR", False),
    Column("topic_id", "VARCHAR", False, "the topic incarnation the offsets belonged to"),
    Column("kafka_partition", "INTEGER", False),
    Column("start_offset", "BIGINT", False),
    Column("end_offset", "BIGINT", False, "exclusive"),
    Column("messages", "BIGINT", False),
    Column("reason", "VARCHAR", False),
    Column("first_hour", "TIMESTAMPTZ", False, "first hour the lost messages may be about"),
    Column("last_hour", "TIMESTAMPTZ", False, "last such hour (inclusive)"),
    Column("detected_at", "TIMESTAMPTZ", False),
    Column("detected_by", "VARCHAR", True, "Dagster run id"),
    Column("refetched_at", "TIMESTAMPTZ", True, "when a source pull covered those hours"),
    Column("refetch_run_id", "VARCHAR", True),
), ("topic_id", "kafka_partition", "start_offset"))


def record_losses(conn: duckdb.DuckDBPyConnection, dataset: str, topic: str,
                  topic_id: str | None, lost: Iterable[LostRange], hours: tuple[datetime, datetime],
                  run_id: str | None) -> int:
    """Add the lost ranges (a re-run recording the same range keeps one row). Returns messages."""
    rows = pd.DataFrame([{
        "dataset": dataset, "topic": topic, "topic_id": topic_id or "",
        "kafka_partition": x.partition,
        "start_offset": x.start, "end_offset": x.end, "messages": x.end - x.start,
        "reason": x.reason, "first_hour": hours[0], "last_hour": hours[1],
        "detected_at": datetime.now(UTC), "detected_by": run_id} for x in lost])
    storage.ensure_table(conn, STREAM_LOSSES)
    if len(rows):
        with storage.transaction(conn):
            storage.insert_frame(conn, STREAM_LOSSES.name, rows, "INSERT OR IGNORE")
    return int(rows["messages"].sum()) if len(rows) else 0


def mark_refetched(conn: duckdb.DuckDBPyConnection, dataset: str, start: datetime,
                   end: datetime, run_id: str | None) -> int:
    """Losses of `dataset` whose hours lie in [start, end): re-fetched by this source pull."""
    storage.ensure_table(conn, STREAM_LOSSES)
    marked = conn.execute(f"""
        UPDATE {STREAM_LOSSES.name} SET refetched_at = now(), refetch_run_id = $run
        WHERE dataset = $dataset AND refetched_at IS NULL
          AND first_hour >= $start AND last_hour < $end
        RETURNING messages""", {"run": run_id, "dataset": dataset, "start": start,
                                "end": end}).fetchall()
    return sum(m for (m,) in marked)


def open_losses(conn: duckdb.DuckDBPyConnection, dataset: str) -> pd.DataFrame:
    """Lost ranges of `dataset` whose hours no source pull has covered yet."""
    storage.ensure_table(conn, STREAM_LOSSES)
    return conn.execute(f"""
        SELECT topic, topic_id[:12] AS topic_id, kafka_partition, start_offset, end_offset,
               messages, reason, first_hour, last_hour, detected_by
        FROM {STREAM_LOSSES.name} WHERE dataset = ? AND refetched_at IS NULL
        ORDER BY detected_at, kafka_partition, start_offset""", [dataset]).df()


def hour_range(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """A run's partition window [start, end) as first and last hour."""
    return start, end - timedelta(hours=1)
