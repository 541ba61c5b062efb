"""Operations: the hourly schedule, the retraining schedule and the serving-snapshot sensor.

- `hourly_forecast_schedule` materialises raw -> features -> forecasts for the hours that became
  complete since the previous tick (plus one hour again, for late or revised EIA rows), as one
  partition-range run. Offline the hours follow the replay clock (`replay_clock.py`), so the
  schedule does real work on the bundled history.
- `retrain_schedule` materialises `trained_models` on a slower cadence.
- `publish_serving_snapshot` copies the dashboard's tables after every successful run.

Cadence (env): ELECTRICITY_SCHEDULE_EVERY_MINUTES (hourly schedule tick, default 60; with
ELECTRICITY_REPLAY_SPEED=60 use 1 to replay one hour per minute), ELECTRICITY_RETRAIN_CRON
(default weekly, Sunday 03:00 UTC). Both schedules start running; switch them off in the UI.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from datetime import datetime, timedelta

import dagster as dg
import pandas as pd

from electricity_assets import replay_clock, serving, settings
from electricity_assets.partitions import hourly_partitions, weekly_partitions

HOURLY_ASSETS = ("raw_demand", "raw_weather", "demand_features", "weather_features",
                 "demand_forecasts")
RETRAIN_ASSETS = ("trained_models",)
MAX_HOURS_PER_TICK = 48
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def tick_minutes() -> int:
    text = os.environ.get("ELECTRICITY_SCHEDULE_EVERY_MINUTES", "60").strip()
    if not text.isdigit() or not (1 <= int(text) <= 60) or 60 % int(text):
        raise ValueError(f"ELECTRICITY_SCHEDULE_EVERY_MINUTES={text!r}: expected a divisor of 60 "
                         "(1, 2, 5, 10, 15, 30 or 60)")
    return int(text)


def hourly_cron(minutes: int) -> str:
    # At :05 rather than :00 when hourly, so the hour just ended has had time to be published.
    return "5 * * * *" if minutes == 60 else f"*/{minutes} * * * *"


def retrain_cron() -> str:
    return os.environ.get("ELECTRICITY_RETRAIN_CRON", "0 3 * * 0")


def due_hours(tick_time: datetime, minutes: int, speed: float, now: datetime
              ) -> tuple[datetime, datetime]:
    """First and last hour partition (start times) due at a tick.

    `now` is the data clock at the tick; the range covers the data hours that elapsed during one
    tick interval, plus the previous hour again, capped at MAX_HOURS_PER_TICK.
    """
    last = replay_clock.latest_complete_hour(now)
    hours = min(max(math.ceil(minutes / 60 * speed), 1) + 1, MAX_HOURS_PER_TICK)
    return last - timedelta(hours=hours - 1), last


def hourly_run_request(tick_time: datetime) -> dg.RunRequest | dg.SkipReason:
    mode = settings.source_mode()
    speed = replay_clock.replay_clock().speed if mode == "bundled" else 1.0
    now = replay_clock.current_time(tick_time)
    first, last = due_hours(tick_time, tick_minutes(), speed, now)
    if first < pd.Timestamp(hourly_partitions.start).to_pydatetime():
        return dg.SkipReason(f"data clock {now:%Y-%m-%d %H:%M} UTC is before the first partition")
    fmt = hourly_partitions.fmt
    start_key, end_key = first.strftime(fmt), last.strftime(fmt)
    return dg.RunRequest(
        run_key=f"{start_key}...{end_key}",
        tags={RANGE_START_TAG: start_key, RANGE_END_TAG: end_key, "source_mode": mode,
              "data_clock_utc": now.isoformat()},
    )


def retrain_partition_key(data_time: datetime) -> str | None:
    """The newest trained_models week that is complete at `data_time` (None before the first)."""
    this_week = (data_time - timedelta(days=(data_time.weekday() + 1) % 7)).replace(
        hour=0, minute=0, second=0, microsecond=0)  # the Sunday 00:00 UTC on or before
    last_complete = this_week - timedelta(weeks=1)
    if last_complete < pd.Timestamp(weekly_partitions.start).to_pydatetime():
        return None
    return last_complete.strftime(weekly_partitions.fmt)


def retrain_run_request(tick_time: datetime) -> dg.RunRequest | dg.SkipReason:
    now = replay_clock.current_time(tick_time)
    key = retrain_partition_key(now)
    if key is None:
        return dg.SkipReason(f"data clock {now:%Y-%m-%d %H:%M} UTC: no complete week yet")
    return dg.RunRequest(run_key=key, partition_key=key,
                         tags={"data_clock_utc": now.isoformat(),
                               "electricity/kind": "training"})


def _present(keys: Sequence[str], available: set[str]) -> list[str]:
    return [k for k in keys if k in available]


def build_operations(assets: Sequence) -> tuple[list, list, list]:
    """Jobs, schedules and sensors over whichever of the expected assets are defined."""
    available = {key.to_user_string() for a in assets for key in getattr(a, "keys", [])}
    jobs: list = []
    schedules: list = []
    hourly_keys = _present(HOURLY_ASSETS, available)
    if hourly_keys:
        hourly_job = dg.define_asset_job(
            "hourly_forecast_job", selection=dg.AssetSelection.assets(*hourly_keys),
            description="Latest hours: raw demand and weather -> features -> forecasts.")
        minutes = tick_minutes()

        @dg.schedule(job=hourly_job, cron_schedule=hourly_cron(minutes),
                     execution_timezone="UTC", default_status=dg.DefaultScheduleStatus.RUNNING,
                     description="Materialise the newest complete hours (replay clock offline).")
        def hourly_forecast_schedule(context: dg.ScheduleEvaluationContext):
            return hourly_run_request(context.scheduled_execution_time)

        jobs.append(hourly_job)
        schedules.append(hourly_forecast_schedule)
    retrain_keys = _present(RETRAIN_ASSETS, available)
    if retrain_keys:
        retrain_job = dg.define_asset_job(
            "retrain_job", selection=dg.AssetSelection.assets(*retrain_keys),
            description="Retrain the per-region models and update champion/challenger aliases.")
        jobs.append(retrain_job)

        @dg.schedule(job=retrain_job, cron_schedule=retrain_cron(), execution_timezone="UTC",
                     default_status=dg.DefaultScheduleStatus.RUNNING,
                     description="Retrain the newest complete data week (replay clock "
                                 "offline), on a slower cadence than the hourly forecasts.")
        def retrain_schedule(context: dg.ScheduleEvaluationContext):
            return retrain_run_request(context.scheduled_execution_time)

        schedules.append(retrain_schedule)
    return jobs, schedules, [publish_serving_snapshot]


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
