"""The dashboard's read side: plain functions over the serving snapshot (no Streamlit here).

Query functions take an open connection; the `load_*` bundles open one short-lived read-only
connection (`electricity_assets.serving.read_connection`) for all the queries of one part of the
page, so a cold page load opens three connections and a warm one (st.cache_data) none.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

import duckdb
import numpy as np
import pandas as pd

from electricity_assets import serving
from electricity_assets.replay_clock import current_time

logger = logging.getLogger(__name__)

SEASONAL_LAG_HOURS = 168  # seasonal naive: the same hour one week earlier
METRIC_COLUMNS = ["forecast", "hours", "MdAPE %", "MAPE %", "MAE MWh"]


Conn = duckdb.DuckDBPyConnection


def _q(conn: Conn, sql: str, params: list | None = None) -> pd.DataFrame:
    return conn.execute(sql, params or []).df()


def has_table(conn: Conn, name: str) -> bool:
    return bool(conn.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?",
                             [name]).fetchone()[0])


def regions(conn: Conn) -> list[str]:
    """Every region with actual demand in the data (including ones a replay folder adds)."""
    frame = _q(conn, "SELECT DISTINCT region FROM raw_demand WHERE type = 'D' ORDER BY 1")
    return frame["region"].tolist()


def demand_range(conn: Conn, region: str) -> tuple[datetime, datetime] | None:
    frame = _q(conn,
        "SELECT min(period_utc) AS first, max(period_utc) AS last FROM raw_demand "
        "WHERE region = ? AND type = 'D'", [region])
    if frame.empty or pd.isna(frame["first"].iloc[0]):
        return None
    return frame["first"].iloc[0].to_pydatetime(), frame["last"].iloc[0].to_pydatetime()


def latest_forecast_hour(conn: Conn, region: str) -> datetime | None:
    if not has_table(conn, "demand_forecasts"):
        return None
    value = _q(conn, "SELECT max(period_utc) AS last FROM demand_forecasts WHERE region = ?",
                          [region])["last"].iloc[0]
    return None if pd.isna(value) else value.to_pydatetime()


def demand_series(conn: Conn, region: str, start: datetime, end: datetime) -> pd.DataFrame:
    """Hourly actual, EIA DF, model forecast with P10/P90, and seasonal naive in [start, end)."""
    with_forecasts = has_table(conn, "demand_forecasts")
    forecast_cols = ("f.forecast_mwh, f.p10_mwh, f.p90_mwh, f.model_version" if with_forecasts
                     else "NULL::DOUBLE AS forecast_mwh, NULL::DOUBLE AS p10_mwh, "
                          "NULL::DOUBLE AS p90_mwh, NULL::VARCHAR AS model_version")
    forecast_join = ("LEFT JOIN demand_forecasts f ON f.region = ? AND f.period_utc = h.period_utc"
                     if with_forecasts else "")
    sql = f"""
        WITH d AS (
            SELECT period_utc,
                   max(value_mwh) FILTER (WHERE type = 'D') AS actual_mwh,
                   max(value_mwh) FILTER (WHERE type = 'DF') AS eia_df_mwh
            FROM raw_demand
            WHERE region = ? AND period_utc >= ? - INTERVAL {SEASONAL_LAG_HOURS} HOUR
              AND period_utc < ?
            GROUP BY period_utc
        ), h AS (
            SELECT d.*, w.actual_mwh AS naive_mwh
            FROM d LEFT JOIN d AS w
              ON w.period_utc = d.period_utc - INTERVAL {SEASONAL_LAG_HOURS} HOUR
        )
        SELECT h.period_utc, h.actual_mwh, h.eia_df_mwh, h.naive_mwh, {forecast_cols}
        FROM h {forecast_join}
        WHERE h.period_utc >= ?
        ORDER BY h.period_utc"""
    params: list = [region, start, end]
    if with_forecasts:
        params.append(region)
    params.append(start)
    return _q(conn, sql, params)


def error_metrics(series: pd.DataFrame, common_hours: bool = True) -> pd.DataFrame:
    """MdAPE, MAPE and MAE of model, EIA DF and seasonal naive.

    With `common_hours` (and any model forecast in range) all three are scored on the hours the
    model covers, so the rows compare like with like. Hours with no positive actual are left out
    (EIA glitches such as zero demand would make percentage errors infinite).
    """
    scored = series[series["actual_mwh"] > 0]
    if common_hours and scored["forecast_mwh"].notna().any():
        scored = scored[scored["forecast_mwh"].notna()]
    rows = []
    for label, column in (("model", "forecast_mwh"), ("EIA day-ahead (DF)", "eia_df_mwh"),
                          ("seasonal naive (t-168 h)", "naive_mwh")):
        both = scored[["actual_mwh", column]].dropna()
        if both.empty:
            rows.append({"forecast": label, "hours": 0, "MdAPE %": np.nan, "MAPE %": np.nan,
                         "MAE MWh": np.nan})
            continue
        error = both[column] - both["actual_mwh"]
        ape = (error.abs() / both["actual_mwh"]) * 100
        rows.append({"forecast": label, "hours": len(both), "MdAPE %": float(ape.median()),
                     "MAPE %": float(ape.mean()), "MAE MWh": float(error.abs().mean())})
    return pd.DataFrame(rows, columns=METRIC_COLUMNS)


def backtest(conn: Conn, region: str) -> pd.DataFrame:
    if not has_table(conn, "forecast_backtest"):
        return pd.DataFrame()
    return _q(conn,
        "SELECT window_start, window_end, hours, model_mdape, df_mdape, naive_mdape, model_mape, "
        "df_mape, naive_mape, model_mae, df_mae, naive_mae, coverage_p10_p90, run_id, created_at "
        "FROM forecast_backtest WHERE region = ? ORDER BY created_at DESC LIMIT 20", [region])


def weather_vs_demand(conn: Conn, region: str, start: datetime, end: datetime) -> pd.DataFrame:
    """The region's weather as the model sees it (derived from its stations), else the mean of
    the raw rows filed under it."""
    empty = pd.DataFrame(columns=["period_utc", "temperature_c", "actual_mwh"])
    sources = [t for t in ("weather_features", "raw_weather") if has_table(conn, t)]
    for table in sources:
        weather = table if table == "weather_features" else (
            "(SELECT region, period_utc, avg(temperature_c) AS temperature_c "
            "FROM raw_weather GROUP BY ALL)")
        frame = _q(conn,
            f"SELECT w.period_utc, w.temperature_c, d.value_mwh AS actual_mwh FROM {weather} w "
            "JOIN raw_demand d ON d.region = w.region AND d.period_utc = w.period_utc "
            "AND d.type = 'D' WHERE w.region = ? AND w.period_utc >= ? AND w.period_utc < ? "
            "AND w.temperature_c IS NOT NULL ORDER BY w.period_utc", [region, start, end])
        if len(frame):
            return frame
    return empty


def freshness(conn: Conn, now: datetime | None = None) -> pd.DataFrame:
    """Latest hour per region and dataset, how far behind `now` it is, and the last stream write.

    `now` defaults to the data clock (the replay clock offline), so replayed history is judged
    against the replayed present rather than today's date.
    """
    now = now or current_time()
    parts = ["SELECT region, 'demand' AS dataset, max(period_utc) AS latest_hour, "
             "max(ingested_at) AS last_ingested_at, "
             "max(ingested_at) FILTER (WHERE source = 'kafka') AS last_streamed_at "
             "FROM raw_demand WHERE type = 'D' GROUP BY region"]
    if has_table(conn, "raw_weather"):
        parts.append("SELECT region, 'weather', max(period_utc), max(ingested_at), "
                     "max(ingested_at) FILTER (WHERE source = 'kafka') FROM raw_weather "
                     "GROUP BY region")
    frame = _q(conn, " UNION ALL ".join(parts) + " ORDER BY region, dataset")
    lag = pd.Timestamp(now) - frame["latest_hour"]
    frame["lag_hours"] = (lag.dt.total_seconds() / 3600).round(1)
    wall = pd.Timestamp(datetime.now(UTC))
    frame["sensor_lag_min"] = ((wall - frame["last_streamed_at"]).dt.total_seconds() / 60).round(1)
    return frame


def dead_letter_count(conn: Conn) -> int:
    if not has_table(conn, "dead_letters"):
        return 0
    return int(_q(conn, "SELECT count(*) AS n FROM dead_letters")["n"].iloc[0])


def snapshot_published_at(conn: Conn) -> datetime | None:
    if not has_table(conn, "serving_meta"):
        return None
    return _q(conn, "SELECT max(published_at) AS t FROM serving_meta")["t"].iloc[0]


@dataclass
class ModelCard:
    model_name: str
    available: bool
    message: str = ""
    version: str | None = None
    trained_at: datetime | None = None
    run_id: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    importance_png: bytes | None = None


def champion_card(conn: Conn, region: str) -> ModelCard:
    """The champion of `demand-<region>` as published into the snapshot (read from MLflow there)."""
    name = f"demand-{region}"
    if not has_table(conn, "model_cards"):
        return ModelCard(name, False, "No model registry yet: run `trained_models` in Dagster.")
    rows = _q(conn, "SELECT * FROM model_cards WHERE region = ?", [region])
    if rows.empty:
        return ModelCard(name, False, f"No champion model for {region} yet.")
    row = rows.iloc[0]
    png = row["importance_png"]
    return ModelCard(name, True, version=row["version"], run_id=row["run_id"],
                     trained_at=row["trained_at"].to_pydatetime(),
                     metrics=json.loads(row["metrics_json"]),
                     importance_png=bytes(png) if png is not None and len(png) else None)


@dataclass
class Overview:
    regions: list[str]
    freshness: pd.DataFrame
    dead_letters: int
    published_at: datetime | None


@dataclass
class RegionSpan:
    first: datetime
    last: datetime
    latest_forecast: datetime | None
    card: ModelCard


@dataclass
class WindowView:
    series: pd.DataFrame
    backtest: pd.DataFrame
    weather: pd.DataFrame


def load_overview(now: datetime | None = None) -> Overview:
    now = now or current_time()
    with serving.read_connection() as conn:
        if not has_table(conn, "raw_demand"):
            return Overview([], pd.DataFrame(), 0, None)
        return Overview(regions(conn), freshness(conn, now), dead_letter_count(conn),
                        snapshot_published_at(conn))


def load_region_span(region: str) -> RegionSpan | None:
    with serving.read_connection() as conn:
        span = demand_range(conn, region)
        if span is None:
            return None
        return RegionSpan(*span, latest_forecast_hour(conn, region), champion_card(conn, region))


def load_window(region: str, start: datetime, end: datetime) -> WindowView:
    with serving.read_connection() as conn:
        return WindowView(demand_series(conn, region, start, end), backtest(conn, region),
                          weather_vs_demand(conn, region, start, end))
