"""`forecast_issue`: every region's next 48 hours from one issue hour, on inputs known then.

The inputs are rebuilt in a private in-memory DuckDB that holds only raw rows before the issue
(`next_day.known_at_issue`), plus the weather standing in for the forecast of the hours from the
issue on: live the `outlook(start, end)` rows (the Open-Meteo forecast), offline the replay's
observations (the outlook, or the database's own rows from the issue on when none is given) with
the simulated lead-time error of `features.forecast_error.lead_time_error`.

Never a forecast on a missing required input: a region whose newest demand hour is not the hour
before the issue (the anchor is late or implausible), or without a model, is skipped with the
reason; a region whose model uses weather loses the hours without weather (a note), and is
skipped when none has any.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

import duckdb
import pandas as pd

from electricity_assets.features.common import ensure_exists, to_utc
from electricity_assets.features.issue import HORIZON_HOURS, issue_frame
from electricity_assets.modeling.horizon_model import (
    ISSUE_COLUMNS,
    HorizonModel,
    HorizonPredictor,
    IssueBatch,
    horizon_model_name,
    predict_horizons,
)
from electricity_assets.modeling.next_day import (
    FORECAST,
    NO_WEATHER,
    issue_time,
    known_at_issue,
    latest_demand_hours,
)
from electricity_assets.sources.http import SourceError

logger = logging.getLogger(__name__)

Outlook = Callable[[datetime, datetime], pd.DataFrame]
SIMULATED = "observed + simulated forecast error growing with the lead time (offline replay)"


def _database_outlook(conn: duckdb.DuckDBPyConnection, start: datetime, end: datetime
                      ) -> pd.DataFrame:
    """The database's own weather rows from the issue on (offline: the replay's observations,
    standing in for a forecast once the simulated error is added)."""
    ensure_exists(conn, "raw_weather")
    return conn.execute("SELECT * FROM raw_weather WHERE period_utc >= ? AND period_utc < ?",
                        [start, end]).df()


def _predictor(model: object) -> HorizonPredictor:
    if isinstance(model, HorizonModel):
        return model.predictor
    if isinstance(model, HorizonPredictor):
        return model
    raise TypeError(f"expected a HorizonModel or HorizonPredictor, got {type(model).__name__}")


def _empty() -> pd.DataFrame:
    times = ("issue_utc", "period_utc", "data_until_utc")
    return pd.DataFrame({c: pd.Series(dtype="datetime64[us, UTC]" if c in times else object)
                         for c in ISSUE_COLUMNS})


def forecast_issue(conn: duckdb.DuckDBPyConnection, issue_utc: datetime,
                   models: Mapping[str, tuple[str, object]], *, outlook: Outlook | None = None,
                   simulate_error: bool = True) -> IssueBatch:
    """Every region's forecast for horizons 1..48 from `issue_utc` (floored to its hour) with
    `models[region] = (version, HorizonModel | HorizonPredictor)`."""
    issue = pd.Timestamp(issue_time(issue_utc))
    end = issue + timedelta(hours=HORIZON_HOURS)
    latest = latest_demand_hours(conn, issue.to_pydatetime())
    skipped = {r: "no model (materialise trained_models)" for r in latest if r not in models}
    for region in models:
        if region not in latest:
            skipped[region] = "no demand reported before the issue"
    regions = sorted(r for r in latest if r in models)
    if not regions:
        return IssueBatch(issue.to_pydatetime(), _empty(), skipped)
    outlook_error = None
    try:
        ahead = (outlook(issue.to_pydatetime(), end.to_pydatetime()) if outlook is not None
                 else _database_outlook(conn, issue, end))
    except (SourceError, OSError) as exc:  # an outage: regions with weather are skipped with it
        logger.warning("weather outlook unavailable: %s", exc)
        outlook_error, ahead = str(exc), pd.DataFrame()
    ws = known_at_issue(conn, issue.to_pydatetime(), issue.to_pydatetime(), ahead)
    try:
        frame = issue_frame(ws, [issue], regions, exante=simulate_error)
    finally:
        ws.close()
    label = SIMULATED if simulate_error else FORECAST
    parts, notes = [], {}
    anchor = issue - pd.Timedelta(hours=1)
    for region in regions:
        rows = frame[frame["region"] == region]
        if rows.empty or rows["data_until_utc"].iloc[0] != anchor:
            last = latest[region]
            cleaned = "" if rows.empty else f", the newest plausible one " \
                f"{rows['data_until_utc'].iloc[0]:%Y-%m-%d %H:%M}"
            skipped[region] = (f"the anchor hour {anchor:%Y-%m-%d %H:%M} UTC is missing: latest "
                               f"demand {pd.Timestamp(last):%Y-%m-%d %H:%M} UTC{cleaned}")
            continue
        version, model = models[region]
        predictor = _predictor(model)
        if predictor.uses_weather:
            no_weather = rows["temperature_c"].isna()
            if no_weather.all():
                why = f"({outlook_error})" if outlook_error else "(the outlook has none)"
                skipped[region] = f"no weather for its next {HORIZON_HOURS} hours {why}"
                continue
            if no_weather.any():
                notes[region] = f"{int(no_weather.sum())} hours without weather left out"
            rows = rows[~no_weather]
        predicted = predict_horizons(predictor, rows)
        missing = predicted["forecast_mwh"].isna()
        if missing.all():
            skipped[region] = "no demand on the profile day (a gap in the data)"
            continue
        if missing.any():
            notes[region] = (notes.get(region, "") + f"; {int(missing.sum())} hours without a "
                             "profile-day demand left out").lstrip("; ")
        out = rows[["region", "issue_utc", "horizon_h", "period_utc", "data_until_utc"]].assign(
            **{c: predicted[c].astype(float) for c in ("forecast_mwh", "p10_mwh", "p90_mwh")},
            model_name=horizon_model_name(region), model_version=str(version),
            weather_input=label if predictor.uses_weather else NO_WEATHER)
        parts.append(out[~missing])
    result = pd.concat(parts, ignore_index=True) if parts else _empty()
    for column in ("issue_utc", "period_utc", "data_until_utc"):
        result = to_utc(result, column)
    return IssueBatch(issue.to_pydatetime(), result[ISSUE_COLUMNS], skipped, notes)
