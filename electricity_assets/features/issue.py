"""The issue frame: one row per (region, issue hour, horizon) with what was known at the issue.

An issue I (top of an hour) forecasts the hours t = I + (h - 1) hours, h = 1..`HORIZON_HOURS`.
Known at I: cleaned demand with period_utc < I (the region's latest such hour with a value is
L, `data_until_utc`), weather observed before I, the weather *forecast* of the hours from I on,
and the calendar. In SQL every demand input of a row joins on an hour < I (or <= L), so rows of
`raw_demand` at or after I (a replay published ahead of the clock) never reach that issue's
features; only the target (`demand_mwh`) and the benchmark (`df_mwh`) are read at t.

Demand is cleaned by the rule of `features.demand` (trailing 60-day median, so it never looks
ahead). Demand inputs are ratios to the anchor A = demand(L), so one model fits regions from 2 GW
to 500 GW:
- the profile day: demand(t - 24k) / A, k the smallest whole number of days with t - 24k <= L,
  and the day before it; the same hour one and two weeks earlier;
- the day-on-day and week-on-week change at the anchor (A / demand(L - 24), A / demand(L - 168))
  and its last hours (A / demand(L - 1), A / demand(L - 3));
- statistics of the last 24 h and 168 h up to L, relative to A.
Baselines (not inputs): profile persistence demand(t - 24k) x A / demand(L - 24k), and
seasonal-naive demand(t - 168) (else t - 336), both known at I.

Weather (regions with stations): the region's series of `features.weather.region_weather`.
Observed at the issue: temperature at L, its mean over the last 24 h, the 1-week exponential
mean, the temperature at the profile hour t - 24k, and the anchor's change against L - 24k (the
change profile persistence carries forward). Forecast at t: temperature and dew point (and
degree hours and heat index from them), its change since L, and the mean, maximum and minimum
temperature of the 24 hours up to t (the mean also against the profile hour's). Ex-ante
(`exante=True`) the forecast is the observation plus the simulated error of
`features.forecast_error.lead_time_error`, whose size grows with the lead time; ex-post it is
the observation itself (an optimistic bound).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import duckdb
import numpy as np
import pandas as pd

from electricity_assets import storage
from electricity_assets.features import demand, weather
from electricity_assets.features.calendar import CALENDAR_SQL, holiday_flags, region_timezones
from electricity_assets.features.common import ensure_exists, to_utc, utc_hour
from electricity_assets.features.forecast_error import WeatherErrorModel, lead_time_error

HORIZON_HOURS = 48
PROFILE_LOOKBACK_HOURS = 336 + 24  # t - 336 h, and L - 24k for k up to 2 with a late anchor
# Raw demand read before the first issue: the oldest lag plus the median window that cleans it.
DEMAND_LOOKBACK = timedelta(hours=PROFILE_LOOKBACK_HOURS + 168 + demand.IMPLAUSIBLE_MEDIAN_HOURS)
WEATHER_EWM_HOURS = 168
WEATHER_LOOKBACK = timedelta(hours=WEATHER_EWM_HOURS * weather.EWM_SPAN + 48)

KEY_COLUMNS = ["region", "issue_utc", "horizon_h", "period_utc"]
BENCHMARK_COLUMNS = ["demand_mwh", "df_mwh", "naive_mwh", "persistence_mwh", "data_until_utc"]
UNIT_COLUMNS = ["last168_persistence_err"]
"""Not inputs of the trees: the unit of the short horizons' P10/P90 (`horizon_model.unit_of`)."""
DEMAND_FEATURES = [
    "horizon_h", "lead_h", "anchor_mwh",
    "profile_ratio", "profile2_ratio", "week_ratio", "week2_ratio", "persistence_ratio",
    "anchor_day_ratio", "anchor_week_ratio", "anchor_1h_ratio", "anchor_3h_ratio",
    "last24_mean_ratio", "last24_std_ratio", "last24_min_ratio", "last24_max_ratio",
    "last168_mean_ratio", "last168_std_ratio",
]
CALENDAR_FEATURES = [
    "local_hour", "hour_sin", "hour_cos", "dow_sin", "dow_cos", "doy_sin", "doy_cos",
    "is_weekend", "is_holiday", "is_bridge_day", "issue_local_hour",
    "profile_is_weekend", "profile_is_holiday", "week_is_holiday",
]
WEATHER_FEATURES = [
    "temperature_c", "dewpoint_c", "cdh", "hdh", "temp_roll24_c", "temp_profile_c",
    "temp_delta_c",
    "cdh_delta", "hdh_delta", "temp_anchor_c", "temp_last24_mean_c", "temp_ewm168_c",
    "temp_anchor_delta_c", "temp_trend_c", "temp_max24_c", "temp_min24_c",
    "temp_roll24_delta_c", "heat_index_c",
]
DF_FEATURES = ["df_ratio", "df_anchor_ratio", "df_vs_persistence", "df_vs_profile",
               "df_day_before_ratio", "df_day_before_vs_profile"]
"""EIA's DF as an input, of t, of L and of t - 24 h, each NULL unless posted at the issue
(`df_public_sql`)."""
FEATURE_COLUMNS = [*DEMAND_FEATURES, *CALENDAR_FEATURES, *WEATHER_FEATURES, *DF_FEATURES]
"""Model inputs of the issue frame (`WEATHER_FEATURES` NULL for regions without weather)."""
COLUMNS = list(dict.fromkeys([*KEY_COLUMNS, *BENCHMARK_COLUMNS, *UNIT_COLUMNS, *FEATURE_COLUMNS]))


DF_PUBLIC_TZ = "America/New_York"
DF_PUBLIC_HOUR = 11
"""EIA posts the operators' day-ahead forecast for day D at about 10:00 Eastern on D (EIA "Today
in Energy" 46117; EIA-930 data are due by 07:00 Eastern). With an hour's margin, DF of an hour is
an input only from 11:00 Eastern on the Eastern day the hour ends in: conservative for regions
west of it, whose day D ends hours later."""


def df_public_sql(period: str, issue: str) -> str:
    """SQL: true when the DF of hour-ending `period` (UTC) was posted before issue `issue`."""
    day = f"date_trunc('day', timezone('{DF_PUBLIC_TZ}', {period} - INTERVAL 1 HOUR))"
    return (f"timezone('{DF_PUBLIC_TZ}', {issue}) >= {day} + INTERVAL {DF_PUBLIC_HOUR} HOUR")


def _clean_sql() -> str:
    """CTE `clean`: per region and hour of the dense grid, cleaned D and DF (`features.demand`)."""
    flag = demand._implausible  # the one implausible-value rule, shared with demand_features
    return f"""
    raw AS (
        SELECT region, period_utc,
               max(value_mwh) FILTER (WHERE type = 'D') AS d_raw,
               max(value_mwh) FILTER (WHERE type = 'DF') AS df_raw
        FROM raw_demand
        WHERE period_utc >= $read_start AND period_utc < $read_end
          AND region IN (SELECT region FROM _issue_regions)
        GROUP BY region, period_utc
    ),
    grid AS (
        SELECT region, unnest(generate_series(min(period_utc), $read_end - INTERVAL 1 HOUR,
                                              INTERVAL 1 HOUR)) AS period_utc
        FROM raw GROUP BY region
    ),
    series AS (
        SELECT g.region, g.period_utc, r.d_raw, r.df_raw,
               median(r.d_raw) OVER w AS d_median, count(r.d_raw) OVER w AS d_count
        FROM grid g LEFT JOIN raw r USING (region, period_utc)
        WINDOW w AS (PARTITION BY g.region ORDER BY g.period_utc ROWS BETWEEN
                     {demand.IMPLAUSIBLE_MEDIAN_HOURS} PRECEDING AND 1 PRECEDING)
    ),
    clean AS MATERIALIZED (
        SELECT region, period_utc,
               CASE WHEN {flag('d_raw')} THEN NULL ELSE d_raw END AS d,
               CASE WHEN {flag('df_raw')} THEN NULL ELSE df_raw END AS df
        FROM series
    ),
    errors AS (  -- profile persistence's log error 1 h ahead, made at the hour before
        SELECT region, period_utc, d,
               abs(ln(d * lag(d, 25) OVER w / nullif(lag(d, 1) OVER w * lag(d, 24) OVER w, 0)))
                   AS err1
        FROM clean
        WINDOW w AS (PARTITION BY region ORDER BY period_utc)
    ),
    recent AS MATERIALIZED (  -- statistics of the hours up to and including period_utc
        SELECT region, period_utc, d,
               CASE WHEN count(d) OVER w24 >= 12 THEN avg(d) OVER w24 END AS m24,
               CASE WHEN count(d) OVER w24 >= 12 THEN stddev_samp(d) OVER w24 END AS s24,
               CASE WHEN count(d) OVER w24 >= 12 THEN min(d) OVER w24 END AS lo24,
               CASE WHEN count(d) OVER w24 >= 12 THEN max(d) OVER w24 END AS hi24,
               CASE WHEN count(d) OVER w168 >= 84 THEN avg(d) OVER w168 END AS m168,
               CASE WHEN count(d) OVER w168 >= 84 THEN stddev_samp(d) OVER w168 END AS s168,
               CASE WHEN count(err1) OVER w168 >= 84 THEN avg(err1) OVER w168 END AS e168
        FROM errors
        WINDOW w24 AS (PARTITION BY region ORDER BY period_utc
                       ROWS BETWEEN 23 PRECEDING AND CURRENT ROW),
               w168 AS (PARTITION BY region ORDER BY period_utc
                        ROWS BETWEEN 167 PRECEDING AND CURRENT ROW)
    )"""


def _hours(n: str) -> str:
    return f"INTERVAL ({n}) HOUR"


_SQL = f"""
WITH {_clean_sql()},
issues AS (
    SELECT r.region, i.issue_utc FROM _issue_times i CROSS JOIN _issue_regions r
),
anchored AS (  -- L: the latest hour with a cleaned demand before the issue
    SELECT i.region, i.issue_utc, c.period_utc AS data_until_utc
    FROM issues i ASOF LEFT JOIN (SELECT region, period_utc FROM clean WHERE d IS NOT NULL) c
        ON c.region = i.region AND i.issue_utc > c.period_utc
),
at_issue AS (
    SELECT a.*, s.d AS anchor_mwh, s.m24, s.s24, s.lo24, s.hi24, s.m168, s.s168, s.e168,
           d24.d AS d_l24, d168.d AS d_l168, d1.d AS d_l1, d3.d AS d_l3
    FROM anchored a
    LEFT JOIN recent s ON s.region = a.region AND s.period_utc = a.data_until_utc
    LEFT JOIN clean d24 ON d24.region = a.region
        AND d24.period_utc = a.data_until_utc - INTERVAL 24 HOUR
    LEFT JOIN clean d168 ON d168.region = a.region
        AND d168.period_utc = a.data_until_utc - INTERVAL 168 HOUR
    LEFT JOIN clean d1 ON d1.region = a.region
        AND d1.period_utc = a.data_until_utc - INTERVAL 1 HOUR
    LEFT JOIN clean d3 ON d3.region = a.region
        AND d3.period_utc = a.data_until_utc - INTERVAL 3 HOUR
),
paths AS (
    SELECT a.*, h.horizon_h, a.issue_utc + {_hours('h.horizon_h - 1')} AS period_utc,
           -- k: whole days back from t to the newest known hour (k >= 1)
           CAST(ceil(date_diff('hour', a.data_until_utc,
                                a.issue_utc + {_hours('h.horizon_h - 1')}) / 24.0) AS INTEGER)
               AS k_days,
           date_diff('hour', a.data_until_utc, a.issue_utc + {_hours('h.horizon_h - 1')})
               AS lead_h
    FROM at_issue a CROSS JOIN (SELECT unnest(range(1, $max_horizon + 1)) AS horizon_h) h
    WHERE a.data_until_utc IS NOT NULL
),
joined AS (
    SELECT r.*, target.d AS demand_mwh, target.df AS df_mwh,
           prof.d AS d_prof, prof2.d AS d_prof2, wk.d AS d_wk, wk2.d AS d_wk2,
           base.d AS d_base, dfl.df AS df_l, dfd.df AS df_d24,
           r.period_utc - {_hours('24 * r.k_days')} AS profile_utc,
           timezone(z.timezone, r.period_utc) AS lt,
           timezone(z.timezone, r.period_utc - {_hours('24 * r.k_days')}) AS lt_prof,
           timezone(z.timezone, r.period_utc - INTERVAL 168 HOUR) AS lt_wk,
           hour(timezone(z.timezone, r.issue_utc)) AS issue_local_hour
    FROM paths r
    JOIN _issue_tz z USING (region)
    LEFT JOIN clean target ON target.region = r.region AND target.period_utc = r.period_utc
    LEFT JOIN clean prof ON prof.region = r.region
        AND prof.period_utc = r.period_utc - {_hours('24 * r.k_days')}
    LEFT JOIN clean prof2 ON prof2.region = r.region
        AND prof2.period_utc = r.period_utc - {_hours('24 * (r.k_days + 1)')}
    LEFT JOIN clean wk ON wk.region = r.region
        AND wk.period_utc = r.period_utc - INTERVAL 168 HOUR AND r.lead_h <= 168
    LEFT JOIN clean wk2 ON wk2.region = r.region
        AND wk2.period_utc = r.period_utc - INTERVAL 336 HOUR AND r.lead_h <= 336
    LEFT JOIN clean base ON base.region = r.region
        AND base.period_utc = r.data_until_utc - {_hours('24 * r.k_days')}
    LEFT JOIN clean dfl ON dfl.region = r.region AND dfl.period_utc = r.data_until_utc
    LEFT JOIN clean dfd ON dfd.region = r.region
        AND dfd.period_utc = r.period_utc - INTERVAL 24 HOUR
),
published AS (  -- DF of t and of L only where EIA had posted them at the issue (df_public_sql)
    SELECT j.*,
           CASE WHEN {df_public_sql('j.period_utc', 'j.issue_utc')} THEN j.df_mwh END AS df_t,
           CASE WHEN {df_public_sql('j.data_until_utc', 'j.issue_utc')} THEN j.df_l END AS df_at_l,
           -- the operators' forecast of the same hour a day earlier: for t more than a day
           -- ahead, posted while the profile day is two days back
           CASE WHEN {df_public_sql("j.period_utc - INTERVAL 24 HOUR", 'j.issue_utc')}
                THEN j.df_d24 END AS df_t24,
           j.d_prof * j.anchor_mwh / nullif(j.d_base, 0) AS persistence
    FROM joined j
)
SELECT j.region, j.issue_utc, j.horizon_h, j.period_utc,
       j.demand_mwh, j.df_mwh, coalesce(j.d_wk, j.d_wk2) AS naive_mwh,
       j.persistence AS persistence_mwh,
       j.data_until_utc, j.profile_utc, j.e168 AS last168_persistence_err,
       CAST(j.lead_h AS INTEGER) AS lead_h, j.anchor_mwh,
       j.d_prof / j.anchor_mwh AS profile_ratio,
       j.d_prof2 / j.anchor_mwh AS profile2_ratio,
       j.d_wk / j.anchor_mwh AS week_ratio,
       j.d_wk2 / j.anchor_mwh AS week2_ratio,
       j.d_prof / nullif(j.d_base, 0) AS persistence_ratio,
       j.anchor_mwh / nullif(j.d_l24, 0) AS anchor_day_ratio,
       j.anchor_mwh / nullif(j.d_l168, 0) AS anchor_week_ratio,
       j.anchor_mwh / nullif(j.d_l1, 0) AS anchor_1h_ratio,
       j.anchor_mwh / nullif(j.d_l3, 0) AS anchor_3h_ratio,
       j.m24 / j.anchor_mwh AS last24_mean_ratio,
       j.s24 / j.anchor_mwh AS last24_std_ratio,
       j.lo24 / j.anchor_mwh AS last24_min_ratio,
       j.hi24 / j.anchor_mwh AS last24_max_ratio,
       j.m168 / j.anchor_mwh AS last168_mean_ratio,
       j.s168 / j.anchor_mwh AS last168_std_ratio,
       {CALENDAR_SQL},
       coalesce(h.is_holiday, false) AS is_holiday,
       coalesce(h.is_bridge_day, false) AS is_bridge_day, j.issue_local_hour,
       isodow(j.lt_prof) >= 6 AS profile_is_weekend,
       coalesce(hp.is_holiday, false) AS profile_is_holiday,
       coalesce(hw.is_holiday, false) AS week_is_holiday,
       j.df_t / j.anchor_mwh AS df_ratio,
       j.anchor_mwh / nullif(j.df_at_l, 0) AS df_anchor_ratio,
       -- DF's path from L to t applied to the anchor, relative to the two levels the target is
       -- a ratio to (persistence near, the profile day further out: `base_of`)
       j.df_t / nullif(j.df_at_l, 0) * j.anchor_mwh / nullif(j.persistence, 0)
           AS df_vs_persistence,
       j.df_t / nullif(j.df_at_l, 0) * j.anchor_mwh / nullif(j.d_prof, 0) AS df_vs_profile,
       j.df_t24 / j.anchor_mwh AS df_day_before_ratio,
       j.df_t24 / nullif(j.d_prof, 0) AS df_day_before_vs_profile
FROM published j
-- LEFT joins (the table covers every date): inner ones let the optimiser join the three
-- look-ups to each other on region alone, a product of millions of rows.
LEFT JOIN _issue_holidays h ON h.region = j.region AND h.local_date = CAST(j.lt AS DATE)
LEFT JOIN _issue_holidays hp ON hp.region = j.region
    AND hp.local_date = CAST(j.lt_prof AS DATE)
LEFT JOIN _issue_holidays hw ON hw.region = j.region AND hw.local_date = CAST(j.lt_wk AS DATE)
"""


def issue_times(issues: Sequence[datetime] | pd.DatetimeIndex) -> pd.DatetimeIndex:
    """`issues` as sorted, distinct, tz-aware UTC hours (naive or off-the-hour is an error)."""
    return pd.DatetimeIndex(sorted({utc_hour(i, "issue_utc") for i in issues}), tz="UTC")


def _regions(conn: duckdb.DuckDBPyConnection, regions: Sequence[str] | None) -> list[str]:
    return sorted(set(regions)) if regions is not None else storage.demand_regions(conn)


def _demand_rows(conn: duckdb.DuckDBPyConnection, times: pd.DatetimeIndex,
                 regions: list[str], max_horizon: int = HORIZON_HOURS) -> pd.DataFrame:
    first, last = times.min(), times.max()
    horizon = timedelta(hours=max_horizon)
    holidays = holiday_flags(regions, (first - timedelta(hours=PROFILE_LOOKBACK_HOURS + 48)).date(),
                             (last + horizon + timedelta(days=1)).date())
    lookups = {"_issue_times": pd.DataFrame({"issue_utc": times}),
               "_issue_regions": pd.DataFrame({"region": regions}),
               "_issue_tz": region_timezones(regions), "_issue_holidays": holidays}
    for name, frame in lookups.items():
        conn.register(name, frame)
    try:
        frame = conn.execute(_SQL, {"read_start": first - DEMAND_LOOKBACK,
                                    "read_end": last + horizon,
                                    "max_horizon": max_horizon}).df()
    finally:
        for name in lookups:
            conn.unregister(name)
    for column in ("issue_utc", "period_utc", "data_until_utc", "profile_utc"):
        frame = to_utc(frame, column)
    return frame


def _weather_series(conn: duckdb.DuckDBPyConnection, times: pd.DatetimeIndex,
                    regions: list[str], exante: bool,
                    error_model: WeatherErrorModel | None) -> pd.DataFrame:
    """Per region and hour: observed temperature / dew point, the observed trailing 24 h mean and
    1-week exponential mean, and (ex-ante) the forecast error at full size."""
    start = times.min() - WEATHER_LOOKBACK
    end = times.max() + timedelta(hours=HORIZON_HOURS)
    series = weather.region_weather(conn, start, end)
    series = series[series["region"].isin(regions)]
    parts = []
    for region, rows in series.groupby("region", sort=True):
        grid = pd.date_range(rows["period_utc"].min(), rows["period_utc"].max(), freq="h")
        w = rows.set_index("period_utc").reindex(grid)
        t = w["temperature_c"].astype(float)
        part = pd.DataFrame({
            "region": region, "period_utc": grid, "obs_t": t.to_numpy(),
            "obs_td": w["dewpoint_c"].astype(float).to_numpy(),
            "obs_t24": t.rolling(24, min_periods=12).mean().to_numpy(),
            "obs_max24": t.rolling(24, min_periods=12).max().to_numpy(),
            "obs_min24": t.rolling(24, min_periods=12).min().to_numpy(),
            "obs_ewm": weather._exp_mean(t.to_numpy(), WEATHER_EWM_HOURS),
        })
        parts.append(part)
    if not parts:
        return pd.DataFrame(columns=["region", "period_utc", "obs_t", "obs_td", "obs_t24",
                                     "obs_max24", "obs_min24", "obs_ewm", "err_t", "err_td",
                                     "err_t24"])
    frame = pd.concat(parts, ignore_index=True)
    if exante:
        errors = lead_time_error(frame[["region", "period_utc"]], error_model)
        frame = frame.merge(errors, on=["region", "period_utc"], how="left")
    else:
        frame = frame.assign(err_t=0.0, err_td=0.0)
    # The error of a 24 h mean, scaled like the hour's own (`_add_weather`): a little too large
    # for the early horizons, whose window still holds observed hours; errs wide, not narrow.
    frame["err_t24"] = frame.groupby("region")["err_t"].transform(
        lambda e: e.rolling(24, min_periods=1).mean())
    return frame


def _add_weather(rows: pd.DataFrame, series: pd.DataFrame, exante: bool,
                 error_model: WeatherErrorModel | None) -> pd.DataFrame:
    """The weather columns by region-hour look-ups: observations at hours <= L (so before the
    issue), forecasts (observation + error scaled to the lead time) at t."""
    out = rows.copy()
    if series.empty:
        for column in WEATHER_FEATURES:
            out[column] = np.nan
        return out
    indexed = series.set_index(["region", "period_utc"])

    def at(times: pd.Series, column: str) -> np.ndarray:
        keys = pd.MultiIndex.from_arrays([out["region"], times])
        return indexed[column].reindex(keys).to_numpy(dtype=float)

    scale = (lead_time_scale(out["horizon_h"].to_numpy(), error_model) if exante
             else np.zeros(len(out)))
    t_fc = at(out["period_utc"], "obs_t") + np.nan_to_num(at(out["period_utc"], "err_t")) * scale
    td_fc = at(out["period_utc"], "obs_td") + np.nan_to_num(at(out["period_utc"], "err_td")) * scale
    td_fc = np.minimum(td_fc, t_fc)
    t_prof = at(out["profile_utc"], "obs_t")
    err24 = np.nan_to_num(at(out["period_utc"], "err_t24")) * scale
    out["temp_roll24_c"] = at(out["period_utc"], "obs_t24") + err24
    base = weather.BASE_TEMPERATURE_C
    out["temperature_c"] = t_fc
    out["dewpoint_c"] = td_fc
    out["cdh"] = np.clip(t_fc - base, 0, None)
    out["hdh"] = np.clip(base - t_fc, 0, None)
    out["temp_profile_c"] = t_prof
    out["temp_delta_c"] = t_fc - t_prof
    out["cdh_delta"] = out["cdh"] - np.clip(t_prof - base, 0, None)
    out["hdh_delta"] = out["hdh"] - np.clip(base - t_prof, 0, None)
    out["temp_anchor_c"] = at(out["data_until_utc"], "obs_t")
    out["temp_last24_mean_c"] = at(out["data_until_utc"], "obs_t24")
    out["temp_ewm168_c"] = at(out["data_until_utc"], "obs_ewm")
    # Profile persistence carries the anchor's day-on-day change to t: how the weather changed
    # at the anchor (observed) against how it changes at t (forecast) tells when not to.
    base_utc = out["data_until_utc"] - (out["period_utc"] - out["profile_utc"])
    out["temp_anchor_delta_c"] = out["temp_anchor_c"] - at(base_utc, "obs_t")
    out["temp_trend_c"] = t_fc - out["temp_anchor_c"]
    out["temp_max24_c"] = at(out["period_utc"], "obs_max24") + err24
    out["temp_min24_c"] = at(out["period_utc"], "obs_min24") + err24
    out["temp_roll24_delta_c"] = out["temp_roll24_c"] - at(out["profile_utc"], "obs_t24")
    t_series = pd.Series(t_fc)
    out["heat_index_c"] = weather.heat_index_c(
        t_series, weather._magnus_rh(t_series, pd.Series(td_fc))).to_numpy()
    return out


def lead_time_scale(horizon_h: np.ndarray, model: WeatherErrorModel | None = None) -> np.ndarray:
    """Share of the full forecast error at a lead of `horizon_h` hours (0 -> 0, grows to 1)."""
    model = model or WeatherErrorModel()
    lead = np.asarray(horizon_h, dtype=float)
    return np.sqrt(1 - np.exp(-2 * lead / model.lead_growth_hours))


def issue_frame(conn: duckdb.DuckDBPyConnection, issues: Sequence[datetime] | pd.DatetimeIndex,
                regions: Sequence[str] | None = None, *, exante: bool = True,
                error_model: WeatherErrorModel | None = None,
                max_horizon: int = HORIZON_HOURS) -> pd.DataFrame:
    """One row per (region, issue_utc, horizon_h) for every issue and region (default: every
    region in `raw_demand`) with an observed demand before the issue, columns `COLUMNS`, from
    what was known at each issue (module docstring); horizons 1..`max_horizon`. Sorted by
    region, issue, horizon."""
    ensure_exists(conn, "raw_demand", "raw_weather", weather.OFFSETS_SCHEMA)
    times = issue_times(issues)
    names = _regions(conn, regions)
    if not len(times) or not names:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in COLUMNS})
    rows = _demand_rows(conn, times, names, max_horizon)
    series = _weather_series(conn, times, names, exante, error_model)
    out = _add_weather(rows, series, exante, error_model)
    out["local_hour"] = out["local_hour"].astype("int32")
    out["horizon_h"] = out["horizon_h"].astype("int32")
    return out[COLUMNS].sort_values(["region", "issue_utc", "horizon_h"], ignore_index=True)
