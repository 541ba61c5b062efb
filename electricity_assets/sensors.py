"""The code location's sensors: kafka_stream_sensor and publish_serving_snapshot.

kafka_stream_sensor turns new Kafka messages into runs of stream_ingest_job.

Each tick (every 5 s: latency to raw rows stays well under a minute) reads end offsets, plans up
to 8 batches of at most KAFKA_MAX_BATCH_MESSAGES messages after the cursor, and yields one
RunRequest per batch: run key and run config carry the batch's offset ranges, the partition range
covers the hours its messages are about. The run, not the sensor, writes the messages, so a failed
run re-executed re-reads the same range; the cursor only says what has been handed to a run.

publish_serving_snapshot copies the dashboard's tables after every successful run.
"""

from __future__ import annotations

from datetime import datetime

import dagster as dg

from electricity_assets import serving
from electricity_assets.datasets import DATASETS
from electricity_assets.jobs import stream_ingest_job, stream_run_config
from electricity_assets.partitions import hourly_partitions
from electricity_assets.resources import KafkaResource
from electricity_assets.streaming.batches import Batch, plan_batches
from electricity_assets.streaming.settings import BrokerUnavailable

SENSOR_INTERVAL_SECONDS = 5
RUN_RETRIES = 2


def _partition_key(hour: datetime | None, first: str, last: str) -> str:
    """The hour's partition key, clamped to existing partitions (day-ahead DF rows are future)."""
    if hour is None:
        return last
    key = hour.strftime(hourly_partitions.fmt)
    return min(max(key, first), last)  # keys in this format sort chronologically


def run_request_for(batch: Batch, first_key: str, last_key: str) -> dg.RunRequest:
    start = _partition_key(batch.first_hour, first_key, last_key)
    end = _partition_key(batch.last_hour, first_key, last_key)
    return dg.RunRequest(
        run_key=batch.run_key,
        run_config=stream_run_config(
            {name: batch.kafka_offsets(DATASETS[name]) for name in batch.topics}),
        tags={
            "dagster/asset_partition_range_start": start,
            "dagster/asset_partition_range_end": end,
            "kafka/messages": str(batch.messages),
            # Retried runs re-read the same offsets (needs `run_retries: enabled` in dagster.yaml).
            "dagster/max_retries": str(RUN_RETRIES),
        },
    )


@dg.sensor(
    job=stream_ingest_job,
    minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Polls the demand and weather topics; one run per bounded batch of new messages.",
)
def kafka_stream_sensor(context: dg.SensorEvaluationContext,
                        kafka: KafkaResource) -> dg.SensorResult | dg.SkipReason:
    try:
        batches, cursor = plan_batches(kafka.kafka_settings(), context.cursor)
    except BrokerUnavailable as exc:
        return dg.SkipReason(str(exc))
    if not batches:
        return dg.SkipReason("no new Kafka messages")
    first_key = hourly_partitions.get_first_partition_key()
    last_key = hourly_partitions.get_last_partition_key()
    requests = [run_request_for(batch, first_key, last_key) for batch in batches]
    for batch, request in zip(batches, requests, strict=True):
        context.log.info(
            f"batch of {batch.messages} messages, partitions "
            f"{request.tags['dagster/asset_partition_range_start']}.."
            f"{request.tags['dagster/asset_partition_range_end']}, offsets {batch.run_key}")
    return dg.SensorResult(run_requests=requests, cursor=cursor.to_json())



@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS, name="publish_serving_snapshot",
    monitor_all_code_locations=True,  # also runs launched from the CLI (the stack's seed)
    default_status=dg.DefaultSensorStatus.RUNNING, minimum_interval_seconds=30,
    description="After each successful run, publish the dashboard's serving snapshot.")
def publish_serving_snapshot(context: dg.RunStatusSensorContext):
    try:
        # Well inside the sensor's gRPC deadline (60 s); a missed publish is redone by the
        # next successful run.
        result = serving.publish_snapshot(lock_timeout_s=20.0)
    except serving.ServingUnavailableError as exc:
        return dg.SkipReason(str(exc))
    context.log.info(f"serving snapshot published in {result['seconds']:.2f} s: {result['rows']}")
    return None
