"""Train and register every region present in the data; one region's failure stays its own."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import pandas as pd

from electricity_assets.modeling.registry import MlflowConfig, Registration, log_and_register
from electricity_assets.modeling.training import (
    InsufficientDataError,
    RegionModel,
    TrainingConfig,
    train_region,
)

logger = logging.getLogger(__name__)


@dataclass
class RetrainReport:
    registrations: list[Registration] = field(default_factory=list)
    models: dict[str, RegionModel] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)  # region -> reason
    seconds: float = 0.0

    def metrics_table(self) -> pd.DataFrame:
        """Validation figures per region (percent, MWh) with the registry decision."""
        rows = []
        for reg in self.registrations:
            m = self.models[reg.region].metrics
            rows.append({
                "region": reg.region, "version": reg.version, "alias": reg.alias,
                "hours": m["model"]["hours"],
                "model_mdape": round(m["model"]["mdape"], 2),
                "df_mdape": round(m["df"]["mdape"], 2),
                "naive_mdape": round(m["naive"]["mdape"], 2),
                "model_mape": round(m["model"]["mape"], 2),
                "model_mae": round(m["model"]["mae"], 1),
                "model_rmse": round(m["model"]["rmse"], 1),
                "coverage_p10_p90": round(m["model"].get("coverage_p10_p90", float("nan")), 1),
                "decision": reg.decision,
            })
        return pd.DataFrame.from_records(rows)


def retrain_all(frame: pd.DataFrame, mlflow_config: MlflowConfig,
                config: TrainingConfig | None = None,
                tags: dict[str, str] | None = None) -> RetrainReport:
    """Train, log and register one model per region of `frame` (a `features.model_frame`)."""
    report = RetrainReport()
    started = time.perf_counter()
    for region, rows in frame.groupby("region", sort=True):
        region = str(region)
        try:
            model = train_region(rows, config)
        except InsufficientDataError as exc:
            report.failed[region] = str(exc)
            logger.error("%s", exc)
            continue
        report.models[region] = model
        report.registrations.append(log_and_register(model, mlflow_config, tags))
    report.seconds = time.perf_counter() - started
    return report
