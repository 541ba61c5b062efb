"""Every PartitionsDefinition, in one place.

Region is a column, not a partition dimension: 14 regions x ~100k hours would be far past the
~100k partitions Dagster advises per asset, and single-run backfills of a time range stay simple.

Offline (the replay, `settings.source_mode() == "bundled"`) the partitions end where the replayed
history does (its last demand hour, read when the code location loads), not at the wall clock
years later: "Materialize all" targets the data, not tens of thousands of empty hours. Live (api
mode) they run to the wall clock.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import NamedTuple

import dagster as dg
import pandas as pd

from electricity_assets import settings
from electricity_assets.features.issue import HORIZON_HOURS
from electricity_assets.history import HISTORY_START, replay_data_end

logger = logging.getLogger(__name__)

WEEKLY_START = "2015-07-05"  # the first Sunday of the history
DAILY_START = "2015-07-03"  # the first day with a day-ahead issue (D-1 09:00 local) in the data


class Partitions(NamedTuple):
    hourly: dg.HourlyPartitionsDefinition
    weekly: dg.WeeklyPartitionsDefinition
    daily: dg.DailyPartitionsDefinition


def partitions_ending_at(last_data_hour: datetime | None) -> Partitions:
    """The partitions definitions when the data ends with `last_data_hour` (None: it does not
    end, live; partitions run to the wall clock)."""
    if last_data_hour is None:
        return Partitions(
            dg.HourlyPartitionsDefinition(start_date=HISTORY_START, timezone="UTC", end_offset=0),
            dg.WeeklyPartitionsDefinition(start_date=WEEKLY_START, timezone="UTC"),
            dg.DailyPartitionsDefinition(start_date=DAILY_START, timezone="UTC"))
    last = pd.Timestamp(last_data_hour).tz_convert("UTC").floor("h").to_pydatetime()
    issued = last + timedelta(hours=1)  # the last issue: every hour of data is in
    last_day = pd.Timestamp(issued + timedelta(hours=HORIZON_HOURS - 1)).floor("D")
    return Partitions(
        # The last hour is the last issue's: partition K is issued when hour K is complete.
        dg.HourlyPartitionsDefinition(start_date=HISTORY_START, timezone="UTC",
                                      end_date=issued + timedelta(hours=1)),
        # Up to the week holding the last issue: its model trains on all of the data.
        dg.WeeklyPartitionsDefinition(start_date=WEEKLY_START, timezone="UTC",
                                      end_date=issued + timedelta(days=7)),
        # Days the last issue's 48 hours reach.
        dg.DailyPartitionsDefinition(start_date=DAILY_START, timezone="UTC",
                                     end_date=(last_day + pd.Timedelta(days=1)).to_pydatetime()))


def last_data_hour() -> datetime | None:
    """The replayed history's last demand hour offline; None live (api mode)."""
    if settings.source_mode() != "bundled":
        return None
    try:
        return replay_data_end()
    except (OSError, RuntimeError, ValueError) as exc:  # BundledDataError: a RuntimeError
        # The raw assets fail with what to do; the code location must still load.
        logger.warning("replay data unreadable (%s): partitions run to the wall clock", exc)
        return None


hourly_partitions, weekly_partitions, day_ahead_partitions = partitions_ending_at(
    last_data_hour())

# Every hourly asset: a backfill of any range is ONE run that reads context.partition_time_window.
HOURLY_WINDOWED = {
    "partitions_def": hourly_partitions,
    "backfill_policy": dg.BackfillPolicy.single_run(),
}

# Model retraining (`weekly_partitions`): one partition per week of DATA time (Sunday 00:00 UTC).
# Partition W trains on everything before W's end, so a backfill of weeks rebuilds the model
# history a data clock saw, and offline the replay clock (not the wall clock) decides which week
# is due. The day-ahead product (`day_ahead_partitions`): one partition per day D (each region's
# local day D), issued on D-1.
