"""Forecasts from the newest hour, 1-48 h ahead: the interface the assets use.

- `issue_frame(conn, issues, regions, exante=...)`: one row per (region, issue_utc, horizon_h)
  with the inputs known at each issue (`features.issue`);
- `train_horizon_model(frame, config)` / `predict_horizons(model, frame)`: one LightGBM per
  region, P10/P90 per horizon bucket (`modeling.horizon_model`);
- `train_and_register_horizons(conn, cutoff, config)`, `load_horizon_champion(region, config)`:
  MLflow family `demand-horizons-<REGION>` (`modeling.horizon_registry`);
- `issuing.forecast_issues(...)`: every region's next 48 hours from each issue of a window,
  skipped regions with their reason (`modeling.issuing`);
- `day_ahead_slice(region, day, issue_local_hour)`: the day-ahead product's issue and hours.

`horizon_h` h: `period_utc = issue_utc + (h - 1) hours`; h = 1 is the first hour not known when
every hour before the issue is in.
"""

from electricity_assets.features.issue import (
    COLUMNS,
    FEATURE_COLUMNS,
    HORIZON_HOURS,
    issue_frame,
)
from electricity_assets.modeling.horizon_model import (
    BUCKETS,
    HorizonConfig,
    HorizonModel,
    HorizonPredictor,
    bucket_of,
    day_ahead_slice,
    horizon_model_name,
    predict_horizons,
    train_horizon_model,
    training_issues,
)
from electricity_assets.modeling.horizon_registry import (
    HorizonReport,
    horizon_training_frame,
    load_horizon_champion,
    log_and_register_horizon,
    register_horizons,
    train_and_register_horizons,
)

__all__ = [
    "BUCKETS", "COLUMNS", "FEATURE_COLUMNS", "HORIZON_HOURS", "HorizonConfig",
    "HorizonModel", "HorizonPredictor", "HorizonReport", "bucket_of",
    "day_ahead_slice", "horizon_model_name", "horizon_training_frame",
    "issue_frame", "load_horizon_champion", "log_and_register_horizon",
    "predict_horizons", "register_horizons", "train_and_register_horizons",
    "train_horizon_model", "training_issues",
]
