"""Pure feature engineering in DuckDB SQL: connection + window in, DataFrame out.

The assets in `assets/features.py` write these frames to the `demand_features` and
`weather_features` tables; `model_frame` reads them back joined for training and forecasting.
"""

from electricity_assets.features.demand import (
    FEATURE_COLUMNS,
    compute_demand_features,
    implausible_counts,
)
from electricity_assets.features.frame import (
    FORECAST_PREFIX,
    forecast_inputs,
    model_frame,
    with_forecast_weather,
)
from electricity_assets.features.weather import (
    OBSERVED_AT_ISSUE,
    WEATHER_FEATURE_COLUMNS,
    compute_weather_features,
    default_normalisation_cutoff,
    fit_weather_statistics,
    region_weather,
    weather_feature_frame,
    weather_normalisation,
)

__all__ = [
    "FEATURE_COLUMNS",
    "FORECAST_PREFIX",
    "OBSERVED_AT_ISSUE",
    "WEATHER_FEATURE_COLUMNS",
    "compute_demand_features",
    "compute_weather_features",
    "default_normalisation_cutoff",
    "fit_weather_statistics",
    "forecast_inputs",
    "implausible_counts",
    "model_frame",
    "region_weather",
    "weather_feature_frame",
    "weather_normalisation",
    "with_forecast_weather",
]
