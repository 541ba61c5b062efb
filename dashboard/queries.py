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
from electricity_assets.regions import NEIGHBOUR_RADIUS_KM, get_region
from electricity_assets.replay_clock import current_time

logger = logging.getLogger(__name__)

SEASONAL_LAG_HOURS = 168  # seasonal naive: the same hour one week earlier
METRIC_COLUMNS = ["forecast", "hours", "MdAPE %", "MAPE %", "MAE MWh"]


Conn = duckdb.DuckDBPyConnection


def _q(conn: Conn, sql: str, params: list | None = None) -> pd.DataFrame:
    return conn.execute(sql, params or []).df()


def has_table(conn: Conn, name: str) -> bool:
    return bool(conn.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?",
                             [name]).fetchall()[0][0])


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


def daily_series(conn: Conn, region: str, start: datetime, end: datetime, tz: str
                 ) -> pd.DataFrame:
    """Daily means (local dates of `tz`) of actual, EIA DF and model forecast with P10/P90: the
    demand chart of a long range, aggregated in DuckDB rather than drawn hour by hour."""
    with_forecasts = has_table(conn, "demand_forecasts")
    forecast_cols = ("avg(f.forecast_mwh) AS forecast_mwh, avg(f.p10_mwh) AS p10_mwh, "
                     "avg(f.p90_mwh) AS p90_mwh" if with_forecasts else
                     "NULL::DOUBLE AS forecast_mwh, NULL::DOUBLE AS p10_mwh, "
                     "NULL::DOUBLE AS p90_mwh")
    forecast_join = ("LEFT JOIN demand_forecasts f ON f.region = d.region "
                     "AND f.period_utc = d.period_utc" if with_forecasts else "")
    frame = _q(conn, f"""
        WITH d AS (
            SELECT region, period_utc,
                   max(value_mwh) FILTER (WHERE type = 'D') AS actual_mwh,
                   max(value_mwh) FILTER (WHERE type = 'DF') AS eia_df_mwh
            FROM raw_demand WHERE region = ? AND period_utc >= ? AND period_utc < ?
            GROUP BY region, period_utc)
        SELECT date_trunc('day', timezone(?, d.period_utc)) AS local_day,
               avg(d.actual_mwh) AS actual_mwh, avg(d.eia_df_mwh) AS eia_df_mwh, {forecast_cols}
        FROM d {forecast_join} GROUP BY local_day ORDER BY local_day""", [region, start, end, tz])
    # Back to an aware timestamp at local midnight, the shape the chart takes.
    frame["period_utc"] = frame.pop("local_day").dt.tz_localize(tz).dt.tz_convert("UTC")
    return frame


VALIDATION_ROWS = {"mdape": "median APE (%)", "mape": "mean APE (%)", "mae": "MAE (MWh)",
                   "rmse": "RMSE (MWh)"}
VALIDATION_COLUMNS = {"model": "model", "df": "EIA day-ahead (DF)",
                      "naive": "seasonal naive (t-168 h)"}


def validation_table(metrics: dict[str, float]) -> pd.DataFrame:
    """The champion's MLflow validation metrics (`val_<who>_<metric>`) as a readable table:
    one row per error measure, one column per forecast."""
    rows = {label: {col: metrics.get(f"val_{who}_{metric}", np.nan)
                    for who, col in VALIDATION_COLUMNS.items()}
            for metric, label in VALIDATION_ROWS.items()}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("error measure")


def validation_facts(metrics: dict[str, float]) -> dict[str, str]:
    """The card's other numbers, labelled with their units."""
    facts = {}
    if pd.notna(metrics.get("val_model_coverage_p10_p90", np.nan)):
        facts["P10-P90 coverage on validation (%, nominal 80)"] = (
            f"{metrics['val_model_coverage_p10_p90']:.1f}")
    if "val_hours" in metrics:
        facts["validation hours"] = f"{metrics['val_hours']:,.0f}"
    if "best_iteration" in metrics:
        facts["boosting rounds"] = f"{metrics['best_iteration']:,.0f}"
    if "weather_inputs" in metrics:
        facts["weather inputs"] = (
            f"{metrics['weather_inputs']:,.0f} features, "
            f"{metrics.get('weather_gain_pct', 0):.1f} % of the trees' gain"
            if metrics["weather_inputs"] else "none (no weather for this region)")
    return facts


def forecasts_csv(series: pd.DataFrame, tz: str) -> str:
    """The region page's hourly series as CSV, with the local hour next to the UTC one."""
    local = series["period_utc"].dt.tz_convert(tz).dt.strftime("%Y-%m-%d %H:%M")
    return series.assign(hour_ending_local=local, timezone=tz).to_csv(index=False)


def metrics_csv(metrics: pd.DataFrame, backtests: pd.DataFrame) -> str:
    """The selected range's error metrics and the region's backtest runs, one CSV."""
    scored = metrics[metrics["hours"] > 0].assign(scope="selected range")
    return pd.concat([scored, backtests.assign(scope="backtest")],
                     ignore_index=True).to_csv(index=False)


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


OVERVIEW_DAYS = 7
SPARK_DAYS = 3


def _forecast_columns(conn: Conn) -> tuple[str, str]:
    """Select list and join adding the model forecast and P10/P90 to hours `d` (region,
    period_utc); NULL columns while `demand_forecasts` does not exist yet."""
    if not has_table(conn, "demand_forecasts"):
        return ("NULL::DOUBLE AS forecast_mwh, NULL::DOUBLE AS p10_mwh, "
                "NULL::DOUBLE AS p90_mwh", "")
    return ("f.forecast_mwh, f.p10_mwh, f.p90_mwh",
            "LEFT JOIN demand_forecasts f ON f.region = d.region AND f.period_utc = d.period_utc")


def _last_hours(conn: Conn) -> pd.DataFrame:
    """Per region: the last hour with a positive actual and the last one with a model forecast
    and an actual (the end of what can be scored)."""
    with_forecasts = has_table(conn, "demand_forecasts")
    scored = ("(SELECT max(f.period_utc) FROM demand_forecasts f JOIN raw_demand r "
              "ON r.region = f.region AND r.period_utc = f.period_utc AND r.type = 'D' "
              "AND r.value_mwh > 0 WHERE f.region = a.region)" if with_forecasts
              else "NULL::TIMESTAMPTZ")
    return _q(conn, f"""
        SELECT a.region, a.last_actual, {scored} AS last_scored
        FROM (SELECT region, max(period_utc) AS last_actual FROM raw_demand
              WHERE type = 'D' AND value_mwh > 0 GROUP BY region) a ORDER BY a.region""")


def recent_scores(conn: Conn, days: int = OVERVIEW_DAYS) -> pd.DataFrame:
    """Median APE of model, EIA DF and seasonal naive and the P10-P90 coverage, per region, over
    the `days` days that end at its last scored hour (its last actual hour if it has no forecast).

    The same rules as `error_metrics`: hours with a positive actual; with any model forecast in
    the window all three are scored on the model's hours only.
    """
    ends = _last_hours(conn)
    ends["window_end"] = ends["last_scored"].fillna(ends["last_actual"]) + pd.Timedelta(hours=1)
    if ends.empty:
        return pd.DataFrame(columns=["region", "window_start", "window_end", "model_hours",
                                     "model_mdape", "df_mdape", "naive_mdape", "coverage_p10_p90"])
    ends["window_start"] = ends["window_end"] - pd.Timedelta(days=days)
    since = ends["window_start"].min() - pd.Timedelta(hours=SEASONAL_LAG_HOURS)
    forecast_cols, forecast_join = _forecast_columns(conn)
    conn.register("_windows", ends[["region", "window_start", "window_end"]])
    try:
        return _q(conn, f"""
            WITH d AS (
                SELECT region, period_utc,
                       max(value_mwh) FILTER (WHERE type = 'D') AS actual_mwh,
                       max(value_mwh) FILTER (WHERE type = 'DF') AS eia_df_mwh
                FROM raw_demand WHERE period_utc >= ? GROUP BY region, period_utc
            ), h AS (
                SELECT d.region, w.window_start, w.window_end, d.actual_mwh, d.eia_df_mwh,
                       n.actual_mwh AS naive_mwh, {forecast_cols}
                FROM d JOIN _windows w ON w.region = d.region
                  AND d.period_utc >= w.window_start AND d.period_utc < w.window_end
                LEFT JOIN d n ON n.region = d.region
                  AND n.period_utc = d.period_utc - INTERVAL {SEASONAL_LAG_HOURS} HOUR
                {forecast_join}
                WHERE d.actual_mwh > 0
            ), s AS (
                SELECT * FROM (SELECT *, bool_or(forecast_mwh IS NOT NULL)
                               OVER (PARTITION BY region) AS has_model FROM h)
                WHERE forecast_mwh IS NOT NULL OR NOT has_model
            )
            SELECT region, min(window_start) AS window_start, min(window_end) AS window_end,
                   count(forecast_mwh) AS model_hours,
                   median(abs(forecast_mwh - actual_mwh) / actual_mwh * 100) AS model_mdape,
                   median(abs(eia_df_mwh - actual_mwh) / actual_mwh * 100) AS df_mdape,
                   median(abs(naive_mwh - actual_mwh) / actual_mwh * 100) AS naive_mdape,
                   avg(CASE WHEN p10_mwh IS NOT NULL AND p90_mwh IS NOT NULL
                       THEN (actual_mwh BETWEEN p10_mwh AND p90_mwh)::INT END) * 100
                       AS coverage_p10_p90
            FROM s GROUP BY region ORDER BY region""", [since])
    finally:
        conn.unregister("_windows")


def latest_backtests(conn: Conn) -> pd.DataFrame:
    """Each region's row of its newest backtest run."""
    if not has_table(conn, "forecast_backtest"):
        return pd.DataFrame(columns=["region", "window_start", "window_end", "hours",
                                     "model_mdape", "df_mdape", "naive_mdape",
                                     "coverage_p10_p90", "run_id", "created_at"])
    return _q(conn, """
        SELECT region, window_start, window_end, hours, model_mdape, df_mdape, naive_mdape,
               coverage_p10_p90, run_id, created_at
        FROM forecast_backtest WHERE hours > 0
        QUALIFY row_number() OVER (PARTITION BY region ORDER BY created_at DESC) = 1
        ORDER BY region""")


def champion_versions(conn: Conn) -> pd.DataFrame:
    if not has_table(conn, "model_cards"):
        return pd.DataFrame(columns=["region", "champion_version"])
    return _q(conn, "SELECT region, version AS champion_version FROM model_cards")


WHO = {"model": "model", "df": "EIA DF", "naive": "seasonal naive"}


def winner(row: pd.Series, prefix: str = "") -> str | None:
    """Who has the lowest median APE among model, EIA DF and seasonal naive (None: no scores)."""
    scores = {label: row.get(f"{prefix}{who}_mdape") for who, label in WHO.items()}
    scores = {k: v for k, v in scores.items() if v is not None and pd.notna(v)}
    return min(scores, key=scores.get) if scores else None


def overview_table(conn: Conn, now: datetime | None = None,
                   days: int = OVERVIEW_DAYS) -> pd.DataFrame:
    """One row per region: recent and backtest median APE with the winner, coverage, data lag
    and champion version. The overview page shows exactly this frame."""
    recent = recent_scores(conn, days)
    backtests = latest_backtests(conn).drop(columns=["run_id", "created_at"]).add_prefix("bt_")
    fresh = freshness(conn, now)
    lag = (fresh[fresh["dataset"] == "demand"][["region", "lag_hours"]]
           .rename(columns={"lag_hours": "demand_lag_hours"}))
    table = (recent.merge(backtests, left_on="region", right_on="bt_region", how="left")
             .drop(columns=["bt_region"])
             .merge(lag, on="region", how="left")
             .merge(champion_versions(conn), on="region", how="left"))
    table["winner"] = table.apply(winner, axis=1)
    table["bt_winner"] = table.apply(winner, axis=1, prefix="bt_")
    return table


def recent_series(conn: Conn, days: int = SPARK_DAYS) -> pd.DataFrame:
    """Actual, model forecast and P10/P90 of every region's last `days` days of actuals (the
    small multiples), in one query."""
    forecast_cols, forecast_join = _forecast_columns(conn)
    return _q(conn, f"""
        WITH last AS (SELECT region, max(period_utc) AS last_hour FROM raw_demand
                      WHERE type = 'D' GROUP BY region),
             d AS (SELECT r.region, r.period_utc, r.value_mwh AS actual_mwh FROM raw_demand r
                   JOIN last l ON l.region = r.region
                   AND r.period_utc > l.last_hour - INTERVAL {days * 24} HOUR
                   WHERE r.type = 'D')
        SELECT d.region, d.period_utc, d.actual_mwh, {forecast_cols}
        FROM d {forecast_join} ORDER BY d.region, d.period_utc""")


HORIZON_HOURS = 24


def forecast_horizon(conn: Conn, region: str, hours: int = HORIZON_HOURS) -> pd.DataFrame:
    """The region's newest `hours` forecast hours with P10/P90, the actual where it is in."""
    if not has_table(conn, "demand_forecasts"):
        return pd.DataFrame(columns=["period_utc", "forecast_mwh", "p10_mwh", "p90_mwh",
                                     "model_version", "issued_at", "actual_mwh"])
    return _q(conn, """
        SELECT f.period_utc, f.forecast_mwh, f.p10_mwh, f.p90_mwh, f.model_version, f.issued_at,
               d.value_mwh AS actual_mwh
        FROM (SELECT * FROM demand_forecasts WHERE region = ?
              ORDER BY period_utc DESC LIMIT ?) f
        LEFT JOIN raw_demand d ON d.region = ? AND d.period_utc = f.period_utc AND d.type = 'D'
        ORDER BY f.period_utc""", [region, hours, region])


@dataclass
class NextDay:
    """The newest issue of `next_day_forecasts` for one region."""
    rows: pd.DataFrame           # period_utc, forecast/p10/p90, model_version, weather_input
    context: pd.DataFrame        # period_utc, actual_mwh: the observed day before them
    issued_at: datetime | None   # of the newest issue (also when this region has no rows)
    data_until: datetime | None  # the region's latest observed demand hour
    reason: str | None           # why the region has no rows in the newest issue
    rows_issued_at: datetime | None = None  # of the rows shown: older when the region was skipped


def next_day(conn: Conn, region: str, context_hours: int = HORIZON_HOURS) -> NextDay:
    """The region's next 24 forecast hours (issued at the data clock), the actuals of the
    `context_hours` before them, and why there are none if so."""
    empty = pd.DataFrame(columns=["period_utc", "forecast_mwh", "p10_mwh", "p90_mwh"])
    if not has_table(conn, "next_day_forecasts"):
        return NextDay(empty, empty, None, None, None)
    rows = _q(conn, """
        SELECT period_utc, forecast_mwh, p10_mwh, p90_mwh, model_version, weather_input,
               issued_at, data_until_utc
        FROM next_day_forecasts WHERE region = ? ORDER BY period_utc""", [region])
    issued = _q(conn, "SELECT max(issued_at) AS issued FROM (SELECT issued_at FROM "
                      "next_day_forecasts UNION ALL SELECT issued_at FROM next_day_skipped)"
                if has_table(conn, "next_day_skipped") else
                "SELECT max(issued_at) AS issued FROM next_day_forecasts")["issued"].iloc[0]
    issued_at = None if pd.isna(issued) else issued.to_pydatetime()
    reason = None
    if has_table(conn, "next_day_skipped"):
        found = _q(conn, "SELECT reason FROM next_day_skipped WHERE region = ?", [region])
        reason = found["reason"].iloc[0] if len(found) else None
    if rows.empty:
        return NextDay(empty, empty, issued_at, None, reason)
    until = rows["data_until_utc"].iloc[0]
    context = _q(conn, """
        SELECT period_utc, value_mwh AS actual_mwh FROM raw_demand
        WHERE region = ? AND type = 'D' AND period_utc > ? AND period_utc <= ?
        ORDER BY period_utc""", [region, until - pd.Timedelta(hours=context_hours), until])
    # A skipped region keeps the rows of its last issue: shown, with the reason it has no newer.
    return NextDay(rows, context, issued_at, until.to_pydatetime(), reason,
                   rows["issued_at"].iloc[0].to_pydatetime())


SKIP_TABLES = {"demand_forecasts_skipped": "hourly model forecasts",
               "next_day_skipped": "next 24 hours"}


def forecast_skips(conn: Conn, region: str | None = None) -> pd.DataFrame:
    """Regions the latest forecast runs skipped, and why: region, forecast, reason."""
    parts = [f"SELECT region, '{label}' AS forecast, reason FROM {table}"
             for table, label in SKIP_TABLES.items() if has_table(conn, table)]
    if not parts:
        return pd.DataFrame(columns=["region", "forecast", "reason"])
    where = "" if region is None else " WHERE region = ?"
    return _q(conn, f"SELECT * FROM ({' UNION ALL '.join(parts)}){where} "
                    "ORDER BY region, forecast", [] if region is None else [region])


def next_day_summary(conn: Conn) -> tuple[datetime | None, int]:
    """Issue time of the newest next-day forecasts and how many regions have them."""
    if not has_table(conn, "next_day_forecasts"):
        return None, 0
    # Regions of the newest issue only: a skipped region keeps the rows of an older one.
    row = _q(conn, "SELECT max(issued_at) AS issued, count(DISTINCT region) FILTER (WHERE "
                   "issued_at = (SELECT max(issued_at) FROM next_day_forecasts)) AS regions "
                   "FROM next_day_forecasts").iloc[0]
    return (None if pd.isna(row["issued"]) else row["issued"].to_pydatetime(),
            int(row["regions"]))


def _missing(value: object) -> bool:
    return value is None or (not isinstance(value, bytes | bytearray | memoryview)
                             and bool(pd.isna(value)))


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
                     # A card without the figure reads back as NA (NULL blob), not None.
                     importance_png=bytes(png) if not _missing(png) and len(png) else None)


@dataclass
class Overview:
    regions: list[str]
    freshness: pd.DataFrame
    dead_letters: int
    published_at: datetime | None
    next_day_issued: datetime | None = None  # next_day_summary
    next_day_regions: int = 0
    skipped: pd.DataFrame = field(default_factory=pd.DataFrame)  # forecast_skips


@dataclass
class Scoreboard:
    table: pd.DataFrame      # overview_table
    recent: pd.DataFrame     # recent_series: the small multiples


@dataclass
class RegionSpan:
    first: datetime
    last: datetime
    latest_forecast: datetime | None
    card: ModelCard
    horizon: pd.DataFrame    # forecast_horizon
    next_day: NextDay
    skipped: pd.DataFrame = field(default_factory=pd.DataFrame)  # forecast_skips of the region


@dataclass
class WindowView:
    series: pd.DataFrame     # hourly: metrics and the CSV
    chart: pd.DataFrame      # what the demand chart draws (hourly, or daily for long ranges)
    daily: bool
    backtest: pd.DataFrame
    weather: pd.DataFrame


def load_overview(now: datetime | None = None) -> Overview:
    now = now or current_time()
    with serving.read_connection() as conn:
        if not has_table(conn, "raw_demand"):
            return Overview([], pd.DataFrame(), 0, None)
        return Overview(regions(conn), freshness(conn, now), dead_letter_count(conn),
                        snapshot_published_at(conn), *next_day_summary(conn),
                        skipped=forecast_skips(conn))


def load_scoreboard(now: datetime | None = None) -> Scoreboard:
    now = now or current_time()
    with serving.read_connection() as conn:
        return Scoreboard(overview_table(conn, now), recent_series(conn))


def load_region_span(region: str) -> RegionSpan | None:
    with serving.read_connection() as conn:
        span = demand_range(conn, region)
        if span is None:
            return None
        return RegionSpan(*span, latest_forecast_hour(conn, region), champion_card(conn, region),
                          forecast_horizon(conn, region), next_day(conn, region),
                          forecast_skips(conn, region))


def load_window(region: str, start: datetime, end: datetime, tz: str = "UTC",
                max_hourly_points: int = 24 * 35) -> WindowView:
    with serving.read_connection() as conn:
        series = demand_series(conn, region, start, end)
        daily = len(series) > max_hourly_points
        chart = daily_series(conn, region, start, end, tz) if daily else series
        return WindowView(series, chart, daily, backtest(conn, region),
                          weather_vs_demand(conn, region, start, end))


def weather_provenance(region: str) -> str:
    """Which stations make the region's weather (the catalogue), borrowed ones named as such."""
    entry = get_region(region)
    own = [s.name for s in entry.weather_stations]
    borrowed = [s.name for s in entry.neighbour_stations]
    if own:
        text = (f"{region} weather offline: the mean of its NOAA stations ({', '.join(own)}), "
                "each offset to the region's reference series.")
    elif borrowed:
        text = (f"{region} has no station of its own: offline its weather is the mean of the "
                f"nearest stations within {NEIGHBOUR_RADIUS_KM:,.0f} km ({', '.join(borrowed)}), "
                "each offset to the region's reference series.")
    else:
        text = f"{region} has no station in the catalogue."
    if entry.weather_points:
        text += " Live: Open-Meteo at " + "; ".join(p.name for p in entry.weather_points) + "."
    return text
