"""Demand features for 24-hour-ahead forecasting, computed in DuckDB SQL from `raw_demand`.

One row per (region, period_utc) on the hourly grid of every region in `raw_demand` (never a fixed
list), from the region's first observation to 24 h after its last one (the hours a 24-hour-ahead
forecast can still be made for). Missing hours get a row with `demand_mwh` NULL.

Implausible-value rule (trailing, so it never looks ahead): a reported D is implausible when
    D <= 0, or D < 0.2 x M, or D > 3 x M,
where M is the median of the region's raw D over the 1,440 hours (60 days) before it, given at
least 168 values (otherwise only D <= 0 applies). Sixty days because glitches come in runs: SE
reported ~1/50-scale values for most of August 2015, which a one-week median would adopt as
normal within days. The ratios are wide on purpose: real load stays within about 0.5-1.8 x M
(summer peaks in SW reach 2.5 x a spring median; FLA during hurricane Irma fell to ~0.25 x and is
kept), while the glitches sit far outside (MIDA 53 MWh against ~88,700; TEN zeros). On the bundled
history it flags SE 1,191 h, TEN 32, CAL 2, MIDA 2. Known miss: CAL 2019-12-20 00-02Z (~0.21 x M).
The same bounds on the same M null EIA's DF. Flagged hours stay in `raw_demand`; here
`demand_mwh` is NULL and `is_implausible` true, so they are neither targets nor lag inputs.

No leakage: every demand-derived feature for hour t uses cleaned demand at or before t-24h only.
Lags join on `period_utc - INTERVAL n HOUR` (a missing hour gives NULL, never a shifted value).
Rolling mean/std/min/max cover t-47h..t-24h and t-191h..t-24h; they are ROWS frames over the
dense per-region hourly grid (one row per hour, NULL where missing - so rows are hours, and much
faster than RANGE on TIMESTAMPTZ) and need at least half of their hours, else NULL.
Calendar features describe the hour label as EIA publishes it (hour-ending) in the region's
local time (`regions.get_region(code).timezone`, DST-correct); holidays from `holidays`
(US federal + the region's `holiday_subdiv`) by that local date. `*_24h_ago` / `*_168h_ago`
flag the day type of the local date 24 h / 168 h earlier (the days the lags come from); the
calendar is known ahead, so they never leak.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb
import pandas as pd

from electricity_assets import storage
from electricity_assets.features.calendar import CALENDAR_SQL, holiday_flags, region_timezones
from electricity_assets.features.common import ensure_exists, to_utc, utc_hour

TABLE = "demand_features"

LAG_HOURS = (24, 48, 72, 168, 336)
ROLL_WINDOWS = {24: 12, 168: 84}  # window hours -> minimum valid hours, else NULL
ROLL_STATS = {"mean": "avg", "std": "stddev_samp", "min": "min", "max": "max"}
IMPLAUSIBLE_LOW = 0.2
IMPLAUSIBLE_HIGH = 3.0
IMPLAUSIBLE_MEDIAN_HOURS = 1440  # 60 days: outlasts the multi-week SE glitch runs
IMPLAUSIBLE_MIN_VALUES = 168
FORECAST_HORIZON_HOURS = 24
# Raw history read before `start`: the longest lag, plus the median window that cleans it.
LOOKBACK = timedelta(hours=max(LAG_HOURS) + max(ROLL_WINDOWS) + IMPLAUSIBLE_MEDIAN_HOURS)

LAG_COLUMNS = [f"lag_{h}h" for h in LAG_HOURS]
ROLL_COLUMNS = [f"roll{w}_{s}" for w in ROLL_WINDOWS for s in ROLL_STATS]
CALENDAR_COLUMNS = [
    "local_hour", "hour_sin", "hour_cos", "dow_sin", "dow_cos", "doy_sin", "doy_cos",
    "is_weekend", "is_holiday", "is_federal_holiday", "is_bridge_day",
]
# The day type of the hours the demand lags come from: the model predicts demand relative to
# the level 24 h earlier, so a holiday (or bridge day) yesterday or a week ago moves that ratio
# as much as a holiday today. Four 4-week windows, with the weather deltas
# (`features.weather.DELTA_COLUMNS`): mean median APE 2.71 -> 2.65 %.
LAG_DAY_HOURS = (24, 168)
LAG_DAY_COLUMNS = [f"{flag}_{h}h_ago" for h in LAG_DAY_HOURS
                   for flag in ("is_weekend", "is_holiday", "is_bridge_day")]
FEATURE_COLUMNS: list[str] = LAG_COLUMNS + ROLL_COLUMNS + CALENDAR_COLUMNS + LAG_DAY_COLUMNS
"""Model inputs from this table (calendar + demand history). `df_mwh` is EIA's own forecast: a
benchmark, deliberately not an input."""

COLUMNS: dict[str, str] = {
    "region": "VARCHAR NOT NULL",
    "period_utc": "TIMESTAMPTZ NOT NULL",
    "demand_mwh": "DOUBLE",        # cleaned D: NULL when missing or implausible (the target)
    "df_mwh": "DOUBLE",            # EIA day-ahead forecast, NULL when implausible
    "is_implausible": "BOOLEAN NOT NULL",
    **{c: "DOUBLE" for c in LAG_COLUMNS + ROLL_COLUMNS},
    "local_hour": "INTEGER NOT NULL",
    **{c: "DOUBLE NOT NULL" for c in CALENDAR_COLUMNS[1:7]},
    **{c: "BOOLEAN NOT NULL" for c in CALENDAR_COLUMNS[7:]},
    # Nullable: a table from before these columns gains them (NULL until re-materialised).
    **{c: "BOOLEAN" for c in LAG_DAY_COLUMNS},
}
SCHEMA = storage.Table(TABLE, storage.columns(COLUMNS, {
    "demand_mwh": "cleaned D: NULL when missing or implausible (the target)",
    "df_mwh": "EIA day-ahead forecast, NULL when implausible",
}))


def _roll_select() -> str:
    parts = []
    for hours, min_valid in ROLL_WINDOWS.items():
        for stat, fn in ROLL_STATS.items():
            parts.append(
                f"CASE WHEN count(demand_mwh) OVER r{hours} >= {min_valid} "
                f"THEN {fn}(demand_mwh) OVER r{hours} END AS roll{hours}_{stat}"
            )
    return ",\n            ".join(parts)


def _roll_windows() -> str:
    return ",\n        ".join(
        f"r{h} AS (PARTITION BY region ORDER BY period_utc ROWS BETWEEN "
        f"{h + FORECAST_HORIZON_HOURS - 1} PRECEDING AND {FORECAST_HORIZON_HOURS} PRECEDING)"
        for h in ROLL_WINDOWS
    )


def _implausible(column: str) -> str:
    return (
        f"({column} IS NOT NULL AND ({column} <= 0 OR (d_count >= {IMPLAUSIBLE_MIN_VALUES} AND "
        f"({column} < {IMPLAUSIBLE_LOW} * d_median OR {column} > {IMPLAUSIBLE_HIGH} * d_median))))"
    )


_SQL = f"""
WITH bounds AS (
    SELECT region, min(period_utc) AS first_obs,
           max(period_utc) + INTERVAL {FORECAST_HORIZON_HOURS + 1} HOUR AS grid_end
    FROM raw_demand GROUP BY region
),
grid AS (
    SELECT region, unnest(generate_series(
        greatest($read_start, first_obs), least($end, grid_end) - INTERVAL 1 HOUR,
        INTERVAL 1 HOUR)) AS period_utc
    FROM bounds WHERE greatest($read_start, first_obs) < least($end, grid_end)
),
raw AS (
    SELECT region, period_utc,
           max(value_mwh) FILTER (WHERE type = 'D') AS d_raw,
           max(value_mwh) FILTER (WHERE type = 'DF') AS df_raw
    FROM raw_demand WHERE period_utc >= $read_start AND period_utc < $end
    GROUP BY region, period_utc
),
series AS (
    SELECT g.region, g.period_utc, r.d_raw, r.df_raw,
           median(r.d_raw) OVER w_trailing AS d_median,
           count(r.d_raw) OVER w_trailing AS d_count
    FROM grid g LEFT JOIN raw r USING (region, period_utc)
    WINDOW w_trailing AS (PARTITION BY g.region ORDER BY g.period_utc ROWS BETWEEN
        {IMPLAUSIBLE_MEDIAN_HOURS} PRECEDING AND 1 PRECEDING)
),
clean AS MATERIALIZED (
    SELECT region, period_utc,
           CASE WHEN {_implausible('d_raw')} THEN NULL ELSE d_raw END AS demand_mwh,
           CASE WHEN {_implausible('df_raw')} THEN NULL ELSE df_raw END AS df_mwh,
           {_implausible('d_raw')} AS is_implausible
    FROM series
),
rolled AS (
    SELECT region, period_utc, demand_mwh, df_mwh, is_implausible,
           {_roll_select()}
    FROM clean
    WINDOW {_roll_windows()}
),
localised AS (
    SELECT r.*, timezone(z.timezone, r.period_utc) AS lt,
           {", ".join(f"timezone(z.timezone, r.period_utc - INTERVAL {h} HOUR) AS lt{h}"
                      for h in LAG_DAY_HOURS)}
    FROM rolled r JOIN _features_tz z USING (region)
    WHERE r.period_utc >= $start
)
SELECT l.region, l.period_utc, l.demand_mwh, l.df_mwh, l.is_implausible,
       {", ".join(f"lag{h}.demand_mwh AS lag_{h}h" for h in LAG_HOURS)},
       {", ".join(ROLL_COLUMNS)},
       {CALENDAR_SQL},
       h.is_holiday, h.is_federal_holiday, h.is_bridge_day,
       {", ".join(f"isodow(l.lt{h}) >= 6 AS is_weekend_{h}h_ago, "
                  f"h{h}.is_holiday AS is_holiday_{h}h_ago, "
                  f"h{h}.is_bridge_day AS is_bridge_day_{h}h_ago" for h in LAG_DAY_HOURS)}
FROM localised l
{" ".join(
    f"LEFT JOIN clean lag{h} ON lag{h}.region = l.region "
    f"AND lag{h}.period_utc = l.period_utc - INTERVAL {h} HOUR"
    for h in LAG_HOURS
)}
JOIN _features_holidays h ON h.region = l.region AND h.local_date = CAST(l.lt AS DATE)
{" ".join(
    f"JOIN _features_holidays h{h} ON h{h}.region = l.region "
    f"AND h{h}.local_date = CAST(l.lt{h} AS DATE)"
    for h in LAG_DAY_HOURS
)}
ORDER BY l.region, l.period_utc
"""


def compute_demand_features(conn: duckdb.DuckDBPyConnection, start: datetime,
                            end: datetime) -> pd.DataFrame:
    """Demand + calendar features for start <= period_utc < end (columns: `COLUMNS`)."""
    start_ts, end_ts = utc_hour(start, "start"), utc_hour(end, "end")
    ensure_exists(conn, "raw_demand")
    bounds = conn.execute(
        "SELECT region, min(period_utc), max(period_utc) FROM raw_demand GROUP BY region"
    ).fetchall()
    if not bounds or start_ts >= end_ts:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in COLUMNS})
    regions = [b[0] for b in bounds]
    # Holiday flags by local date for the hours the grid can contain (a day of slack for tz).
    first = max(start_ts, pd.Timestamp(min(b[1] for b in bounds)).tz_convert("UTC"))
    last = min(end_ts, pd.Timestamp(max(b[2] for b in bounds)).tz_convert("UTC")
               + timedelta(hours=FORECAST_HORIZON_HOURS + 1))
    if first >= last:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in COLUMNS})
    holidays = holiday_flags(regions, (first - timedelta(hours=max(LAG_DAY_HOURS), days=1)).date(),
                             (last + timedelta(days=1)).date())
    conn.register("_features_tz", region_timezones(regions))
    conn.register("_features_holidays", holidays)
    try:
        frame = conn.execute(_SQL, {
            "read_start": start_ts - LOOKBACK, "start": start_ts, "end": end_ts,
        }).df()
    finally:
        conn.unregister("_features_tz")
        conn.unregister("_features_holidays")
    frame["local_hour"] = frame["local_hour"].astype("int32")
    return to_utc(frame)[list(COLUMNS)]


def implausible_counts(conn: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Per region in `demand_features`: hours with a reported D, hours flagged implausible."""
    ensure_exists(conn, SCHEMA)
    return conn.execute(f"""
        SELECT region,
               count(*) FILTER (WHERE demand_mwh IS NOT NULL OR is_implausible) AS reported_hours,
               count(*) FILTER (WHERE is_implausible) AS implausible_hours
        FROM {TABLE} GROUP BY region ORDER BY region
    """).df()
