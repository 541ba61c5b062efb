"""Forecasts for the 24 hours after each region's latest observed demand hour, issued at the
data clock (`next_day_forecasts`).

Only what is known at the issue time I goes in. The inputs are rebuilt in a private in-memory
DuckDB that holds nothing else: raw demand and raw weather with period_utc < I (plus each
region's feature lookback), the fitted station offsets and z-score statistics, and the *weather
outlook* for the hours from I on. Rows of the live database at or after I (e.g. hours a Kafka
replay published ahead of the clock) never reach it.

- Demand features of hour t use demand at or before t - 24 h (`features.demand`), so the hours
  (L, L + 24 h] after a region's latest observed hour L are exactly the hours a 24-hour-ahead
  forecast exists for.
- Weather of the hours from I on is a forecast in real use. The outlook comes from the
  configured source for the forecast hours and fills every station hour from I on, and before
  I only those the raw weather lacks (hours not ingested yet): live (api mode) the Open-Meteo
  forecast API, used as it is; offline (bundled replay) the replay file's *observations* of
  those hours plus the simulated day-ahead forecast error of `features.forecast_error`, through
  the same `forecast_weather_features` the training calibrates its P10-P90 interval on and the
  backtest scores ex-ante with (so, as there, the error covers the 24 hours before each hour,
  a little more than the hours after I: the interval errs wide, not narrow).
- A region whose model uses weather gets no row for an hour without weather (the outlook ends,
  or the API failed), and is skipped with the reason when none of its hours has any: never a
  forecast on a silently missing or shifted value. A region without weather in its model
  (no stations in the catalogue) is forecast from demand and calendar alone, as it was trained.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import duckdb
import pandas as pd

from electricity_assets import storage
from electricity_assets.features import demand, weather
from electricity_assets.features.common import ensure_exists, to_utc
from electricity_assets.features.forecast_error import weather_error
from electricity_assets.modeling.forecasting import predict_mwh
from electricity_assets.modeling.registry import (
    Champion,
    MlflowConfig,
    load_champions,
    model_name,
)
from electricity_assets.sources.http import SourceError

logger = logging.getLogger(__name__)

HORIZON = timedelta(hours=demand.FORECAST_HORIZON_HOURS)
MAX_DATA_AGE = timedelta(days=7)  # a region silent for longer gets no "next day"
COLUMNS = storage.NEXT_DAY_FORECASTS.column_names
SIMULATED = "observed + simulated day-ahead error (offline replay)"
FORECAST = "weather forecast (Open-Meteo)"
NO_WEATHER = "none (the region's model uses no weather)"

Connect = Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]
Outlook = Callable[[datetime, datetime], pd.DataFrame]
"""Raw weather rows (the `raw_weather` columns) for start <= period_utc < end, from the source."""


@dataclass
class NextDayBatch:
    issued_at: datetime
    rows: pd.DataFrame
    data_until: dict[str, datetime] = field(default_factory=dict)  # region -> latest D hour
    skipped: dict[str, str] = field(default_factory=dict)  # region -> why it has no forecast
    notes: dict[str, str] = field(default_factory=dict)    # region -> hours left out and why


def issue_time(data_clock: datetime) -> datetime:
    """The hour a forecast is issued at: the data clock's hour (its data ends just before)."""
    return pd.Timestamp(data_clock).tz_convert("UTC").floor("h").to_pydatetime()


def latest_demand_hours(conn: duckdb.DuckDBPyConnection, issued_at: datetime
                        ) -> dict[str, datetime]:
    """Each region's latest hour with a reported demand (type D) before `issued_at`."""
    ensure_exists(conn, "raw_demand")
    rows = conn.execute("""
        SELECT region, max(period_utc) FROM raw_demand
        WHERE type = 'D' AND value_mwh IS NOT NULL AND period_utc < $issued
        GROUP BY region ORDER BY region""", {"issued": issued_at}).fetchall()
    return {r: pd.Timestamp(t).tz_convert("UTC").to_pydatetime() for r, t in rows}


def _copy(source: duckdb.DuckDBPyConnection, target: duckdb.DuckDBPyConnection, table: str,
          sql: str, params: dict | None = None) -> None:
    frame = source.execute(sql, params or {}).df()
    target.register("_copied", frame)
    try:
        target.execute(f"CREATE TABLE {table} AS SELECT * FROM _copied")
    finally:
        target.unregister("_copied")


def known_at_issue(conn: duckdb.DuckDBPyConnection, issued_at: datetime, first_hour: datetime,
                   outlook: pd.DataFrame) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the raw rows before `issued_at` that the features of hours from
    `first_hour` on read, the fitted weather statistics, and the `outlook` rows for the station
    hours the raw weather lacks (every hour from `issued_at` on; before it, hours not ingested
    yet)."""
    ensure_exists(conn, "raw_demand", "raw_weather", weather.NORMALISATION_SCHEMA,
                  weather.OFFSETS_SCHEMA)
    ws = duckdb.connect()
    ws.execute("SET TimeZone = 'UTC'")
    window = {"issued": issued_at}
    _copy(conn, ws, "raw_demand", "SELECT * FROM raw_demand WHERE period_utc >= $from "
          "AND period_utc < $issued", {**window, "from": first_hour - demand.LOOKBACK})
    _copy(conn, ws, "raw_weather", "SELECT * FROM raw_weather WHERE period_utc >= $from "
          "AND period_utc < $issued", {**window, "from": first_hour - weather.LOOKBACK})
    for table in (weather.NORMALISATION_TABLE, weather.OFFSETS_TABLE):
        _copy(conn, ws, table, f"SELECT * FROM {table}")
    if len(outlook):
        columns = [c for c in outlook.columns if c in storage.RAW_WEATHER.column_names
                   and c != "ingested_at"]
        ws.register("_outlook", outlook[columns])
        listed = ", ".join(columns)
        ws.execute(f"""INSERT INTO raw_weather ({listed}, ingested_at)
            SELECT {listed}, $issued FROM _outlook o
            WHERE o.period_utc >= $first
              AND NOT EXISTS (SELECT 1 FROM raw_weather r
                              WHERE r.station = o.station AND r.period_utc = o.period_utc)""",
                   {"issued": issued_at, "first": first_hour})
        ws.unregister("_outlook")
    return ws


def _weather_frame(ws: duckdb.DuckDBPyConnection, first_hour: datetime, end: datetime,
                   simulate_error: bool) -> pd.DataFrame:
    series = weather.region_weather(ws, first_hour - weather.LOOKBACK, end)
    normalisation = weather.weather_normalisation(ws)
    if simulate_error:
        return weather.forecast_weather_features(series, weather_error(series), first_hour,
                                                 normalisation)
    return weather.weather_feature_frame(series, first_hour, normalisation)


def _model_frame(connect: Connect, issued_at: datetime, first_hour: datetime, end: datetime,
                 outlook: Outlook, simulate_error: bool) -> tuple[pd.DataFrame, str | None]:
    """Demand and weather features for first_hour <= period_utc < end as known at `issued_at`,
    and why the outlook failed, if it did."""
    outlook_error = None
    try:
        ahead = outlook(first_hour, end)
    except (SourceError, OSError) as exc:  # an outage: regions with weather are skipped with it
        logger.warning("weather outlook unavailable: %s", exc)
        outlook_error, ahead = str(exc), pd.DataFrame()
    with connect() as conn:
        ws = known_at_issue(conn, issued_at, first_hour, ahead)
    try:
        features = demand.compute_demand_features(ws, first_hour, end)
        weather_rows = _weather_frame(ws, first_hour, end, simulate_error)
    finally:
        ws.close()
    if len(features) and len(weather_rows):
        return features.merge(weather_rows, on=["region", "period_utc"], how="left"), outlook_error
    missing = {c: float("nan") for c in weather.COLUMNS if c not in features}
    return features.assign(**missing), outlook_error


def _region_forecast(region: str, rows: pd.DataFrame, champion: Champion,
                     weather_label: str, outlook_error: str | None
                     ) -> tuple[pd.DataFrame | None, str | None, str | None]:
    """(rows, why skipped, note) for one region's hours with its champion."""
    if rows.empty:
        return None, "no demand features for its next 24 hours", None
    version, model, _ = champion
    inputs = set(model.metadata.get_input_schema().input_names())
    uses_weather = bool(inputs & set(weather.WEATHER_FEATURE_COLUMNS))
    note = None
    if uses_weather:
        no_weather = rows["temperature_c"].isna()
        if no_weather.all():
            why = f"({outlook_error})" if outlook_error else "(the weather outlook has none)"
            return None, f"no weather for its next 24 hours {why}", None
        if no_weather.any():
            note = f"{int(no_weather.sum())} hours without weather left out"
        rows = rows[~no_weather]
    predicted = predict_mwh(model, rows)
    out = pd.DataFrame({
        "region": region, "period_utc": rows["period_utc"],
        **{c: predicted[c].astype(float) for c in ("forecast_mwh", "p10_mwh", "p90_mwh")},
        "model_name": model_name(region), "model_version": version,
        "weather_input": weather_label if uses_weather else NO_WEATHER,
    })
    missing = out["forecast_mwh"].isna()
    if missing.all():
        return None, "no demand 24 h before these hours (a gap in the data)", note
    return out[~missing], None, note


def next_day_forecasts(connect: Connect, issued_at: datetime, config: MlflowConfig,
                       outlook: Outlook, simulate_error: bool) -> NextDayBatch:
    """Each region's champion forecast for the 24 hours after its latest observed demand hour,
    with data before `issued_at` only. `outlook(start, end)` gives the raw weather of the hours
    from `issued_at` on; `simulate_error` adds the simulated day-ahead error (replay).

    `connect()` opens the database twice, briefly (to find the hours, then to copy the inputs):
    the outlook's HTTP call and the champions' loading hold no DuckDB lock."""
    issued_at = issue_time(issued_at)
    with connect() as conn:
        latest = latest_demand_hours(conn, issued_at)
    skipped = {r: f"latest demand {t:%Y-%m-%d %H:%M} UTC is more than "
                  f"{MAX_DATA_AGE.days} days before the issue time"
               for r, t in latest.items() if issued_at - t > MAX_DATA_AGE}
    current = {r: t for r, t in latest.items() if r not in skipped}
    if not current:
        return NextDayBatch(issued_at, _empty(), latest, skipped)
    first_hour = min(current.values()) + timedelta(hours=1)
    end = max(current.values()) + HORIZON + timedelta(hours=1)
    frame, outlook_error = _model_frame(connect, issued_at, first_hour, end, outlook,
                                        simulate_error)
    label = SIMULATED if simulate_error else FORECAST
    parts, notes = [], {}
    champions, unloadable = load_champions(sorted(current), config)
    skipped.update(unloadable)
    for region, last in sorted(current.items()):
        if region not in champions:
            continue
        rows = frame[(frame["region"] == region) & (frame["period_utc"] > last)
                     & (frame["period_utc"] <= last + HORIZON)] if len(frame) else frame
        out, why, note = _region_forecast(region, rows, champions[region], label,
                                          outlook_error)
        if note:
            notes[region] = note
        if why:
            skipped[region] = why
        else:
            parts.append(out.assign(issued_at=pd.Timestamp(issued_at),
                                    data_until_utc=pd.Timestamp(last)))
    rows = (pd.concat(parts, ignore_index=True).assign(created_at=pd.Timestamp(datetime.now(UTC)))
            if parts else _empty())
    return NextDayBatch(issued_at, to_utc(rows[COLUMNS]), latest, skipped, notes)


def _empty() -> pd.DataFrame:
    times = ("period_utc", "issued_at", "data_until_utc", "created_at")
    return pd.DataFrame({c: pd.Series(dtype="datetime64[us, UTC]" if c in times else object)
                         for c in COLUMNS})


def replace_forecasts(conn: duckdb.DuckDBPyConnection, batch: NextDayBatch) -> int:
    """The newest issue, in one transaction: the forecasts of the regions it forecast replace
    theirs, and why the others have none replaces the previous list. A skipped region keeps the
    rows of its last issue (their `issued_at` says which): a missing model deletes nothing."""
    skipped = pd.DataFrame({"region": list(batch.skipped), "reason": list(batch.skipped.values()),
                            "issued_at": pd.Timestamp(batch.issued_at)})
    for table in (storage.NEXT_DAY_FORECASTS, storage.NEXT_DAY_SKIPPED):
        storage.ensure_table(conn, table)
    forecast = sorted(batch.rows["region"].unique())
    with storage.transaction(conn):
        conn.execute(f"DELETE FROM {storage.NEXT_DAY_FORECASTS.name} "
                     "WHERE list_contains(?, region)", [forecast])
        conn.execute(f"DELETE FROM {storage.NEXT_DAY_SKIPPED.name}")
        for table, frame in ((storage.NEXT_DAY_FORECASTS, batch.rows),
                             (storage.NEXT_DAY_SKIPPED, skipped)):
            if len(frame):
                storage.insert_frame(conn, table.name, frame)
    return len(batch.rows)
