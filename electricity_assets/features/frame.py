"""The training / forecasting frame: the two feature tables joined on (region, period_utc)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import duckdb
import pandas as pd

from electricity_assets.features import demand, weather
from electricity_assets.features.common import ensure_exists, to_utc, utc_hour
from electricity_assets.features.forecast_error import WeatherErrorModel, weather_error

FORECAST_PREFIX = "forecast__"
"""Prefix of a weather feature's value as known when the hour's forecast is issued (t - 24 h)."""


def model_frame(conn: duckdb.DuckDBPyConnection, start: datetime, end: datetime,
                regions: Sequence[str] | None = None) -> pd.DataFrame:
    """`demand_features` LEFT JOIN `weather_features` for start <= period_utc < end.

    Every demand row is kept; regions without weather get NULL weather columns. Optionally
    restricted to `regions`. Sorted by region, period_utc.
    """
    start_ts, end_ts = utc_hour(start, "start"), utc_hour(end, "end")
    ensure_exists(conn, demand.SCHEMA, weather.SCHEMA)
    weather_cols = ", ".join(f"w.{c}" for c in weather.COLUMNS if c not in ("region", "period_utc"))
    params: dict[str, object] = {"start": start_ts, "end": end_ts}
    region_filter = ""
    if regions is not None:
        region_filter = "AND d.region IN (SELECT unnest($regions))"
        params["regions"] = list(regions)
    frame = conn.execute(f"""
        SELECT d.*, {weather_cols}
        FROM {demand.TABLE} d
        LEFT JOIN {weather.TABLE} w USING (region, period_utc)
        WHERE d.period_utc >= $start AND d.period_utc < $end {region_filter}
        ORDER BY d.region, d.period_utc
    """, params).df()
    return to_utc(frame)


def with_forecast_weather(conn: duckdb.DuckDBPyConnection, frame: pd.DataFrame,
                          error_model: WeatherErrorModel | None = None) -> pd.DataFrame:
    """`frame` plus, for every weather feature, `forecast__<feature>`: its value as known at the
    issue time, with the simulated day-ahead forecast error (`features.forecast_error`) on the
    hours after it. Training fits on the observed columns and calibrates its interval on these;
    the backtest scores with them (ex-ante) and with the observed ones (ex-post)."""
    if frame.empty:
        return frame
    start = frame["period_utc"].min()
    end = frame["period_utc"].max() + pd.Timedelta(hours=1)
    series = weather.region_weather(conn, start - weather.LOOKBACK, end)
    series = series[series["region"].isin(frame["region"].unique())]
    if series.empty:
        return frame
    forecast = weather.forecast_weather_features(
        series, weather_error(series, error_model), start, weather.weather_normalisation(conn))
    columns = {c: FORECAST_PREFIX + c for c in weather.WEATHER_FEATURE_COLUMNS}
    forecast = forecast[["region", "period_utc", *columns]].rename(columns=columns)
    return frame.merge(forecast, on=["region", "period_utc"], how="left")


def forecast_inputs(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with each weather feature replaced by its value at issue time where the frame
    carries one (`with_forecast_weather`); unchanged otherwise."""
    columns = [c for c in weather.WEATHER_FEATURE_COLUMNS if FORECAST_PREFIX + c in frame]
    return frame.assign(**{c: frame[FORECAST_PREFIX + c] for c in columns}) if columns else frame
