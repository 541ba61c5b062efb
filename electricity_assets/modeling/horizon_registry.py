"""MLflow for the multi-horizon models: one run per region, `demand-horizons-<REGION>` with the
aliases `champion` / `challenger` (beside the 24-hour family `demand-<REGION>`, same store and
experiment).

Champion rule, as for the 24-hour family: the new version takes `champion` only when its
validation median APE (all horizons) beats the current champion's on the same rows - the new
version's validation (issue, horizon) rows whose issue is at or after the champion's `fit_end`,
so after both models' training data, each with a target and both forecasts. The new version is
scored there by its early-stopped trees, which never saw those rows.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import duckdb
import mlflow
import mlflow.pyfunc
import numpy as np
import pandas as pd

from electricity_assets.features.issue import issue_frame
from electricity_assets.modeling.horizon_model import (
    BUCKETS,
    ERROR_UNIT_UNTIL_H,
    PERSISTENCE_UNTIL_H,
    HorizonConfig,
    HorizonModel,
    HorizonPredictor,
    bucket_label,
    bucket_of,
    horizon_model_name,
    inputs,
    train_horizon_model,
    training_issues,
)
from electricity_assets.modeling.metrics import error_metrics
from electricity_assets.modeling.registry import (
    MlflowConfig,
    Registration,
    Scores,
    champion_version,
    load_version,
    log_and_decide,
    open_store,
)
from electricity_assets.modeling.training import InsufficientDataError

logger = logging.getLogger(__name__)


class HorizonForecaster(mlflow.pyfunc.PythonModel):
    """Issue-frame rows in, forecast_mwh / p10_mwh / p90_mwh out (the predictor is pickled with
    its trees as LightGBM text)."""

    def __init__(self, predictor: HorizonPredictor) -> None:
        self.predictor = predictor

    def predict(self, context, model_input, params=None):  # noqa: ARG002 (pyfunc signature)
        return self.predictor.predict(pd.DataFrame(model_input).reset_index(drop=True))


def _metrics(model: HorizonModel) -> dict[str, float]:
    out = {}
    for label, values in model.metrics.items():
        for metric, value in values.items():
            if pd.notna(value):
                out[f"val_{label}_{metric}"] = float(value)
    overall = model.metrics["all"]
    # The names the 24-hour family uses, so dashboards and checks read both the same way.
    for who in ("model", "df", "naive", "persistence"):
        if pd.notna(overall[f"{who}_mdape"]):
            out[f"val_{who}_mdape"] = float(overall[f"{who}_mdape"])
    for b, rounds in model.best_iterations.items():
        out[f"best_iteration_{bucket_label(b)}"] = float(rounds)
    out["train_rows"] = float(model.train_rows)
    return out


def _params(model: HorizonModel) -> dict[str, str]:
    config = model.config
    params = {f"lgb_{k}": str(v) for k, v in config.params.items()}
    offsets = model.predictor.offsets
    params.update({
        "region": model.region, "family": "horizons",
        "target": f"demand_mwh / profile persistence up to {PERSISTENCE_UNTIL_H} h ahead, "
                  "/ the profile day's demand beyond (else the anchor hour's demand)",
        "horizons": f"1-{BUCKETS[-1][1]}",
        "interval": "split-conformal ratio residuals per horizon "
                    f"q{config.interval[0]:.2f}/q{config.interval[1]:.2f} in units of the "
                    f"weekly spread (typical {model.predictor.spread_typical:.4f})"
                    + (f", up to {ERROR_UNIT_UNTIL_H} h ahead of the last week's persistence "
                       f"error 1 h ahead (typical {model.predictor.error_typical:.4f})"
                       if model.predictor.error_typical is not None else ""),
        **{f"offsets_{bucket_label(b)}": f"{lo:.4f}/{hi:.4f}" for b, (lo, hi) in offsets.items()},
        "issue_every_hours": str(config.issue_every_hours),
        "train_start": model.train_start.isoformat(),
        "train_end": model.train_end.isoformat(),
        "validation_end": model.validation_end.isoformat(),
        "fit_end": model.fit_end.isoformat(),
        "refit_on_validation": str(config.refit),
        "n_features": str(len(model.feature_columns)),
        "uses_weather": str(model.predictor.uses_weather),
    })
    return params


def compared_rows(model: HorizonModel, champion_forecast: np.ndarray,
                  since: datetime | None) -> np.ndarray:
    """Validation rows both are scored on: issue at or after `since`, target and both
    forecasts present."""
    validation = model.validation
    mask = (validation["demand_mwh"].notna() & validation["forecast_mwh"].notna()).to_numpy()
    mask = mask & np.isfinite(champion_forecast)
    if since is not None:
        mask = mask & (validation["issue_utc"] >= pd.Timestamp(since)).to_numpy()
    return mask


def log_and_register_horizon(model: HorizonModel, config: MlflowConfig,
                             tags: dict[str, str] | None = None) -> Registration:
    """Log one run, register a new `demand-horizons-<REGION>` version, set its alias."""
    name = horizon_model_name(model.region)
    validation = model.validation
    actual, own = validation["demand_mwh"], validation["forecast_mwh"].to_numpy()

    def champion_forecast(champion: mlflow.pyfunc.PyFuncModel) -> np.ndarray:
        predictor = champion.unwrap_python_model().predictor
        return predictor.predict(model.validation_features.reset_index(drop=True))[
            "forecast_mwh"].to_numpy()

    def score(champion: np.ndarray | None, since: datetime | None) -> Scores:
        if champion is None:
            mask = actual.notna().to_numpy() & np.isfinite(own)
            return Scores(error_metrics(actual[mask], own[mask])["mdape"], float("nan"), 0)
        mask = compared_rows(model, champion, since)
        if not mask.any():
            return Scores(float("nan"), float("nan"), 0)
        rows = actual.to_numpy()[mask]
        return Scores(error_metrics(rows, own[mask])["mdape"],
                      error_metrics(rows, champion[mask])["mdape"], int(mask.sum()))

    example = inputs(model.validation_features.head(5), model.predictor.input_columns)
    return log_and_decide(
        config, name, region=model.region,
        validation_mdape=model.metrics["all"]["model_mdape"],
        compared_what="validation rows issued", champion_forecast=champion_forecast,
        score=score, run_name=f"{name} {model.validation_end:%Y-%m-%d}",
        tags={"region": model.region, "model_name": name, "family": "horizons", **(tags or {})},
        params=_params(model), metrics=_metrics(model),
        python_model=HorizonForecaster(model.predictor), example=example)


def load_horizon_champion(region: str, config: MlflowConfig) -> tuple[str, HorizonPredictor]:
    """(version, predictor) of `demand-horizons-<region>@champion`; LookupError when none."""
    name = horizon_model_name(region)
    client, _ = open_store(config)
    version = str(champion_version(client, name).version)
    return version, load_horizon_version(name, version, config)


@dataclass
class HorizonReport:
    registrations: list[Registration] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    seconds: float = 0.0

    def metrics_table(self) -> pd.DataFrame:
        """One row per region: version, alias, validation median APE per bucket and coverage."""
        records = []
        for r in self.registrations:
            metrics = self.metrics[r.region]
            records.append({
                "region": r.region, "version": r.version, "alias": r.alias,
                **{f"{label}_mdape": round(values["model_mdape"], 3)
                   for label, values in metrics.items()},
                "coverage_p10_p90": round(metrics["all"]["coverage_p10_p90"], 1),
            })
        return pd.DataFrame.from_records(records)


def horizon_training_frame(conn: duckdb.DuckDBPyConnection, cutoff: datetime,
                           config: HorizonConfig, regions: list[str] | None = None
                           ) -> pd.DataFrame:
    """`issue_frame` rows for training: issues every `issue_every_hours` up to `cutoff`, forecast
    hours before it only (ex-ante weather)."""
    (first,) = conn.execute("SELECT min(period_utc) FROM raw_demand").fetchone()
    if first is None:
        return pd.DataFrame()
    start = pd.Timestamp(first).tz_convert("UTC") + timedelta(days=15)  # lags need two weeks
    if config.history_days:
        start = max(start, pd.Timestamp(cutoff) - timedelta(days=config.history_days))
    issues = training_issues(start, cutoff, config.issue_every_hours)
    frame = issue_frame(conn, issues, regions)
    if config.short_issue_every_hours:
        extra = training_issues(start, cutoff, config.short_issue_every_hours).difference(issues)
        if len(extra):
            last = max(BUCKETS[b][1] for b in config.dense_buckets)
            short = issue_frame(conn, extra, regions, max_horizon=last)
            short = short[np.isin(bucket_of(short["horizon_h"]), config.dense_buckets)]
            frame = pd.concat([frame, short], ignore_index=True).sort_values(
                ["region", "issue_utc", "horizon_h"], ignore_index=True)
    return frame[frame["period_utc"] < pd.Timestamp(cutoff)]


def _train_or_reason(rows: pd.DataFrame, config: HorizonConfig) -> HorizonModel | str:
    try:
        return train_horizon_model(rows, config)
    except InsufficientDataError as exc:
        return str(exc)


def register_horizons(frame: pd.DataFrame, config: MlflowConfig,
                      horizon_config: HorizonConfig | None = None,
                      tags: dict[str, str] | None = None, workers: int = 1) -> HorizonReport:
    """Train, log and register one multi-horizon model per region of `frame` (a
    `horizon_training_frame`); a region that cannot be trained is reported in `failed`.

    With `workers` > 1 the regions train in that many spawned processes (each LightGBM on one
    thread, so the trees are the same as trained one after the other); logging and registering
    stay in this process, one region at a time."""
    horizon_config = horizon_config or HorizonConfig()
    started = time.perf_counter()
    report = HorizonReport()
    groups = [(str(r), rows) for r, rows in frame.groupby("region", sort=True)] if len(
        frame) else []
    if workers > 1 and len(groups) > 1:
        with ProcessPoolExecutor(min(workers, len(groups)),
                                 mp_context=multiprocessing.get_context("spawn")) as pool:
            outcomes = pool.map(_train_or_reason, [rows for _, rows in groups],
                                [horizon_config] * len(groups))
            trained = list(zip([r for r, _ in groups], outcomes, strict=True))
    else:
        trained = [(r, _train_or_reason(rows, horizon_config)) for r, rows in groups]
    for region, model in trained:
        if isinstance(model, str):
            report.failed[region] = model
            logger.warning("horizons %s not trained: %s", region, model)
            continue
        report.registrations.append(log_and_register_horizon(model, config, tags))
        report.metrics[region] = model.metrics
    report.seconds = time.perf_counter() - started
    return report


def train_and_register_horizons(conn: duckdb.DuckDBPyConnection, cutoff: datetime,
                                config: MlflowConfig, horizon_config: HorizonConfig | None = None,
                                regions: list[str] | None = None,
                                tags: dict[str, str] | None = None) -> HorizonReport:
    """Every region's multi-horizon model on data before `cutoff`, logged and registered.
    (`conn` is only read while the frame is built; an asset holding a shared database can call
    `horizon_training_frame` and `register_horizons` itself to release it before training.)"""
    horizon_config = horizon_config or HorizonConfig()
    started = time.perf_counter()
    frame = horizon_training_frame(conn, cutoff, horizon_config, regions)
    report = register_horizons(frame, config, horizon_config, tags)
    report.seconds = time.perf_counter() - started
    return report


def load_horizon_version(name: str, version: str, config: MlflowConfig) -> HorizonPredictor:
    """The predictor of one registered version."""
    return load_version(config, name, version).unwrap_python_model().predictor
