"""One LightGBM booster for every region, the region a categorical feature: the comparison
`bench/forecast_accuracy.py --compare-global` prints next to the per-region models."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import lightgbm as lgb
import numpy as np
import pandas as pd

from electricity_assets.features.frame import forecast_inputs
from electricity_assets.modeling.backtest import BacktestResult, folds, summarise
from electricity_assets.modeling.training import (
    InsufficientDataError,
    TrainingConfig,
    evaluation_frame,
    model_inputs,
    predict_frame,
    refit,
    scale_of,
    usable_features,
)

REGION_FEATURE = "region_index"


@dataclass
class GlobalModel:
    """One booster for all regions, with the region as a categorical feature (for comparison)."""

    booster: lgb.Booster
    feature_columns: list[str]  # the last one is REGION_FEATURE
    regions: list[str]
    residuals: dict[str, tuple[float, float]]  # per-region conformal offsets


def _with_region_index(frame: pd.DataFrame, regions: list[str]) -> pd.DataFrame:
    index = {r: float(i) for i, r in enumerate(regions)}
    return frame.assign(**{REGION_FEATURE: frame["region"].map(index).astype(float)})


def train_global(frame: pd.DataFrame, config: TrainingConfig | None = None) -> GlobalModel:
    """One model over every region of `frame`; validation = the last weeks of the whole frame."""
    config = config or TrainingConfig()
    regions = sorted(frame["region"].unique())
    data = _with_region_index(frame.assign(_scale=scale_of(frame)), regions)
    data = data[data["demand_mwh"].notna() & data["_scale"].notna()]
    validation_start = data["period_utc"].max() + timedelta(hours=1) - timedelta(
        weeks=config.validation_weeks)
    train = data[data["period_utc"] < validation_start]
    valid = data[data["period_utc"] >= validation_start]
    if len(train) < config.min_train_hours or len(valid) < config.min_validation_hours:
        raise InsufficientDataError(f"global model: {len(train)} training hours, too few")
    features = [*usable_features(frame, z_scores=True), REGION_FEATURE]
    y_train = train["demand_mwh"] / train["_scale"]
    y_valid = valid["demand_mwh"] / valid["_scale"]
    valid = forecast_inputs(valid)
    if config.fit_on_forecast_weather:
        train = forecast_inputs(train)
    x_train, x_valid = model_inputs(train, features), model_inputs(valid, features)
    train_set = lgb.Dataset(x_train, y_train, categorical_feature=[REGION_FEATURE])
    valid_set = lgb.Dataset(x_valid, y_valid, reference=train_set)
    booster = lgb.train(
        config.params, train_set, num_boost_round=config.num_boost_round,
        valid_sets=[valid_set], callbacks=[lgb.early_stopping(config.early_stopping_rounds,
                                                              verbose=False)])
    residual = y_valid - booster.predict(x_valid, num_iteration=booster.best_iteration)
    if config.refit:
        booster = refit(config, booster, (x_train, x_valid), (y_train, y_valid),
                        categorical_feature=[REGION_FEATURE])
    residuals = {
        r: tuple(float(np.quantile(residual[valid["region"] == r], q)) for q in config.interval)
        for r in regions if (valid["region"] == r).any()
    }
    return GlobalModel(booster, features, regions, residuals)


def predict_global(model: GlobalModel, frame: pd.DataFrame) -> pd.DataFrame:
    """Like `predict_frame`, for every region the global model knows (others get NaN)."""
    parts = []
    for region, rows in _with_region_index(frame, model.regions).groupby("region", sort=False):
        low, high = model.residuals.get(str(region), (np.nan, np.nan))
        parts.append(predict_frame(model.booster, model.feature_columns, low, high, rows))
    return pd.concat(parts).reindex(frame.index)


def backtest_global(frame: pd.DataFrame, weeks: int = 8, refit_weeks: int = 1,
                    config: TrainingConfig | None = None, end: datetime | None = None
                    ) -> BacktestResult:
    """The same backtest with one global model (region as a categorical feature)."""
    parts = []
    for origin, history, rows in folds(frame, weeks, refit_weeks, end):
        model = train_global(history, config)
        parts.append(evaluation_frame(rows, predict_global(model, forecast_inputs(rows)))
                     .assign(origin=origin))
    hourly = pd.concat(parts, ignore_index=True)
    return BacktestResult(summary=summarise(hourly), hourly=hourly)
