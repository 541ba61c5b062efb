"""Weather features computed in DuckDB SQL from `raw_weather`, one row per (region, hour) present.

Weather at hour t is an input for t (in replay it is the observed reanalysis value, an optimistic
stand-in for a forecast; live it is the Open-Meteo forecast). Thermal inertia comes from lags
(joined on `period_utc - INTERVAL n HOUR`, NULL across a gap) and trailing RANGE-frame means.

Normalisation rule (no leakage): z-scores use per-region mean / std fitted on `raw_weather` rows
strictly before a cut-off and stored in `weather_normalisation`, so training and forecasts
reuse the same statistics (the backtest refits them per window: `refit_z_scores`). They are fitted
only when a cut-off is passed, or - when the table is empty - with the default cut-off: the
latest demand hour minus 8 weeks, so the most recent weeks that validation scores never inform
them. A region with fewer than
`NORMALISATION_MIN_ROWS` rows before the cut-off gets no statistics and NULL z-scores.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import duckdb
import pandas as pd

from electricity_assets import storage
from electricity_assets.features.common import ensure_exists, to_utc, utc_hour

TABLE = "weather_features"
NORMALISATION_TABLE = "weather_normalisation"

BASE_TEMPERATURE_C = 18.0
NORMALISATION_HOLDOUT = timedelta(weeks=8)
NORMALISATION_MIN_ROWS = 168
TEMP_LAG_HOURS = (3, 24)
TEMP_ROLL_HOURS = (24, 72, 168)
LOOKBACK = timedelta(hours=max(*TEMP_LAG_HOURS, *TEMP_ROLL_HOURS))

MEASURED = ("temperature_c", "relative_humidity", "wind_speed_kmh", "precipitation_mm")
Z_COLUMNS = {  # measured column -> z-score column
    "temperature_c": "temperature_z",
    "relative_humidity": "relative_humidity_z",
    "wind_speed_kmh": "wind_speed_z",
    "precipitation_mm": "precipitation_z",
}
DERIVED = ["hdh", "cdh", "heat_index_c"]
TEMP_COLUMNS = [f"temp_lag_{h}h" for h in TEMP_LAG_HOURS] + [
    f"temp_roll{h}_mean" for h in TEMP_ROLL_HOURS
]
WEATHER_FEATURE_COLUMNS: list[str] = [*MEASURED, *DERIVED, *TEMP_COLUMNS, *Z_COLUMNS.values()]
"""Model inputs from this table; all NULL for regions without weather."""

COLUMNS: dict[str, str] = {
    "region": "VARCHAR NOT NULL",
    "period_utc": "TIMESTAMPTZ NOT NULL",
    **{c: "DOUBLE" for c in WEATHER_FEATURE_COLUMNS},
}
SCHEMA = storage.Table(TABLE, storage.columns(COLUMNS))
NORMALISATION_SCHEMA = storage.Table(NORMALISATION_TABLE, storage.columns({
    "region": "VARCHAR NOT NULL",
    "variable": "VARCHAR NOT NULL",
    "mean": "DOUBLE NOT NULL",
    "std": "DOUBLE NOT NULL",
    "n_rows": "BIGINT NOT NULL",
    "cutoff_utc": "TIMESTAMPTZ NOT NULL",
    "fitted_at": "TIMESTAMPTZ NOT NULL",
}, {"variable": "a raw_weather column, e.g. temperature_c",
    "cutoff_utc": "statistics use rows with period_utc < cutoff_utc"}), ("region", "variable"))

# NWS heat index (Rothfusz regression) in Celsius; below 80 F (26.7 C), where the index is not
# defined, it is the air temperature itself.
_HEAT_INDEX_SQL = """
    CASE WHEN tf < 80 OR relative_humidity IS NULL THEN temperature_c
         ELSE ((-42.379 + 2.04901523 * tf + 10.14333127 * relative_humidity
                - 0.22475541 * tf * relative_humidity - 0.00683783 * tf * tf
                - 0.05481717 * relative_humidity * relative_humidity
                + 0.00122874 * tf * tf * relative_humidity
                + 0.00085282 * tf * relative_humidity * relative_humidity
                - 0.00000199 * tf * tf * relative_humidity * relative_humidity) - 32) / 1.8
    END"""


def _z(column: str) -> str:
    return (
        f"CASE WHEN n_{column}.std > 0 THEN (w.{column} - n_{column}.mean) / n_{column}.std END "
        f"AS {Z_COLUMNS[column]}"
    )


_SQL = f"""
WITH w AS (
    SELECT region, period_utc, {", ".join(MEASURED)},
           greatest({BASE_TEMPERATURE_C} - temperature_c, 0) AS hdh,
           greatest(temperature_c - {BASE_TEMPERATURE_C}, 0) AS cdh,
           {_HEAT_INDEX_SQL} AS heat_index_c
    FROM (SELECT *, temperature_c * 1.8 + 32 AS tf FROM raw_weather
          WHERE period_utc >= $read_start AND period_utc < $end)
),
rolled AS (
    SELECT *, {", ".join(
        f"avg(temperature_c) OVER r{h} AS temp_roll{h}_mean" for h in TEMP_ROLL_HOURS)}
    FROM w
    WINDOW {", ".join(
        f"r{h} AS (PARTITION BY region ORDER BY period_utc "
        f"RANGE BETWEEN INTERVAL {h - 1} HOUR PRECEDING AND CURRENT ROW)" for h in TEMP_ROLL_HOURS)}
)
SELECT w.region, w.period_utc, {", ".join(f"w.{c}" for c in MEASURED + tuple(DERIVED))},
       {", ".join(f"lag{h}.temperature_c AS temp_lag_{h}h" for h in TEMP_LAG_HOURS)},
       {", ".join(f"w.temp_roll{h}_mean" for h in TEMP_ROLL_HOURS)},
       {", ".join(_z(c) for c in MEASURED)}
FROM rolled w
{" ".join(
    f"LEFT JOIN w lag{h} ON lag{h}.region = w.region "
    f"AND lag{h}.period_utc = w.period_utc - INTERVAL {h} HOUR" for h in TEMP_LAG_HOURS)}
{" ".join(
    f"LEFT JOIN {NORMALISATION_TABLE} n_{c} ON n_{c}.region = w.region AND n_{c}.variable = '{c}'"
    for c in MEASURED)}
WHERE w.period_utc >= $start
ORDER BY w.region, w.period_utc
"""


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


def fit_weather_normalisation(conn: duckdb.DuckDBPyConnection, cutoff: datetime) -> pd.DataFrame:
    """Replace `weather_normalisation` by per-region mean/std of rows with period_utc < cutoff."""
    cutoff_ts = pd.Timestamp(cutoff)
    if cutoff_ts.tzinfo is None:
        raise ValueError(f"cutoff={cutoff!r} is naive: pass a timezone-aware UTC datetime")
    ensure_exists(conn, "raw_weather", NORMALISATION_SCHEMA)
    stats = conn.execute(" UNION ALL ".join(
        f"SELECT region, '{c}' AS variable, avg({c}) AS mean, stddev_samp({c}) AS std, "
        f"count({c}) AS n_rows FROM raw_weather WHERE period_utc < $cutoff GROUP BY region "
        f"HAVING count({c}) >= {NORMALISATION_MIN_ROWS}"
        for c in MEASURED
    ) + " ORDER BY region, variable", {"cutoff": cutoff_ts}).df()
    stats["cutoff_utc"] = cutoff_ts.tz_convert("UTC")
    stats["fitted_at"] = pd.Timestamp(datetime.now(UTC))
    with storage.transaction(conn):
        # One cut-off for every region: statistics from different cut-offs never mix.
        conn.execute(f"DELETE FROM {NORMALISATION_TABLE}")
        if len(stats):
            storage.insert_frame(conn, NORMALISATION_TABLE, stats)
    return to_utc(stats)


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


def weather_normalisation(conn: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The stored z-score statistics (empty until fitted)."""
    ensure_exists(conn, NORMALISATION_SCHEMA)
    return to_utc(conn.execute(
        f"SELECT * FROM {NORMALISATION_TABLE} ORDER BY region, variable").df())


def compute_weather_features(conn: duckdb.DuckDBPyConnection, start: datetime, end: datetime,
                             normalisation_cutoff: datetime | None = None) -> pd.DataFrame:
    """Weather features for start <= period_utc < end (columns: `COLUMNS`).

    Pass `normalisation_cutoff` to (re)fit the z-score statistics; otherwise the stored ones are
    reused, and fitted with `default_normalisation_cutoff` only if none exist yet.
    """
    start_ts, end_ts = utc_hour(start, "start"), utc_hour(end, "end")
    ensure_exists(conn, "raw_weather", NORMALISATION_SCHEMA)
    if normalisation_cutoff is not None:
        fit_weather_normalisation(conn, normalisation_cutoff)
    elif conn.execute(f"SELECT count(*) FROM {NORMALISATION_TABLE}").fetchone()[0] == 0:
        cutoff = default_normalisation_cutoff(conn)
        if cutoff is not None:
            fit_weather_normalisation(conn, cutoff)
    frame = conn.execute(_SQL, {
        "read_start": start_ts - LOOKBACK, "start": start_ts, "end": end_ts,
    }).df()
    return to_utc(frame)[list(COLUMNS)]
