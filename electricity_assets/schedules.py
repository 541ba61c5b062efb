"""The hourly schedule and the retraining schedule.

- `hourly_forecast_schedule` materialises raw -> features -> forecasts for the hours that became
  complete since the previous tick (plus one hour again, for late or revised EIA rows), as one
  partition-range run. Offline the hours follow the replay clock (`replay_clock.py`), so the
  schedule does real work on the bundled history.
- `retrain_schedule` materialises `trained_models` on a slower cadence.

Cadence (env): ELECTRICITY_SCHEDULE_EVERY_MINUTES (hourly schedule tick, default 60; with
ELECTRICITY_REPLAY_SPEED=60 use 1 to replay one hour per minute), ELECTRICITY_RETRAIN_CRON
(default weekly, Sunday 03:00 UTC). Both schedules start running; switch them off in the UI.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import dagster as dg
import pandas as pd

from electricity_assets import replay_clock, settings
from electricity_assets.jobs import hourly_forecast_job, retrain_job
from electricity_assets.partitions import hourly_partitions, weekly_partitions

MAX_HOURS_PER_TICK = 48
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def hourly_cron(minutes: int) -> str:
    # At :05 rather than :00 when hourly, so the hour just ended has had time to be published.
    return "5 * * * *" if minutes == 60 else f"*/{minutes} * * * *"


def due_hours(minutes: int, speed: float, now: datetime) -> tuple[datetime, datetime]:
    """First and last hour partition (start times) due at a tick.

    `now` is the data clock at the tick; the range covers the data hours that elapsed during one
    tick interval, plus the previous hour again, capped at MAX_HOURS_PER_TICK.
    """
    last = replay_clock.latest_complete_hour(now)
    hours = min(max(math.ceil(minutes / 60 * speed), 1) + 1, MAX_HOURS_PER_TICK)
    return last - timedelta(hours=hours - 1), last


def hourly_run_request(tick_time: datetime) -> dg.RunRequest | dg.SkipReason:
    clock = replay_clock.data_clock()
    now = clock.now(tick_time)
    first, last = due_hours(settings.schedule_every_minutes(), clock.speed(), now)
    if first < pd.Timestamp(hourly_partitions.start).to_pydatetime():
        return dg.SkipReason(f"data clock {now:%Y-%m-%d %H:%M} UTC is before the first partition")
    if hourly_partitions.end is not None:  # offline: the last partition ends the replayed data
        final = pd.Timestamp(hourly_partitions.end).to_pydatetime() - timedelta(hours=1)
        if first > final:
            return dg.SkipReason(f"data clock {now:%Y-%m-%d %H:%M} UTC is past the replayed "
                                 f"data (last partition {final:%Y-%m-%d %H:%M})")
        last = min(last, final)
    fmt = hourly_partitions.fmt
    start_key, end_key = first.strftime(fmt), last.strftime(fmt)
    return dg.RunRequest(
        run_key=f"{start_key}...{end_key}",
        tags={RANGE_START_TAG: start_key, RANGE_END_TAG: end_key, "source_mode": clock.mode,
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
    key = min(key, weekly_partitions.get_last_partition_key())  # past the replayed data: its last
    return dg.RunRequest(run_key=key, partition_key=key,
                         tags={"data_clock_utc": now.isoformat(),
                               "electricity/kind": "training"})


@dg.schedule(job=hourly_forecast_job, cron_schedule=hourly_cron(settings.schedule_every_minutes()),
             execution_timezone="UTC", default_status=dg.DefaultScheduleStatus.RUNNING,
             description="Materialise the newest complete hours (replay clock offline).")
def hourly_forecast_schedule(context: dg.ScheduleEvaluationContext):
    return hourly_run_request(context.scheduled_execution_time)


@dg.schedule(job=retrain_job, cron_schedule=settings.retrain_cron(), execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.RUNNING,
             description="Retrain the newest complete data week (replay clock offline), on a "
                         "slower cadence than the hourly forecasts.")
def retrain_schedule(context: dg.ScheduleEvaluationContext):
    return retrain_run_request(context.scheduled_execution_time)
