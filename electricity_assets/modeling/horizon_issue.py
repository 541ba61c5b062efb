"""`forecast_issue`: every region's next 48 hours from one issue hour, on inputs known then.

One issue of `modeling.issuing.forecast_issues` (which the `demand_forecasts` asset runs over
a window of issues): the inputs are rebuilt in a private in-memory DuckDB holding only raw rows
before the issue, plus the weather standing in for the forecast of the hours from the issue on:
live the `outlook(start, end)` rows (the Open-Meteo forecast), offline the replay's observations
(the outlook, or the database's own rows from the issue on when none is given) with the
simulated lead-time error of `features.forecast_error.lead_time_error`. A region whose anchor
hour (the hour before the issue) is missing, or without a model, is skipped with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import nullcontext
from datetime import datetime

import duckdb
import pandas as pd

from electricity_assets.features.common import ensure_exists
from electricity_assets.modeling import issuing
from electricity_assets.modeling.champion_cache import Champion
from electricity_assets.modeling.horizon_model import (
    ISSUE_COLUMNS,
    HorizonModel,
    HorizonPredictor,
    IssueBatch,
    horizon_model_name,
)

Outlook = Callable[[datetime, datetime], pd.DataFrame]


def _database_outlook(conn: duckdb.DuckDBPyConnection) -> Outlook:
    """The database's own weather rows from the issue on (offline: the replay's observations,
    standing in for a forecast once the simulated error is added)."""
    def outlook(start: datetime, end: datetime) -> pd.DataFrame:
        ensure_exists(conn, "raw_weather")
        return conn.execute("SELECT * FROM raw_weather WHERE period_utc >= ? AND "
                            "period_utc < ?", [start, end]).df()
    return outlook


def _predictor(model: object) -> HorizonPredictor:
    if isinstance(model, HorizonModel):
        return model.predictor
    if isinstance(model, HorizonPredictor):
        return model
    raise TypeError(f"expected a HorizonModel or HorizonPredictor, got {type(model).__name__}")


def forecast_issue(conn: duckdb.DuckDBPyConnection, issue_utc: datetime,
                   models: Mapping[str, tuple[str, object]], *, outlook: Outlook | None = None,
                   simulate_error: bool = True) -> IssueBatch:
    """Every region's forecast for horizons 1..48 from `issue_utc` (floored to its hour) with
    `models[region] = (version, HorizonModel | HorizonPredictor)`."""
    issue = pd.Timestamp(issue_utc).tz_convert("UTC").floor("h").to_pydatetime()
    champions = {r: Champion(horizon_model_name(r), str(v), _predictor(m))
                 for r, (v, m) in models.items()}
    batch = issuing.forecast_issues(lambda: nullcontext(conn), [issue], champions, {},
                                    outlook or _database_outlook(conn), simulate_error)
    skipped = dict(zip(batch.skipped["region"], batch.skipped["reason"], strict=True))
    return IssueBatch(issue, batch.rows[ISSUE_COLUMNS].reset_index(drop=True), skipped)
