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
from electricity_assets.modeling import metrics
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


DAY_AHEAD = "forecasts_24h"
"""The 24 h-ahead slice of `demand_forecasts` (one row per region and hour, like EIA's DF), a
table of the serving snapshot; read from `demand_forecasts` itself without a snapshot."""


def day_ahead(conn: Conn) -> str | None:
    """The relation holding the 24 h-ahead forecasts, None while there are none."""
    if has_table(conn, DAY_AHEAD):
        return DAY_AHEAD
    if has_table(conn, "demand_forecasts"):
        return ("(SELECT region, period_utc, forecast_mwh, p10_mwh, p90_mwh, model_name, "
                "model_version, issue_utc AS issued_at, created_at FROM demand_forecasts "
                "WHERE horizon_h = 24)")
    return None


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
    relation = day_ahead(conn)
    if relation is None:
        return None
    value = _q(conn, f"SELECT max(period_utc) AS last FROM {relation} WHERE region = ?",
                          [region])["last"].iloc[0]
    return None if pd.isna(value) else value.to_pydatetime()


def demand_series(conn: Conn, region: str, start: datetime, end: datetime) -> pd.DataFrame:
    """Hourly actual, EIA DF, model forecast with P10/P90, and seasonal naive in [start, end)."""
    relation = day_ahead(conn)
    with_forecasts = relation is not None
    forecast_cols = ("f.forecast_mwh, f.p10_mwh, f.p90_mwh, f.model_version" if with_forecasts
                     else "NULL::DOUBLE AS forecast_mwh, NULL::DOUBLE AS p10_mwh, "
                          "NULL::DOUBLE AS p90_mwh, NULL::VARCHAR AS model_version")
    forecast_join = (f"LEFT JOIN {relation} f ON f.region = ? AND f.period_utc = h.period_utc"
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
    """MdAPE, MAPE and MAE of model, EIA DF and seasonal naive (`modeling.metrics`' rule).

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
        m = metrics.error_metrics(scored["actual_mwh"], scored[column])
        rows.append({"forecast": label, "hours": m["hours"], "MdAPE %": m["mdape"],
                     "MAPE %": m["mape"], "MAE MWh": m["mae"]})
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
    relation = day_ahead(conn)
    with_forecasts = relation is not None
    forecast_cols = ("avg(f.forecast_mwh) AS forecast_mwh, avg(f.p10_mwh) AS p10_mwh, "
                     "avg(f.p90_mwh) AS p90_mwh" if with_forecasts else
                     "NULL::DOUBLE AS forecast_mwh, NULL::DOUBLE AS p10_mwh, "
                     "NULL::DOUBLE AS p90_mwh")
    forecast_join = (f"LEFT JOIN {relation} f ON f.region = d.region "
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
    period_utc); NULL columns while `forecasts_24h` does not exist yet."""
    relation = day_ahead(conn)
    if relation is None:
        return ("NULL::DOUBLE AS forecast_mwh, NULL::DOUBLE AS p10_mwh, "
                "NULL::DOUBLE AS p90_mwh", "")
    return ("f.forecast_mwh, f.p10_mwh, f.p90_mwh",
            f"LEFT JOIN {relation} f ON f.region = d.region AND f.period_utc = d.period_utc")


def _last_hours(conn: Conn) -> pd.DataFrame:
    """Per region: the last hour with a positive actual and the last one with a model forecast
    and an actual (the end of what can be scored)."""
    relation = day_ahead(conn)
    with_forecasts = relation is not None
    scored = (f"(SELECT max(f.period_utc) FROM {relation} f JOIN raw_demand r "
              "ON r.region = f.region AND r.period_utc = f.period_utc AND r.type = 'D' "
              "AND r.value_mwh > 0 WHERE f.region = a.region)" if with_forecasts
              else "NULL::TIMESTAMPTZ")
    return _q(conn, f"""
        SELECT a.region, a.last_actual, {scored} AS last_scored
        FROM (SELECT region, max(period_utc) AS last_actual FROM raw_demand
              WHERE type = 'D' AND value_mwh > 0 GROUP BY region) a ORDER BY a.region""")


SCORE_COLUMNS = ["region", "window_start", "window_end", "model_hours", "model_mdape",
                 "df_mdape", "naive_mdape", "coverage_p10_p90"]


def recent_scores(conn: Conn, days: int = OVERVIEW_DAYS) -> pd.DataFrame:
    """Median APE of model, EIA DF and seasonal naive and the P10-P90 coverage, per region, over
    the `days` days that end at its last scored hour (its last actual hour if it has no forecast).

    The same rules as `error_metrics`: hours with a positive actual; with any model forecast in
    the window all three are scored on the model's hours only. SQL picks the hours, the scores
    are `modeling.metrics`' (one rule for every error figure).
    """
    ends = _last_hours(conn)
    ends["window_end"] = ends["last_scored"].fillna(ends["last_actual"]) + pd.Timedelta(hours=1)
    if ends.empty:
        return pd.DataFrame(columns=SCORE_COLUMNS)
    ends["window_start"] = ends["window_end"] - pd.Timedelta(days=days)
    since = ends["window_start"].min() - pd.Timedelta(hours=SEASONAL_LAG_HOURS)
    forecast_cols, forecast_join = _forecast_columns(conn)
    conn.register("_windows", ends[["region", "window_start", "window_end"]])
    try:
        hours = _q(conn, f"""
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
            )
            SELECT * FROM (SELECT *, bool_or(forecast_mwh IS NOT NULL)
                           OVER (PARTITION BY region) AS has_model FROM h)
            WHERE forecast_mwh IS NOT NULL OR NOT has_model
            ORDER BY region""", [since])
    finally:
        conn.unregister("_windows")
    return pd.DataFrame([_scores(region, rows) for region, rows in hours.groupby("region")],
                        columns=SCORE_COLUMNS)


def _scores(region: str, rows: pd.DataFrame) -> dict:
    """One overview row: the region's window and its scores over the hours `rows`."""
    mdape = {who: metrics.error_metrics(rows["actual_mwh"], rows[column])["mdape"]
             for who, column in (("model", "forecast_mwh"), ("df", "eia_df_mwh"),
                                 ("naive", "naive_mwh"))}
    return {"region": region, "window_start": rows["window_start"].min(),
            "window_end": rows["window_end"].min(),
            "model_hours": int(rows["forecast_mwh"].notna().sum()),
            **{f"{who}_mdape": value for who, value in mdape.items()},
            "coverage_p10_p90": metrics.interval_coverage(rows["actual_mwh"], rows["p10_mwh"],
                                                          rows["p90_mwh"])}


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
    relation = day_ahead(conn)
    if relation is None:
        return pd.DataFrame(columns=["period_utc", "forecast_mwh", "p10_mwh", "p90_mwh",
                                     "model_version", "issued_at", "actual_mwh"])
    return _q(conn, f"""
        SELECT f.period_utc, f.forecast_mwh, f.p10_mwh, f.p90_mwh, f.model_version, f.issued_at,
               d.value_mwh AS actual_mwh
        FROM (SELECT * FROM {relation} WHERE region = ?
              ORDER BY period_utc DESC LIMIT ?) f
        LEFT JOIN raw_demand d ON d.region = ? AND d.period_utc = f.period_utc AND d.type = 'D'
        ORDER BY f.period_utc""", [region, hours, region])


VINTAGE_ISSUES = 6  # earlier issues drawn beside the newest one in "Next hours"


@dataclass
class NextDay:
    """The newest issue of `demand_forecasts` for one region (its 1-48 h path)."""
    rows: pd.DataFrame           # period_utc, horizon_h, forecast/p10/p90, model_version, ...
    context: pd.DataFrame        # period_utc, actual_mwh: the observed day before them
    issued_at: datetime | None   # of the newest issue (also when this region has no rows)
    data_until: datetime | None  # the region's latest observed demand hour
    reason: str | None           # why the region has no rows in the newest issue
    # The earlier issues' forecasts of the same hours: issue_utc, period_utc, forecast_mwh.
    vintages: pd.DataFrame = field(default_factory=pd.DataFrame)


def _newest_issue(conn: Conn) -> datetime | None:
    sources = [t for t in ("demand_forecasts", "forecast_skips") if has_table(conn, t)]
    if not sources:
        return None
    union = " UNION ALL ".join(f"SELECT max(issue_utc) AS i FROM {t}" for t in sources)
    value = _q(conn, f"SELECT max(i) AS issued FROM ({union})")["issued"].iloc[0]
    return None if pd.isna(value) else value.to_pydatetime()


def next_day(conn: Conn, region: str, context_hours: int = HORIZON_HOURS) -> NextDay:
    """The region's newest issue (up to 48 forecast hours), the actuals of the `context_hours`
    before them, the last issues' forecasts of the same hours, and why there are none if so."""
    empty = pd.DataFrame(columns=["period_utc", "forecast_mwh", "p10_mwh", "p90_mwh"])
    if not has_table(conn, "demand_forecasts"):
        return NextDay(empty, empty, None, None, None)
    newest = _newest_issue(conn)
    rows = _q(conn, """
        SELECT period_utc, horizon_h, forecast_mwh, p10_mwh, p90_mwh, model_version,
               weather_input, issue_utc AS issued_at, data_until_utc
        FROM demand_forecasts
        WHERE region = ? AND issue_utc = (SELECT max(issue_utc) FROM demand_forecasts
                                          WHERE region = ?)
        ORDER BY period_utc""", [region, region])
    reason = None
    if has_table(conn, "forecast_skips") and newest is not None:
        found = _q(conn, "SELECT reason FROM forecast_skips WHERE region = ? AND issue_utc = ?",
                   [region, newest])
        reason = found["reason"].iloc[0] if len(found) else None
    if rows.empty:
        return NextDay(empty, empty, newest, None, reason)
    issued = rows["issued_at"].iloc[0]
    until = rows["data_until_utc"].iloc[0]
    context = _q(conn, """
        SELECT period_utc, value_mwh AS actual_mwh FROM raw_demand
        WHERE region = ? AND type = 'D' AND period_utc > ? AND period_utc <= ?
        ORDER BY period_utc""", [region, until - pd.Timedelta(hours=context_hours), until])
    vintages = _q(conn, """
        SELECT issue_utc, period_utc, forecast_mwh FROM demand_forecasts
        WHERE region = ? AND period_utc >= ? AND issue_utc < ?
          AND issue_utc >= ? - INTERVAL (?) HOUR
        ORDER BY issue_utc, period_utc""", [region, issued, issued, issued, VINTAGE_ISSUES])
    # A newer issue left this region out (its reason is shown): the rows are an older issue's.
    stale_reason = reason if newest is not None and issued < newest else None
    return NextDay(rows, context, issued.to_pydatetime(), until.to_pydatetime(), stale_reason,
                   vintages)


def next_day_summary(conn: Conn) -> tuple[datetime | None, int]:
    """Time of the newest issue and how many regions it forecasts."""
    newest = _newest_issue(conn)
    if newest is None or not has_table(conn, "demand_forecasts"):
        return newest, 0
    row = _q(conn, "SELECT count(DISTINCT region) AS regions FROM demand_forecasts "
                   "WHERE issue_utc = ?", [newest]).iloc[0]
    return newest, int(row["regions"])


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
                        snapshot_published_at(conn), *next_day_summary(conn))


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
                          forecast_horizon(conn, region), next_day(conn, region))


MAX_HOURLY_POINTS = 24 * 35
"""Above this many hours the demand chart shows DuckDB's daily means instead of every hour."""


def load_window(region: str, start: datetime, end: datetime, tz: str = "UTC",
                max_hourly_points: int = MAX_HOURLY_POINTS) -> WindowView:
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
