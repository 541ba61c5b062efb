"""24-hour-ahead forecasts from each region's champion, as rows of the `demand_forecasts` table."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import duckdb
import mlflow.pyfunc
import pandas as pd

from electricity_assets import storage
from electricity_assets.features import model_frame
from electricity_assets.modeling.registry import (
    MlflowConfig,
    load_champions,
    model_name,
)
from electricity_assets.modeling.training import model_inputs

logger = logging.getLogger(__name__)

HORIZON = timedelta(hours=24)
FORECAST_COLUMNS = ["region", "period_utc", "forecast_mwh", "p10_mwh", "p90_mwh", "model_name",
                    "model_version", "issued_at", "created_at"]


@dataclass
class ForecastBatch:
    rows: pd.DataFrame
    skipped: dict[str, str] = field(default_factory=dict)  # region -> why it has no forecast
    in_sample: dict[str, int] = field(default_factory=dict)  # region -> hours before cut-off

    @property
    def regions(self) -> list[str]:
        """The regions forecast: the only ones whose stored rows a write may replace."""
        return sorted(self.rows["region"].unique())


def predict_mwh(model: mlflow.pyfunc.PyFuncModel, frame: pd.DataFrame) -> pd.DataFrame:
    """forecast_mwh / p10_mwh / p90_mwh from a registered model, for model-frame rows."""
    names = model.metadata.get_input_schema().input_names()
    return model.predict(model_inputs(frame, names)).set_axis(frame.index)


def forecast_window(conn: duckdb.DuckDBPyConnection, start: datetime, end: datetime,
                    config: MlflowConfig) -> ForecastBatch:
    """Every region's champion forecast for start <= period_utc < end.

    A region whose champion is missing or cannot be loaded is skipped with its reason, the
    others are forecast; hours without any known level (no demand 24 h+ earlier) get no row.
    """
    frame = model_frame(conn, start, end)
    created_at = pd.Timestamp(datetime.now(UTC))
    parts: list[pd.DataFrame] = []
    models, skipped = load_champions(sorted(frame["region"].unique()), config)
    in_sample: dict[str, int] = {}
    for region, rows in frame.groupby("region", sort=True):
        if region not in models:
            continue
        version, model, cutoff = models[str(region)]
        if cutoff is not None and (inside := int((rows["period_utc"] < cutoff).sum())):
            in_sample[str(region)] = inside  # the model saw these hours: not a real forecast
        predicted = predict_mwh(model, rows)
        out = pd.DataFrame({
            "region": rows["region"],
            "period_utc": rows["period_utc"],
            **{c: predicted[c].astype(float) for c in ("forecast_mwh", "p10_mwh", "p90_mwh")},
            "model_name": model_name(str(region)),
            "model_version": version,
            "issued_at": rows["period_utc"] - HORIZON,
            "created_at": created_at,
        })
        missing = out["forecast_mwh"].isna()
        if missing.all():
            skipped[str(region)] = "no demand history 24 h before these hours"
        parts.append(out[~missing])
    rows = (pd.concat(parts, ignore_index=True) if parts
            else pd.DataFrame({c: pd.Series(dtype=object) for c in FORECAST_COLUMNS}))
    for region, reason in skipped.items():
        logger.warning("no forecast for %s: %s", region, reason)
    return ForecastBatch(rows=rows[FORECAST_COLUMNS], skipped=skipped, in_sample=in_sample)


def write_forecasts(conn: duckdb.DuckDBPyConnection, batch: ForecastBatch, start: datetime,
                    end: datetime) -> int:
    """Store the window's forecasts of the regions forecast (a skipped region keeps its stored
    rows) and the skipped regions with their reasons (`demand_forecasts_skipped`)."""
    written = storage.replace_window(conn, storage.DEMAND_FORECASTS, batch.rows, start, end,
                                     regions=batch.regions)
    storage.replace_skipped(conn, storage.DEMAND_FORECASTS_SKIPPED, batch.skipped,
                            window_start=start, window_end=end)
    return written
