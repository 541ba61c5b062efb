"""The one rule for what a raw row may hold, shared by the Kafka path and the bundled/API path.

A value is rejected (a dead letter when streamed, a rejected row when loaded from a source) only
when it cannot be a reading at all: not a finite number, or outside hard bounds no region or
weather station reaches. Anything inside them is kept as published - negative day-ahead
forecasts, zero demand, 20x spikes - and flagged by the raw assets' `implausible_values` check
(`quality.IMPLAUSIBLE_RULES`), never dropped.

An hour is plausible from the first hourly partition up to `MAX_AHEAD` past the data clock's
"now" (`replay_clock.current_time()`): a message about 2999-01-01 or 0001-01-01 is a dead letter
instead of a run over 100,000 partitions.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta

import pandas as pd

from electricity_assets.datasets import Dataset
from electricity_assets.history import HISTORY_START

MAX_DEMAND_MWH = 2_000_000.0  # US48 peaks near 750,000 MWh in an hour

# column -> (lowest, highest) value a reading can have; both inclusive.
VALUE_BOUNDS: dict[str, tuple[float, float]] = {
    "value_mwh": (-MAX_DEMAND_MWH, MAX_DEMAND_MWH),
    "temperature_c": (-90.0, 65.0),
    "dewpoint_c": (-90.0, 65.0),  # never above the temperature
    "relative_humidity": (0.0, 100.0),
    "wind_speed_kmh": (0.0, 500.0),
    "precipitation_mm": (0.0, 500.0),
}

# Day-ahead forecasts are 1-2 days ahead; offline, the bundled history holds 7 more days after
# the replay clock's default start, which `electricity-replay` may publish at once.
MAX_AHEAD = timedelta(days=8)


def latest_plausible_hour(now: datetime) -> datetime:
    """The last hour a message may be about when the data clock shows `now`."""
    return pd.Timestamp(now + MAX_AHEAD).tz_convert("UTC").floor("h").to_pydatetime()


def hour_reason(hour: datetime, latest: datetime) -> str | None:
    """Why `hour` cannot be ingested, or None when it is plausible."""
    if hour < HISTORY_START:
        return (f"implausible period_utc: before the first hourly partition "
                f"{HISTORY_START:%Y-%m-%dT%H:%MZ}")
    if hour > latest:
        return (f"implausible period_utc: more than {MAX_AHEAD.days} days after the data "
                f"clock's now (latest plausible hour {latest:%Y-%m-%dT%H:%MZ})")
    return None


def value_reason(column: str, value: float | None) -> str | None:
    """Why `value` cannot be a reading of `column`, or None (missing values are the caller's)."""
    if value is None or column not in VALUE_BOUNDS:
        return None
    low, high = VALUE_BOUNDS[column]
    if not math.isfinite(value):
        return f"implausible value: {column} is not finite"
    if not low <= value <= high:
        return f"implausible value: {column} outside [{low:,.0f}, {high:,.0f}]"
    return None


def split_implausible(dataset: Dataset, rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows whose values pass `VALUE_BOUNDS`, rejected rows as `payload, reason`)."""
    bad = pd.Series(False, index=rows.index)
    for column in dataset.value_columns:
        low, high = VALUE_BOUNDS[column]
        values = pd.to_numeric(rows[column], errors="coerce").astype("float64")
        bad |= values.notna() & ~values.between(low, high)  # +-inf are outside too
    if not bad.any():
        return rows, pd.DataFrame(columns=["payload", "reason"])
    rejected = rows.loc[bad]
    reasons = ["; ".join(r for c in dataset.value_columns
                         if (r := value_reason(c, None if pd.isna(record[c]) else
                                               float(record[c]))))
               for record in rejected.to_dict("records")]
    payloads = rejected.astype(str).to_dict("records")
    return rows.loc[~bad].reset_index(drop=True), pd.DataFrame(
        {"payload": [json.dumps(p) for p in payloads], "reason": reasons})
