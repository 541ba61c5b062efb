"""Weather features: a region's hourly weather derived from its stations, then recency features.

**Region weather** (`region_weather`, DuckDB SQL over `raw_weather`). Raw rows are per station (a
NOAA airport station or an Open-Meteo point). A region's weather at hour t is the mean over its
catalogue stations (`regions.py`; rows of stations in no catalogue entry count for the region they
were filed under) of each station's value plus the station's offset: the mean difference between
the region's reference series and that station, per UTC month (else over all months), fitted on
hours before a cut-off (`weather_station_offsets`). The reference series is the mean of the
stations of the region's main source (the source with the most rows before the cut-off). So a
station that reports only part of the time - a second source over later years (CAL: Los Angeles
station to 2022, Open-Meteo San Jose from 2020), or one of five stations missing an hour - moves
the region's series only by weather, never by its own climate: no silent step where the mix of
stations changes. A station without enough overlap with the reference (168 hours) is left out of
that variable (so a variable only a later source has, e.g. wind, stays NULL throughout instead of
appearing mid-history); before any fit for the region, the plain mean is used.
`weather_stations` and `weather_source` say which stations and sources made each hour. Values
outside physical bounds (the raw checks flag them) are ignored; a missing dew point is derived
from temperature and humidity and vice versa (Magnus formula).

**Features** (`weather_feature_frame`, pandas, also used by the backtest on weather with simulated
forecast error): the region's values at t, heating/cooling degree hours (18 C base) and their
products with the local hour's sin/cos (heating and cooling load depend on the time of day), NWS
heat index, temperature lags 1-72 h, trailing 24 h mean/max/min, trailing 72 h / 168 h means and
exponentially weighted means with time constants of 1 day, 1 week and 1 month (the "recency
effect"): each is a fixed trailing kernel of 3 time constants (at most 90 days), so the same hour
gets the same value whatever window is materialised. Day-on-day changes (`DELTA_COLUMNS`: the
temperature, degree hours and 24 h mean against 24 h earlier) say directly how the weather moves
the ratio of demand to its level 24 h earlier, which the model predicts.

**Normalisation** (no leakage): z-scores use per-region mean / std of the derived series before
a cut-off (`weather_normalisation`), fitted together with the station offsets by
`fit_weather_statistics` (fit), which the `weather_statistics` asset stores; the features read
the stored ones (transform). Its default cut-off is the latest demand hour minus 8 weeks, so the
weeks that validation scores never inform them (the backtest refits the z-scores per window:
`refit_z_scores`). Nothing here writes to DuckDB.

Weather at hour t is an input for t: in replay the observation (an ex-post stand-in for a
forecast; the backtest also scores it with simulated forecast error), live the Open-Meteo forecast.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import duckdb
import numpy as np
import pandas as pd

from electricity_assets import storage
from electricity_assets.features.common import ensure_exists, to_utc, utc_hour
from electricity_assets.quality import WEATHER_BOUNDS as BOUNDS  # outside: ignored here
from electricity_assets.regions import get_region, station_regions

TABLE = "weather_features"
NORMALISATION_TABLE = "weather_normalisation"
OFFSETS_TABLE = "weather_station_offsets"

BASE_TEMPERATURE_C = 18.0
NORMALISATION_HOLDOUT = timedelta(weeks=8)
NORMALISATION_MIN_ROWS = 168
OFFSET_MIN_HOURS = 168
TEMP_LAG_HOURS = (1, 2, 3, 6, 12, 24, 48, 72)
TEMP_ROLL_HOURS = (24, 72, 168)
EWM_HOURS = (24, 168, 720)  # time constants: a day, a week, a month
EWM_SPAN = 3  # kernel length in time constants (weight left out: e^-3 = 5 %)
LOOKBACK = timedelta(hours=max(EWM_HOURS) * EWM_SPAN)

MEASURED = ("temperature_c", "dewpoint_c", "relative_humidity", "wind_speed_kmh",
            "precipitation_mm")
Z_COLUMNS = {  # measured column -> z-score column
    "temperature_c": "temperature_z",
    "dewpoint_c": "dewpoint_z",
    "relative_humidity": "relative_humidity_z",
    "wind_speed_kmh": "wind_speed_z",
    "precipitation_mm": "precipitation_z",
}
DERIVED = ["hdh", "cdh", "heat_index_c", "hdh_hour_sin", "hdh_hour_cos", "cdh_hour_sin",
           "cdh_hour_cos"]
TEMP_COLUMNS = [
    *(f"temp_lag_{h}h" for h in TEMP_LAG_HOURS),
    *(f"temp_roll{h}_mean" for h in TEMP_ROLL_HOURS),
    "temp_roll24_max", "temp_roll24_min", "dewpoint_roll24_mean",
    *(f"temp_ewm_{h}h" for h in EWM_HOURS),
]
# The model predicts demand relative to demand 24 h earlier, so how much warmer or colder hour t
# is than 24 h before explains that ratio in one split. Four 4-week windows, with the lag-day
# flags (`features.demand.LAG_DAY_COLUMNS`): mean median APE 2.71 -> 2.65 %.
DELTA_COLUMNS = ["temp_delta_24h", "cdh_delta_24h", "hdh_delta_24h", "temp_roll24_delta_24h"]
WEATHER_FEATURE_COLUMNS: list[str] = [*MEASURED, *DERIVED, *TEMP_COLUMNS, *DELTA_COLUMNS,
                                      *Z_COLUMNS.values()]
"""Model inputs from this table; all NULL for regions without weather."""
OBSERVED_AT_ISSUE = [f"temp_lag_{h}h" for h in TEMP_LAG_HOURS if h >= 24]
"""Inputs known when a 24-hour-ahead forecast is issued (observations, never forecasts)."""

COLUMNS: dict[str, str] = {
    "region": "VARCHAR NOT NULL",
    "period_utc": "TIMESTAMPTZ NOT NULL",
    **{c: "DOUBLE" for c in WEATHER_FEATURE_COLUMNS},
    "weather_stations": "INTEGER",  # stations averaged for the hour (not a model input)
    "weather_source": "VARCHAR",    # their sources, e.g. noaa_lcd+open_meteo
}
SCHEMA = storage.Table(TABLE, storage.columns(COLUMNS, {
    "weather_stations": "stations averaged for the hour (not a model input)",
    "weather_source": "their sources, e.g. noaa_lcd+open_meteo (not a model input)"}))
NORMALISATION_SCHEMA = storage.Table(NORMALISATION_TABLE, storage.columns({
    "region": "VARCHAR NOT NULL",
    "variable": "VARCHAR NOT NULL",
    "mean": "DOUBLE NOT NULL",
    "std": "DOUBLE NOT NULL",
    "n_rows": "BIGINT NOT NULL",
    "cutoff_utc": "TIMESTAMPTZ NOT NULL",
    "fitted_at": "TIMESTAMPTZ NOT NULL",
}, {"variable": "a raw_weather column, e.g. temperature_c",
    "cutoff_utc": "statistics use hours with period_utc < cutoff_utc"}), ("region", "variable"))
OFFSETS_SCHEMA = storage.Table(OFFSETS_TABLE, storage.columns({
    "region": "VARCHAR NOT NULL",
    "station": "VARCHAR NOT NULL",
    "variable": "VARCHAR NOT NULL",
    "month": "INTEGER NOT NULL",
    '"offset"': "DOUBLE NOT NULL",
    "n_hours": "BIGINT NOT NULL",
    "cutoff_utc": "TIMESTAMPTZ NOT NULL",
}, {"month": "UTC month 1-12, 0 = all months",
    '"offset"': "reference series minus station, mean over n_hours"}),
    ("region", "station", "variable", "month"))

_A, _B = 17.625, 243.04  # Magnus coefficients (C)
_TD_FROM_RH = (f"({_B} * (ln(rh / 100) + {_A} * t / ({_B} + t)) "
               f"/ ({_A} - ln(rh / 100) - {_A} * t / ({_B} + t)))")
_RH_FROM_TD = f"least(100, 100 * exp({_A} * td / ({_B} + td) - {_A} * t / ({_B} + t)))"


def _bounded(column: str) -> str:
    low, high = BOUNDS[column]
    return f"CASE WHEN {column} BETWEEN {low} AND {high} THEN {column} END"


def _long_sql(where: str) -> str:
    """CTEs `assigned` (raw rows under every region they belong to) and `long` (one row per
    region, station, hour and variable; NULLs dropped)."""
    return f"""
    cleaned AS (
        SELECT region, station, period_utc, source,
               {_bounded('temperature_c')} AS t, {_bounded('dewpoint_c')} AS td0,
               CASE WHEN relative_humidity > 0 AND relative_humidity <= 100
                    THEN relative_humidity END AS rh0,
               {_bounded('wind_speed_kmh')} AS wind_speed_kmh,
               {_bounded('precipitation_mm')} AS precipitation_mm
        FROM raw_weather WHERE {where}
    ),
    filled AS (
        SELECT region, station, period_utc, source, t AS temperature_c,
               coalesce(td0, (SELECT {_TD_FROM_RH} FROM (SELECT rh0 AS rh))) AS dewpoint_c,
               coalesce(rh0, (SELECT {_RH_FROM_TD} FROM (SELECT td0 AS td))) AS relative_humidity,
               wind_speed_kmh, precipitation_mm
        FROM cleaned
    ),
    assigned AS (
        SELECT m.region, f.* EXCLUDE (region) FROM filled f JOIN _weather_members m USING (station)
        UNION ALL
        SELECT f.* FROM filled f ANTI JOIN _weather_members m USING (station)
    ),
    long AS (
        UNPIVOT assigned ON {", ".join(MEASURED)} INTO NAME variable VALUE value
    )"""


def _register_members(conn: duckdb.DuckDBPyConnection) -> None:
    members = [(region, station) for station, regions in station_regions().items()
               for region in regions]
    conn.register("_weather_members", pd.DataFrame(members, columns=["region", "station"]))


def region_weather(conn: duckdb.DuckDBPyConnection, start: datetime, end: datetime,
                   offsets: pd.DataFrame | None = None) -> pd.DataFrame:
    """Each region's hourly weather (MEASURED + weather_stations, weather_source) derived from
    its stations for start <= period_utc < end; one row per region and hour with any value.
    `offsets`: station offsets (`fit_station_offsets` rows); None: the stored ones."""
    ensure_exists(conn, "raw_weather")
    _register_members(conn)
    if offsets is None:
        offsets = station_offsets(conn)
    conn.register("_weather_offsets", offsets)
    # Summed in station order: DuckDB otherwise sums in parallel in no fixed order, and a
    # last-bit difference in a mean can move a LightGBM split, so two runs on the same data
    # would train different trees.
    values = ", ".join(
        f"avg(value ORDER BY station) FILTER (WHERE variable = '{c}' AND used) AS {c}"
        for c in MEASURED)
    frame = conn.execute(f"""
        WITH {_long_sql("period_utc >= $start AND period_utc < $end")},
        fitted AS (SELECT DISTINCT region FROM _weather_offsets),
        adjusted AS (
            SELECT l.region, l.station, l.period_utc, l.source, l.variable,
                   l.value + coalesce(om."offset", oa."offset", 0) AS value,
                   om."offset" IS NOT NULL OR oa."offset" IS NOT NULL OR f.region IS NULL AS used
            FROM long l
            LEFT JOIN _weather_offsets om ON om.region = l.region AND om.station = l.station
                AND om.variable = l.variable AND om.month = month(timezone('UTC', l.period_utc))
            LEFT JOIN _weather_offsets oa ON oa.region = l.region AND oa.station = l.station
                AND oa.variable = l.variable AND oa.month = 0
            LEFT JOIN fitted f ON f.region = l.region
        )
        SELECT region, period_utc, {values},
               CAST(count(DISTINCT station) FILTER (WHERE used) AS INTEGER) AS weather_stations,
               string_agg(DISTINCT source, '+' ORDER BY source) FILTER (WHERE used)
                   AS weather_source
        FROM adjusted GROUP BY region, period_utc
        HAVING count(*) FILTER (WHERE used) > 0
        ORDER BY region, period_utc
    """, {"start": utc_hour(start, "start"), "end": utc_hour(end, "end")}).df()
    conn.unregister("_weather_offsets")
    return to_utc(frame)


def fit_station_offsets(conn: duckdb.DuckDBPyConnection, cutoff: datetime) -> pd.DataFrame:
    """Per (region, station, variable, month): mean of reference minus station before `cutoff`."""
    _register_members(conn)
    frame = conn.execute(f"""
        WITH {_long_sql("period_utc < $cutoff")},
        by_source AS (SELECT region, station, source, count(*) AS n FROM long GROUP BY ALL),
        main_source AS (
            SELECT region, arg_max(source, n) AS source
            FROM (SELECT region, source, sum(n) AS n FROM by_source GROUP BY ALL) GROUP BY region
        ),
        main_stations AS (
            SELECT s.region, s.station
            FROM (SELECT region, station, arg_max(source, n) AS source FROM by_source
                  GROUP BY ALL) s
            JOIN main_source m ON m.region = s.region AND m.source = s.source
        ),
        reference AS (
            SELECT l.region, l.period_utc, l.variable, avg(l.value ORDER BY l.station) AS ref
            FROM long l SEMI JOIN main_stations m ON m.region = l.region AND m.station = l.station
            GROUP BY ALL
        ),
        diff AS (
            SELECT l.region, l.station, l.variable, month(timezone('UTC', l.period_utc)) AS month,
                   l.period_utc, r.ref - l.value AS d
            FROM long l JOIN reference r USING (region, period_utc, variable)
        )
        SELECT region, station, variable, month, avg(d ORDER BY period_utc) AS "offset",
               count(*) AS n_hours
        FROM diff GROUP BY ALL HAVING count(*) >= {OFFSET_MIN_HOURS}
        UNION ALL
        SELECT region, station, variable, 0 AS month, avg(d ORDER BY period_utc), count(*)
        FROM diff GROUP BY region, station, variable HAVING count(*) >= {OFFSET_MIN_HOURS}
        ORDER BY ALL
    """, {"cutoff": cutoff}).df()
    frame["cutoff_utc"] = pd.Timestamp(cutoff).tz_convert("UTC")
    return frame


# NWS heat index (Rothfusz regression) in Celsius; below 80 F (26.7 C), where the index is not
# defined, it is the air temperature itself.
def heat_index_c(temperature_c: pd.Series, relative_humidity: pd.Series) -> pd.Series:
    tf = temperature_c * 1.8 + 32
    rh = relative_humidity
    index_f = (-42.379 + 2.04901523 * tf + 10.14333127 * rh - 0.22475541 * tf * rh
               - 0.00683783 * tf * tf - 0.05481717 * rh * rh + 0.00122874 * tf * tf * rh
               + 0.00085282 * tf * rh * rh - 0.00000199 * tf * tf * rh * rh)
    hot = (tf >= 80) & rh.notna()
    return temperature_c.where(~hot, (index_f - 32) / 1.8)


def _exp_mean(values: np.ndarray, tau: int) -> np.ndarray:
    """Trailing exponentially weighted mean with time constant `tau` hours over a fixed kernel
    of EWM_SPAN * tau hours, skipping missing hours (NaN where fewer than tau/2 are present)."""
    length = EWM_SPAN * tau
    kernel = np.exp(-np.arange(length) / tau)
    present = ~np.isnan(values)
    weighted = np.convolve(np.where(present, values, 0.0), kernel)[: len(values)]
    weights = np.convolve(present.astype(float), kernel)[: len(values)]
    counts = np.convolve(present.astype(float), np.ones(length))[: len(values)]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts >= tau / 2, weighted / weights, np.nan)


def _one_region(rows: pd.DataFrame, region: str) -> pd.DataFrame:
    """Features of one region's hourly weather on its dense hourly grid."""
    grid = pd.date_range(rows["period_utc"].min(), rows["period_utc"].max(), freq="h")
    w = rows.set_index("period_utc").reindex(grid)
    w.index.name = "period_utc"
    out = pd.DataFrame(index=w.index)
    for column in MEASURED:
        out[column] = w[column].astype(float)
    t = out["temperature_c"]
    out["hdh"] = (BASE_TEMPERATURE_C - t).clip(lower=0)
    out["cdh"] = (t - BASE_TEMPERATURE_C).clip(lower=0)
    out["heat_index_c"] = heat_index_c(t, out["relative_humidity"])
    local_hour = w.index.tz_convert(get_region(region).timezone).hour.to_numpy()
    hour_sin, hour_cos = np.sin(2 * np.pi * local_hour / 24), np.cos(2 * np.pi * local_hour / 24)
    for degree in ("hdh", "cdh"):
        out[f"{degree}_hour_sin"] = out[degree] * hour_sin
        out[f"{degree}_hour_cos"] = out[degree] * hour_cos
    for h in TEMP_LAG_HOURS:
        out[f"temp_lag_{h}h"] = t.shift(h)
    for h in TEMP_ROLL_HOURS:
        out[f"temp_roll{h}_mean"] = t.rolling(h, min_periods=1).mean()
    out["temp_roll24_max"] = t.rolling(24, min_periods=1).max()
    out["temp_roll24_min"] = t.rolling(24, min_periods=1).min()
    out["dewpoint_roll24_mean"] = out["dewpoint_c"].rolling(24, min_periods=1).mean()
    for h in EWM_HOURS:
        out[f"temp_ewm_{h}h"] = _exp_mean(t.to_numpy(dtype=float), h)
    out["temp_roll24_delta_24h"] = out["temp_roll24_mean"] - out["temp_roll24_mean"].shift(24)
    _add_deltas(out)
    for column in ("weather_stations", "weather_source"):
        out[column] = w[column] if column in w else np.nan
    present = w[list(MEASURED)].notna().any(axis=1)
    return out[present].reset_index().assign(region=region)


def _add_deltas(out: pd.DataFrame) -> None:
    """The day-on-day changes that derive from the value at t and the one 24 h earlier."""
    t, before = out["temperature_c"], out["temp_lag_24h"]
    out["temp_delta_24h"] = t - before
    out["cdh_delta_24h"] = out["cdh"] - (before - BASE_TEMPERATURE_C).clip(lower=0)
    out["hdh_delta_24h"] = out["hdh"] - (BASE_TEMPERATURE_C - before).clip(lower=0)


def weather_feature_frame(series: pd.DataFrame, start: datetime,
                          normalisation: pd.DataFrame | None = None) -> pd.DataFrame:
    """Features (columns `COLUMNS`) for the hours >= `start` of the region weather `series`
    (`region_weather` output: rows before `start` are lookback)."""
    parts = [_one_region(rows, str(region)) for region, rows in series.groupby("region")
             if len(rows)]
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in COLUMNS})
    frame = pd.concat(parts, ignore_index=True)
    frame = frame[frame["period_utc"] >= pd.Timestamp(start)]
    stats = normalisation if normalisation is not None else pd.DataFrame(
        columns=["region", "variable", "mean", "std"])
    for column, z in Z_COLUMNS.items():
        s = stats[stats["variable"] == column].set_index("region")
        mean = frame["region"].map(s["mean"]).astype(float)
        std = frame["region"].map(s["std"]).astype(float)
        frame[z] = ((frame[column] - mean) / std.where(std > 0)).astype(float)
    frame["weather_stations"] = frame["weather_stations"].astype("Int32")
    frame = frame.sort_values(["region", "period_utc"], ignore_index=True)
    return to_utc(frame[list(COLUMNS)])


def default_normalisation_cutoff(conn: duckdb.DuckDBPyConnection) -> datetime | None:
    """Latest demand hour (or weather hour without demand) minus `NORMALISATION_HOLDOUT`."""
    ensure_exists(conn, "raw_demand", "raw_weather")
    (latest,) = conn.execute(
        "SELECT coalesce((SELECT max(period_utc) FROM raw_demand WHERE type = 'D'), "
        "(SELECT max(period_utc) FROM raw_weather))"
    ).fetchone()
    if latest is None:
        return None
    return pd.Timestamp(latest).tz_convert("UTC") - NORMALISATION_HOLDOUT


class WeatherStatistics(NamedTuple):
    """What `fit_weather_statistics` fits: rows of OFFSETS_SCHEMA and NORMALISATION_SCHEMA."""

    offsets: pd.DataFrame
    normalisation: pd.DataFrame


def fit_weather_statistics(conn: duckdb.DuckDBPyConnection, cutoff: datetime
                           ) -> WeatherStatistics:
    """Fit the station offsets and the per-region mean/std of the derived series on hours before
    `cutoff` (one cut-off for both, and every region: statistics of different cut-offs never
    mix). Reads raw_weather; writes nothing."""
    cutoff_ts = pd.Timestamp(cutoff)
    if cutoff_ts.tzinfo is None:
        raise ValueError(f"cutoff={cutoff!r} is naive: pass a timezone-aware UTC datetime")
    cutoff_ts = cutoff_ts.tz_convert("UTC")
    ensure_exists(conn, "raw_weather")
    offsets = fit_station_offsets(conn, cutoff_ts)
    (first,) = conn.execute("SELECT min(period_utc) FROM raw_weather").fetchone()
    series = (region_weather(conn, pd.Timestamp(first).tz_convert("UTC").floor("h"),
                             cutoff_ts.ceil("h"), offsets)
              if first is not None else pd.DataFrame(columns=["region", *MEASURED]))
    series = series[series["period_utc"] < cutoff_ts] if len(series) else series
    long = series.melt(id_vars=["region"], value_vars=list(MEASURED), var_name="variable")
    grouped = long.dropna().groupby(["region", "variable"])["value"]
    stats = grouped.agg(mean="mean", std="std", n_rows="count").reset_index()
    stats = stats[stats["n_rows"] >= NORMALISATION_MIN_ROWS].fillna({"std": 0.0})
    stats["cutoff_utc"] = cutoff_ts
    stats["fitted_at"] = pd.Timestamp(datetime.now(UTC))
    return WeatherStatistics(
        offsets, to_utc(stats.sort_values(["region", "variable"], ignore_index=True),
                        "cutoff_utc"))


def refit_z_scores(frame: pd.DataFrame, cutoff: datetime) -> pd.DataFrame:
    """`frame` (rows of `model_frame`) with its weather z-scores refitted, per region, on its own
    rows before `cutoff`: the rule of `fit_weather_normalisation`, in memory, so a backtest
    never normalises with statistics of the hours it scores whatever the stored cut-off."""
    cutoff_ts = pd.Timestamp(cutoff)
    before = frame[frame["period_utc"] < cutoff_ts]
    refitted = {}
    for column, z_column in Z_COLUMNS.items():
        if column not in frame:
            continue
        values = pd.to_numeric(before[column], errors="coerce").groupby(before["region"])
        stats = values.agg(["mean", "std", "count"])
        stats = stats[(stats["count"] >= NORMALISATION_MIN_ROWS) & (stats["std"] > 0)]
        mean = frame["region"].map(stats["mean"]).astype(float)
        std = frame["region"].map(stats["std"]).astype(float)
        refitted[z_column] = (pd.to_numeric(frame[column], errors="coerce") - mean) / std
    return frame.assign(**refitted)


def _stored(conn: duckdb.DuckDBPyConnection, table: storage.Table, order: str) -> pd.DataFrame:
    """The rows of `table`; without the table, none (typed as the table's columns)."""
    present = table.name in storage.existing_tables(conn)
    empty = ", ".join(f"CAST(NULL AS {c.sql_type}) AS {c.name}" for c in table.columns)
    relation = table.name if present else f"(SELECT {empty} WHERE false)"
    return conn.execute(f"SELECT * FROM {relation} ORDER BY {order}").df()


def weather_normalisation(conn: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The stored z-score statistics (empty until `weather_statistics` is materialised)."""
    return to_utc(_stored(conn, NORMALISATION_SCHEMA, "region, variable"), "cutoff_utc")


def station_offsets(conn: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The stored station offsets (empty until `weather_statistics` is materialised)."""
    return _stored(conn, OFFSETS_SCHEMA, "ALL")


def compute_weather_features(conn: duckdb.DuckDBPyConnection, start: datetime, end: datetime
                             ) -> pd.DataFrame:
    """Weather features for start <= period_utc < end (columns: `COLUMNS`), with the stored
    station offsets and z-score statistics (before any fit: plain station means, no z-scores)."""
    start_ts, end_ts = utc_hour(start, "start"), utc_hour(end, "end")
    series = region_weather(conn, start_ts - LOOKBACK, end_ts, station_offsets(conn))
    return weather_feature_frame(series, start_ts, weather_normalisation(conn))


HORIZON_HOURS = 24  # a forecast for hour t is issued at t - 24 h (features.demand)
LINEAR_LONG_WINDOW = [f"temp_roll{h}_mean" for h in TEMP_ROLL_HOURS if h > HORIZON_HOURS] + [
    f"temp_ewm_{h}h" for h in EWM_HOURS]


def _magnus_rh(temperature_c: pd.Series, dewpoint_c: pd.Series) -> pd.Series:
    return (100 * np.exp(_A * dewpoint_c / (_B + dewpoint_c)
                         - _A * temperature_c / (_B + temperature_c))).clip(upper=100)


def apply_weather_error(series: pd.DataFrame, errors: pd.DataFrame) -> pd.DataFrame:
    """`series` (region weather) as a forecast would have it: temperature and dew point plus
    their errors (dew point never above temperature), humidity recomputed from the two, wind
    times its factor. `errors`: `modeling.forecast_error.weather_error` columns."""
    out = series.merge(errors, on=["region", "period_utc"], how="left")
    out.index = series.index  # a left merge keeps the rows in order
    t = out["temperature_c"] + out["temperature_error_c"].fillna(0)
    td = np.minimum(out["dewpoint_c"] + out["dewpoint_error_c"].fillna(0), t)
    rh = _magnus_rh(t, td)
    out["relative_humidity"] = rh.where(t.notna() & td.notna(), out["relative_humidity"])
    out["temperature_c"], out["dewpoint_c"] = t, td.where(out["dewpoint_c"].notna())
    out["wind_speed_kmh"] = out["wind_speed_kmh"] * out["wind_factor"].fillna(1)
    return out[list(series.columns)]


def _horizon_share(region_rows: pd.DataFrame, errors: pd.DataFrame) -> pd.DataFrame:
    """For one region: how much the temperature error of the last HORIZON_HOURS hours moves each
    long linear feature (rolling means beyond 24 h, exponential means) at every hour."""
    grid = pd.date_range(region_rows["period_utc"].min(), region_rows["period_utc"].max(),
                         freq="h")
    t = region_rows.set_index("period_utc")["temperature_c"].reindex(grid)
    present = t.notna().to_numpy(dtype=float)
    eps = (errors.set_index("period_utc")["temperature_error_c"].reindex(grid).fillna(0)
           .to_numpy() * present)
    n = len(grid)
    out = pd.DataFrame(index=grid)
    recent = pd.Series(eps).rolling(HORIZON_HOURS, min_periods=1).sum().to_numpy()
    for h in TEMP_ROLL_HOURS:
        if h > HORIZON_HOURS:
            count = pd.Series(present).rolling(h, min_periods=1).sum().to_numpy()
            out[f"temp_roll{h}_mean"] = np.where(count > 0, recent / np.maximum(count, 1), 0)
    for tau in EWM_HOURS:
        kernel = np.exp(-np.arange(EWM_SPAN * tau) / tau)
        weights = np.convolve(present, kernel)[:n]
        share = np.convolve(eps, kernel[:HORIZON_HOURS])[:n]
        with np.errstate(invalid="ignore", divide="ignore"):
            out[f"temp_ewm_{tau}h"] = np.where(weights > 0, share / weights, 0)
    out.index.name = "period_utc"
    return out.reset_index()


def forecast_weather_features(series: pd.DataFrame, errors: pd.DataFrame, start: datetime,
                              normalisation: pd.DataFrame | None = None) -> pd.DataFrame:
    """Weather features as known when each hour's forecast is issued (t - 24 h): the hours
    after the issue time carry the forecast `errors`, the hours up to it are observations.

    Features of the last 24 hours only (values at t, lags under 24 h, 24 h mean/max/min, degree
    hours, heat index, z-scores) come from the erroneous series; lags of 24 h and more are the
    observed ones; longer linear means (72 h / 168 h, exponential) are the observed mean plus
    the error of their last 24 hours, exactly as a mean over observations then forecasts.
    Same rows and columns as `weather_feature_frame(series, start, normalisation)`.
    """
    observed = weather_feature_frame(series, start, normalisation)
    forecast = weather_feature_frame(apply_weather_error(series, errors), start, normalisation)
    if observed.empty:
        return observed
    keys = ["region", "period_utc"]
    forecast = forecast.set_index(keys)
    observed = observed.set_index(keys)
    forecast[OBSERVED_AT_ISSUE] = observed[OBSERVED_AT_ISSUE]
    # Changes against 24 h earlier: the forecast value at t minus the observed one at t - 24 h.
    _add_deltas(forecast)
    observed_day_before = observed["temp_roll24_mean"] - observed["temp_roll24_delta_24h"]
    forecast["temp_roll24_delta_24h"] = forecast["temp_roll24_mean"] - observed_day_before
    shares = pd.concat([
        _horizon_share(rows, errors[errors["region"] == region]).assign(region=region)
        for region, rows in series.groupby("region") if len(rows)
    ]).set_index(keys).reindex(observed.index)
    for column in LINEAR_LONG_WINDOW:
        forecast[column] = observed[column] + shares[column].fillna(0)
    return to_utc(forecast.reset_index()[list(COLUMNS)])
