"""Every PartitionsDefinition, in one place.

Region is a column, not a partition dimension: 14 regions x ~100k hours would be far past the
~100k partitions Dagster advises per asset, and single-run backfills of a time range stay simple.
"""

from __future__ import annotations

import dagster as dg

HISTORY_START = "2015-07-01-05:00"  # first EIA-930 hour (UTC)

hourly_partitions = dg.HourlyPartitionsDefinition(
    start_date=HISTORY_START, timezone="UTC", end_offset=0
)

# Every hourly asset: a backfill of any range is ONE run that reads context.partition_time_window.
HOURLY_WINDOWED = {
    "partitions_def": hourly_partitions,
    "backfill_policy": dg.BackfillPolicy.single_run(),
}

# Model retraining: one partition per week of DATA time (Sunday 00:00 UTC). Partition W trains on
# everything before W's end, so a backfill of weeks rebuilds the model history a data clock saw,
# and offline the replay clock (not the wall clock) decides which week is due.
weekly_partitions = dg.WeeklyPartitionsDefinition(start_date="2015-07-05", timezone="UTC")

# The day-ahead product: one partition per day D (each region's local day D), issued on D-1.
day_ahead_partitions = dg.DailyPartitionsDefinition(start_date="2015-07-03", timezone="UTC")
