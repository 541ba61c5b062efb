"""The registered MLflow model: feature rows in, MWh forecast with its P10/P90 out.

Wrapping the LightGBM booster in a pyfunc keeps the ratio target and the conformal offsets inside
the artifact, so `mlflow.pyfunc.load_model("models:/demand-CAL@champion").predict(rows)` returns
MWh directly and nobody has to know how the model was parameterised.
"""

from __future__ import annotations

import lightgbm as lgb
import mlflow.pyfunc
import pandas as pd

from electricity_assets.modeling.training import RegionModel, predict_frame


class DemandForecaster(mlflow.pyfunc.PythonModel):
    """Pickled with the booster as text (LightGBM's own stable format)."""

    def __init__(self, model_text: str, feature_columns: list[str], residual_low: float,
                 residual_high: float, region: str, spread_typical: float | None = None) -> None:
        self.model_text = model_text
        self.feature_columns = list(feature_columns)
        self.residual_low = residual_low
        self.residual_high = residual_high
        self.region = region
        self.spread_typical = spread_typical
        self._booster: lgb.Booster | None = None

    @classmethod
    def from_region_model(cls, model: RegionModel) -> DemandForecaster:
        return cls(model.booster.model_to_string(num_iteration=model.best_iteration),
                   model.feature_columns, model.residual_low, model.residual_high, model.region,
                   model.spread_typical)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_booster"] = None
        return state

    @property
    def booster(self) -> lgb.Booster:
        if self._booster is None:
            self._booster = lgb.Booster(model_str=self.model_text)
        return self._booster

    def predict(self, context, model_input, params=None):  # noqa: ARG002 (pyfunc signature)
        frame = pd.DataFrame(model_input).reset_index(drop=True)
        # Versions registered before the spread-scaled interval unpickle without the attribute:
        # their offsets are plain ratio units.
        return predict_frame(self.booster, self.feature_columns, self.residual_low,
                             self.residual_high, frame, getattr(self, "spread_typical", None))
