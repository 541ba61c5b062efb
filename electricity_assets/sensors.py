"""Sensors: kafka_stream_sensor, raw_checks_after_stream_runs and publish_serving_snapshot.

kafka_stream_sensor turns new Kafka messages into runs of stream_ingest_job.

Each tick (every 5 s: latency to raw rows stays well under a minute) reads end offsets, plans up
to 8 batches of at most KAFKA_MAX_BATCH_MESSAGES messages after the cursor, and yields one
RunRequest per stretch of hours a batch touches (`batches.hour_spans`): run key and run config carry
the batch's offset ranges and the span, the partition range covers exactly that span. The run, not
the sensor, writes the messages, so a failed run re-executed re-reads the same range; the cursor
only says what has been handed to a run. Messages about implausible hours (before the first
partition, days past the data clock) are in no span: the runs make them dead letters.

publish_serving_snapshot copies the dashboard's tables after every successful run;
raw_checks_after_stream_runs evaluates the raw tables' checks after every successful stream run;
reissue_after_late_inputs evaluates `automation.reissue_on_late_inputs`: features and forecast
issues that read an input hour which changed later (a late hour, a correction, a backfill), and
the newest issue after a new champion, are re-materialised by Dagster.

Lost messages (the broker lost a topic before its messages were ingested): the stream runs count
them (`streaming/losses.py`, the raw assets' check `no_lost_messages`), including those the sensor
had seen or the producers had acknowledged in the lost incarnation (lost batches,
`batches._lost_batches`); refetch_lost_hours then re-fetches their hours from the source.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import dagster as dg
import pandas as pd

from electricity_assets import serving, storage
from electricity_assets.assets.raw import lost_messages
from electricity_assets.datasets import DATASETS
from electricity_assets.jobs import (
    hourly_forecast_job,
    raw_checks_job,
    stream_ingest_job,
    stream_run_config,
)
from electricity_assets.partitions import hourly_partitions
from electricity_assets.plausibility import latest_plausible_hour
from electricity_assets.replay_clock import current_time
from electricity_assets.resources import KafkaResource
from electricity_assets.schedules import RANGE_END_TAG, RANGE_START_TAG
from electricity_assets.streaming.batches import Batch, HourSpan, plan_batches
from electricity_assets.streaming.errors import BrokerUnavailable

SENSOR_INTERVAL_SECONDS = 5
RUN_RETRIES = 2


def _partition_key(hour: datetime | None, first: str, last: str) -> str:
    """The hour's partition key, clamped to existing partitions (day-ahead DF rows are future)."""
    if hour is None:
        return last
    key = hour.strftime(hourly_partitions.fmt)
    return min(max(key, first), last)  # keys in this format sort chronologically


def run_requests_for(batch: Batch, first_key: str, last_key: str) -> list[dg.RunRequest]:
    """One run per span of the batch; one run over the last partition when it has none (its
    messages are all dead letters, which still have to be written)."""
    spans: list[HourSpan | None] = list(batch.spans) or [None]
    return [_run_request(batch, span, first_key, last_key) for span in spans]


def _run_request(batch: Batch, span: HourSpan | None, first_key: str,
                 last_key: str) -> dg.RunRequest:
    start = _partition_key(span[0] if span else None, first_key, last_key)
    end = _partition_key(span[1] if span else None, first_key, last_key)
    suffix = f"|{span[0]:%Y%m%d%H}-{span[1]:%Y%m%d%H}" if len(batch.spans) > 1 and span else ""
    return dg.RunRequest(
        run_key=batch.run_key + suffix,
        run_config=stream_run_config(
            {name: batch.kafka_offsets(DATASETS[name]) for name in batch.topics},
            span, batch.latest_hour),
        tags={
            RANGE_START_TAG: start,
            RANGE_END_TAG: end,
            "kafka/messages": str(batch.messages),
            **({"kafka/lost_batch": "true"} if batch.lost else {}),
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
    latest = latest_plausible_hour(current_time())
    try:
        batches, cursor = plan_batches(kafka.kafka_settings(), context.cursor, latest_hour=latest)
    except BrokerUnavailable as exc:
        return dg.SkipReason(str(exc))
    if not batches:
        return dg.SkipReason("no new Kafka messages")
    first_key = hourly_partitions.get_first_partition_key()
    last_key = hourly_partitions.get_last_partition_key()
    requests: list[dg.RunRequest] = []
    for batch in batches:
        if batch.lost:
            context.log.warning(f"{batch.messages} messages lost by the broker before "
                                f"ingestion ({batch.run_key}): a run counts them, then their "
                                "hours are re-fetched from the source")
            if not batch.spans:  # no producer said which hours: the recent ones
                batch.spans = [lost_hours_fallback(current_time())]
        batch_requests = run_requests_for(batch, first_key, last_key)
        ranges = ", ".join(f"{r.tags[RANGE_START_TAG]}..{r.tags[RANGE_END_TAG]}"
                           for r in batch_requests)
        context.log.info(f"batch of {batch.messages} messages, partitions {ranges}, "
                         f"offsets {batch.run_key}")
        requests += batch_requests
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
    _refresh_served_champions(context)
    return None


def _refresh_served_champions(context: dg.RunStatusSensorContext) -> None:
    """Keep the runs' copy of the champions in step with MLflow (an alias moved by hand is
    served from the next run on): one alias look-up per region, a download only for a new
    version."""
    from electricity_assets import settings
    from electricity_assets.modeling import champion_cache, issuing
    from electricity_assets.modeling.registry import MlflowConfig

    config = MlflowConfig(settings.mlflow_tracking_uri(), settings.mlflow_artifact_root())
    try:
        with serving.read_connection() as conn:
            regions = storage.demand_regions(conn)
        champions, _ = champion_cache.resolve(regions, issuing.MlflowChampions(lambda: config),
                                              settings.local_home())
    except Exception as exc:  # noqa: BLE001 - the runs fall back to the registry themselves
        context.log.warning(f"serving champions not refreshed: {exc}")
        return
    context.log.info("serving champions: " + ", ".join(
        f"{r} v{c.version}" for r, c in sorted(champions.items())))


LOST_FALLBACK_HOURS = 48


def lost_hours_fallback(now: datetime) -> HourSpan:
    """The hours re-fetched for lost messages whose hours nobody knows: the last 48 before now."""
    last = pd.Timestamp(now).floor("h").to_pydatetime() - timedelta(hours=1)
    return last - timedelta(hours=LOST_FALLBACK_HOURS - 1), last


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS, name="refetch_lost_hours",
    monitored_jobs=[stream_ingest_job], request_job=hourly_forecast_job,
    default_status=dg.DefaultSensorStatus.RUNNING, minimum_interval_seconds=10,
    description="After a stream run that found Kafka messages lost before ingestion (tags "
                "kafka/lost_messages.<table>), re-fetch its hours from the configured source: a "
                "partition-range run of hourly_forecast_job (raw -> features -> forecasts).")
def refetch_lost_hours(context: dg.RunStatusSensorContext) -> dg.RunRequest | dg.SkipReason:
    run = context.dagster_run
    lost = lost_messages(run.tags)
    if not lost:
        return dg.SkipReason(f"run {run.run_id} lost no message")
    start = run.tags.get(RANGE_START_TAG)
    end = run.tags.get(RANGE_END_TAG)
    if start is None or end is None:
        return dg.SkipReason(f"run {run.run_id} has no partition range to re-fetch")
    context.log.warning(f"run {run.run_id} lost {lost} Kafka messages: "
                        f"re-fetching {start}..{end} from the source")
    return dg.RunRequest(run_key=f"refetch-{run.run_id}", tags={
        RANGE_START_TAG: start,
        RANGE_END_TAG: end,
        "electricity/refetch_of": run.run_id})


PENDING = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED,
           dg.DagsterRunStatus.STARTING]


def _one_waiting_run(context: dg.RunStatusSensorContext, job: dg.UnresolvedAssetJobDefinition,
                     key_prefix: str) -> dg.RunRequest | dg.SkipReason:
    """A run of `job` after the monitored run, unless one is already waiting: it reads the
    tables when it starts, so it covers every run finished before then."""
    if context.instance.get_runs_count(dg.RunsFilter(job_name=job.name, statuses=PENDING)):
        return dg.SkipReason(f"a {job.name} run is already waiting: it will see this data")
    return dg.RunRequest(run_key=f"{key_prefix}-{context.dagster_run.run_id}")


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS, name="raw_checks_after_stream_runs",
    monitored_jobs=[stream_ingest_job], request_job=raw_checks_job,
    default_status=dg.DefaultSensorStatus.RUNNING, minimum_interval_seconds=10,
    description="After a successful stream run, evaluate the raw tables' checks in their own run "
                "(the stream job leaves them out to keep latency low).")
def raw_checks_after_stream_runs(
        context: dg.RunStatusSensorContext) -> dg.RunRequest | dg.SkipReason:
    # Without this, stream runs leave the raw assets' checks unevaluated for their latest
    # materialisation ("0 / 4 passed" in the UI). One waiting checks run covers every stream
    # run before it starts: the checks read the whole table.
    return _one_waiting_run(context, raw_checks_job, "raw-checks-after")


# Custom conditions (the data clock) run in the code server, not the daemon: use_user_code_server.
reissue_after_late_inputs = dg.AutomationConditionSensorDefinition(
    "reissue_after_late_inputs",
    target=dg.AssetSelection.assets("demand_features", "weather_features", "demand_forecasts",
                                    "day_ahead_forecasts"),
    use_user_code_server=True,
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Re-materialises the feature and forecast partitions that read an input hour "
                "which changed after they were written, and the newest issue after a new "
                "champion (automation.reissue_on_late_inputs).",
)
