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
