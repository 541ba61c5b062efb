"""MLflow tracking and registry: one run per region, `demand-<REGION>` with champion/challenger.

A new version takes the `champion` alias only when its validation median APE beats the current
champion re-scored on the same hours: the new version's validation hours after the champion's
`fit_end` (the end of the hours its trees were fitted on). A champion refitted on its own
validation weeks has seen the start of the new version's validation window; scoring it there would
flatter it. The new version is scored there with its early-stopped model, which never saw them.
With no such hour the new version cannot show it is better and stays `challenger`.
Aliases, never the deprecated registry stages.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any, NamedTuple

import matplotlib

matplotlib.use("Agg")  # before pyplot: training runs headless inside Dagster

import matplotlib.pyplot as plt  # noqa: E402
import mlflow.artifacts  # noqa: E402
import mlflow.pyfunc  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import LoggedModelOutput, LoggedModelStatus, Metric, Param  # noqa: E402
from mlflow.entities.model_registry import ModelVersion  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.models import Model, infer_signature  # noqa: E402
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode  # noqa: E402
from mlflow.tracking.context.registry import resolve_tags  # noqa: E402
from mlflow.utils.mlflow_tags import MLFLOW_MODEL_VERSIONS  # noqa: E402

from electricity_assets import settings  # noqa: E402
from electricity_assets.features import WEATHER_FEATURE_COLUMNS  # noqa: E402
from electricity_assets.modeling.metrics import compare  # noqa: E402
from electricity_assets.modeling.pyfunc import DemandForecaster  # noqa: E402
from electricity_assets.modeling.training import RegionModel, model_inputs  # noqa: E402

logger = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
EXPERIMENT_NAME = "demand-forecasting"
# Pinned so MLflow skips its slow requirement inference (it imports the whole environment).
PIP_REQUIREMENTS = ["lightgbm>=4.5", "pandas>=2.2", "numpy>=1.26", "mlflow>=3.1,<4"]
DECISION_METRIC = "mdape"


@dataclass(frozen=True)
class MlflowConfig:
    tracking_uri: str
    artifact_root: str
    experiment_name: str = EXPERIMENT_NAME
    ui_url: str = settings.DEFAULT_MLFLOW_UI_URL

    @classmethod
    def from_settings(cls) -> MlflowConfig:
        return cls(settings.mlflow_tracking_uri(), settings.mlflow_artifact_root(),
                   ui_url=settings.mlflow_ui_url())


@dataclass(frozen=True)
class Registration:
    region: str
    model_name: str
    version: str
    alias: str                   # champion | challenger
    run_id: str
    run_url: str
    mdape: float                 # the new version on the compared hours (all if first)
    previous_version: str | None
    previous_mdape: float | None  # the previous champion on the same hours
    compared_hours: int = 0       # hours scored for both (0: none after the champion's fit_end)

    @property
    def decision(self) -> str:
        if self.previous_version is None:
            return "champion (first version)"
        if not self.compared_hours:
            return (f"{self.alias}: no validation hour after v{self.previous_version}'s "
                    "training data to compare on")
        verb = "beats" if self.alias == CHAMPION else "does not beat"
        return (f"{self.alias}: {self.mdape:.2f} % {verb} v{self.previous_version} "
                f"({self.previous_mdape:.2f} %) on {self.compared_hours} hours")


def model_name(region: str) -> str:
    return f"demand-{region}"


def open_store(config: MlflowConfig) -> tuple[MlflowClient, str]:
    """A client bound to `config`'s store (tracking and registry) and the experiment id.

    Every call goes through this client: nothing reads or sets MLflow's process-wide URI, so two
    stores in one process (tests, a bench beside the stack) never see each other's models."""
    if config.tracking_uri.startswith("sqlite:///"):
        Path(config.tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True,
                                                                          exist_ok=True)
    client = MlflowClient(tracking_uri=config.tracking_uri, registry_uri=config.tracking_uri)
    experiment = client.get_experiment_by_name(config.experiment_name)
    if experiment is not None:
        return client, experiment.experiment_id
    artifact_root = Path(config.artifact_root)
    artifact_root.mkdir(parents=True, exist_ok=True)
    return client, client.create_experiment(config.experiment_name,
                                            artifact_location=artifact_root.resolve().as_uri())


@dataclass(frozen=True)
class LoggedRun:
    run_id: str
    version: str  # the registered model version


def log_model_run(client: MlflowClient, experiment_id: str, registered_name: str, *,
                  run_name: str, tags: dict[str, str], params: dict[str, str],
                  metrics: dict[str, float], python_model: mlflow.pyfunc.PythonModel,
                  example: pd.DataFrame, figures: dict[str, plt.Figure] | None = None
                  ) -> LoggedRun:
    """One finished run with its params, metrics and figures, the pyfunc model logged as the
    run's LoggedModel and registered as a new version of `registered_name`: what
    `mlflow.start_run` + `mlflow.pyfunc.log_model(registered_model_name=...)` record, through
    `client`."""
    run_id = client.create_run(experiment_id, run_name=run_name,
                               tags=resolve_tags(tags)).info.run_id
    try:
        stamp = int(time.time() * 1000)
        client.log_batch(run_id, metrics=[Metric(k, v, stamp, 0) for k, v in metrics.items()],
                         params=[Param(k, v) for k, v in params.items()])
        for path, figure in (figures or {}).items():
            client.log_figure(run_id, figure, path)
        model_id = _log_pyfunc(client, experiment_id, run_id, params, metrics, python_model,
                               example)
        version = _register(client, registered_name, model_id, run_id)
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id)
    return LoggedRun(run_id, version)


def _log_pyfunc(client: MlflowClient, experiment_id: str, run_id: str, params: dict[str, str],
                metrics: dict[str, float], python_model: mlflow.pyfunc.PythonModel,
                example: pd.DataFrame) -> str:
    """The run's LoggedModel `model` (its params, metrics, signature and input example); id."""
    logged = client.create_logged_model(experiment_id, name="model", source_run_id=run_id,
                                        params=params, tags=resolve_tags())
    try:
        client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
        stamp = int(time.time() * 1000)
        client.log_batch(run_id, metrics=[Metric(k, v, stamp, 0, model_id=logged.model_id,
                                                 run_id=run_id) for k, v in metrics.items()])
        with TemporaryDirectory() as tmp:
            path = str(Path(tmp) / "model")
            mlflow.pyfunc.save_model(
                path, python_model=python_model, input_example=example,
                signature=infer_signature(example, python_model.predict(None, example)),
                pip_requirements=PIP_REQUIREMENTS,
                mlflow_model=Model(artifact_path=logged.artifact_location,
                                   model_uuid=logged.model_id, run_id=run_id,
                                   model_id=logged.model_id))
            client.log_model_artifacts(logged.model_id, path)
    except BaseException:
        client.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)
        raise
    client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
    return logged.model_id


def _register(client: MlflowClient, name: str, model_id: str, run_id: str) -> str:
    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
            raise
    # The source is the logged model's artifact location, not `models:/<model_id>`: MLflow's
    # SQL registry resolves that URI through the process-wide tracking URI, not this client's.
    source = client.get_logged_model(model_id).artifact_location
    version = str(client.create_model_version(name, source, run_id=run_id,
                                              model_id=model_id).version)
    # The logged model's page lists the versions registered from it.
    client.set_logged_model_tags(model_id, {MLFLOW_MODEL_VERSIONS: json.dumps(
        [{"name": name, "version": version}])})
    return version


def champion_version(client: MlflowClient, name: str) -> ModelVersion:
    """The version of `name` holding the champion alias (either family); LookupError, saying
    what to do, when the model or its champion is missing."""
    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException as exc:
        raise LookupError(f"no champion for {name}: materialise trained_models first") from exc


def load_version(config: MlflowConfig, name: str, version: str) -> mlflow.pyfunc.PyFuncModel:
    """Registered version `name`/`version`, downloaded through a client bound to `config`."""
    client = MlflowClient(tracking_uri=config.tracking_uri, registry_uri=config.tracking_uri)
    uri = client.get_model_version_download_uri(name, version)
    with TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp,
                                                    tracking_uri=config.tracking_uri)
        return mlflow.pyfunc.load_model(local)


def _importance_figure(model: RegionModel) -> plt.Figure:
    gain = pd.Series(model.booster.feature_importance("gain"), index=model.feature_columns)
    top = gain.sort_values().tail(20)
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.barh(top.index, top.to_numpy() / max(top.sum(), 1e-12) * 100)
    ax.set_xlabel("share of total gain (%)")
    ax.set_title(f"{model_name(model.region)}: feature importance (top 20)")
    fig.tight_layout()
    return fig


def _flat_metrics(model: RegionModel) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for who, values in model.metrics.items():
        for metric, value in values.items():
            if metric != "hours" and pd.notna(value):
                metrics[f"val_{who}_{metric}"] = float(value)
    metrics["val_hours"] = float(model.metrics["model"]["hours"])
    metrics["val_weeks"] = (model.validation_end - model.train_end) / timedelta(weeks=1)
    metrics["best_iteration"] = float(model.best_iteration)
    metrics.update(weather_importance(model))
    return metrics


def weather_importance(model: RegionModel) -> dict[str, float]:
    """How much the deployed trees lean on weather: the weather inputs given to the model and
    their share (%) of the total split gain (0 for a model without weather)."""
    gain = pd.Series(model.booster.feature_importance("gain"), index=model.feature_columns)
    weather = [c for c in model.feature_columns if c in WEATHER_FEATURE_COLUMNS]
    total = float(gain.sum())
    return {"weather_inputs": float(len(weather)),
            "weather_gain_pct": float(gain[weather].sum() / total * 100) if total else 0.0}


def _params(model: RegionModel) -> dict[str, str]:
    params = {f"lgb_{k}": str(v) for k, v in model.config.params.items()}
    params.update({
        "region": model.region,
        "target": "demand_mwh / first non-null of (lag_24h, roll24_mean, roll168_mean)",
        "interval": "split-conformal ratio residuals "
                    f"q{model.config.interval[0]:.2f}/q{model.config.interval[1]:.2f}"
                    + (" in units of the weekly spread (roll168_std / roll168_mean), typical "
                       f"{model.spread_typical:.4f}" if model.spread_typical is not None else ""),
        "train_start": model.train_start.isoformat(),
        "train_end": model.train_end.isoformat(),
        "validation_end": model.validation_end.isoformat(),
        "fit_end": model.fit_end.isoformat(),
        "refit_on_validation": str(model.config.refit),
        "train_hours": str(model.train_hours),
        "validation_weeks": f"{(model.validation_end - model.train_end) / timedelta(weeks=1):g}",
        "n_features": str(len(model.feature_columns)),
        "uses_weather": str(any(c in WEATHER_FEATURE_COLUMNS for c in model.feature_columns)),
    })
    return params


def log_and_register(model: RegionModel, config: MlflowConfig,
                     tags: dict[str, str] | None = None) -> Registration:
    """Log one training run, register it as a new version and set champion or challenger.

    The current champion is re-scored on the new model's validation hours before deciding.
    """
    name = model_name(model.region)
    inputs = model_inputs(model.validation_features, model.feature_columns)

    def score(champion_forecast: np.ndarray | None, since: datetime | None) -> Scores:
        if champion_forecast is None:
            return Scores(validation_score(model), float("nan"), 0)
        return Scores(validation_score(model, since=since),
                      validation_score(model, champion_forecast, since),
                      compared_hours(model, since))

    fig = _importance_figure(model)
    try:
        return log_and_decide(
            config, name, region=model.region, validation_mdape=validation_score(model),
            compared_what="validation hours",
            champion_forecast=lambda champion: champion.predict(inputs)["forecast_mwh"].to_numpy(),
            score=score, run_name=f"{name} {model.validation_end:%Y-%m-%d}",
            tags={"region": model.region, "model_name": name, **(tags or {})},
            params=_params(model), metrics=_flat_metrics(model),
            python_model=DemandForecaster.from_region_model(model), example=inputs.head(5),
            figures={"feature_importance.png": fig})
    finally:
        plt.close(fig)


class Scores(NamedTuple):
    mdape: float           # the new version on the compared rows (all of them when first)
    champion_mdape: float  # the champion on the same rows
    compared: int          # rows both are scored on


@dataclass(frozen=True)
class Decision:
    alias: str
    scores: Scores
    previous_version: str | None = None


def _fit_end(params: dict[str, str]) -> datetime | None:
    """End of the hours a version's trees saw: `fit_end`, else (older versions) the end of its
    validation hours, which early stopping looked at."""
    text = params.get("fit_end") or params.get("validation_end")
    return datetime.fromisoformat(text) if text else None


def challenge(config: MlflowConfig, client: MlflowClient, name: str,
              champion_forecast: Callable[[mlflow.pyfunc.PyFuncModel], np.ndarray],
              score: Callable[[np.ndarray | None, datetime | None], Scores]) -> Decision:
    """The champion rule of both families: with no champion the new version takes the alias;
    else it does when it scores better on the rows after the champion's `fit_end`
    (`score(champion's forecast, fit_end)`), never on a tie or with no such row."""
    try:
        current = champion_version(client, name)
    except LookupError:  # no registered model or no champion yet
        return Decision(CHAMPION, score(None, None))
    fit_end = _fit_end(client.get_run(current.run_id).data.params)
    scores = score(champion_forecast(load_version(config, name, current.version)), fit_end)
    wins = scores.compared > 0 and scores.mdape < scores.champion_mdape
    return Decision(CHAMPION if wins else CHALLENGER, scores, str(current.version))


def log_and_decide(config: MlflowConfig, name: str, *, region: str, validation_mdape: float,
                   compared_what: str,
                   champion_forecast: Callable[[mlflow.pyfunc.PyFuncModel], np.ndarray],
                   score: Callable[[np.ndarray | None, datetime | None], Scores],
                   **run: Any) -> Registration:
    """Challenge the champion of `name`, log and register the run (`log_model_run(**run)`) and
    give the new version its alias, with the comparison as version tags."""
    client, experiment_id = open_store(config)
    decision = challenge(config, client, name, champion_forecast, score)
    logged = log_model_run(client, experiment_id, name, **run)
    version, previous, scores = logged.version, decision.previous_version, decision.scores
    client.set_registered_model_alias(name, decision.alias, version)
    client.set_model_version_tag(name, version, "validation_mdape", f"{validation_mdape:.3f}")
    if previous is not None:
        client.set_model_version_tag(
            name, version, "champion_comparison",
            f"v{version} {scores.mdape:.3f} % vs v{previous} {scores.champion_mdape:.3f} % on "
            f"the {scores.compared} {compared_what} after v{previous}'s training data")
    registration = Registration(
        region=region, model_name=name, version=version, alias=decision.alias,
        run_id=logged.run_id,
        run_url=f"{config.ui_url}/#/experiments/{experiment_id}/runs/{logged.run_id}",
        mdape=scores.mdape, previous_version=previous,
        previous_mdape=None if previous is None else scores.champion_mdape,
        compared_hours=scores.compared)
    logger.info("%s v%s: %s", name, version, registration.decision)
    return registration


def _scored_hours(model: RegionModel, since: datetime | None) -> pd.Series:
    validation = model.validation
    if since is None:
        return pd.Series(True, index=validation.index)
    return validation["period_utc"] >= pd.Timestamp(since)


def compared_hours(model: RegionModel, since: datetime | None) -> int:
    """Validation hours from `since` on that the decision metric counts."""
    rows = model.validation[_scored_hours(model, since)]
    return int(compare(rows)["model"]["hours"]) if len(rows) else 0


def validation_score(model: RegionModel, forecast_mwh: np.ndarray | None = None,
                     since: datetime | None = None) -> float:
    """The decision metric of `forecast_mwh` (default: the model's own) on the model's validation
    hours from `since` on, by the one rule of `metrics.compare`, so new model and champion
    share every hour (NaN when there is none)."""
    validation = model.validation
    if forecast_mwh is not None:
        validation = validation.assign(forecast_mwh=forecast_mwh)
    validation = validation[_scored_hours(model, since)]
    return compare(validation)["model"][DECISION_METRIC] if len(validation) else float("nan")


class Champion(NamedTuple):
    version: str
    model: mlflow.pyfunc.PyFuncModel
    cutoff: datetime | None  # end of the data it saw (its `validation_end` param), if known


def load_champion(region: str, config: MlflowConfig) -> Champion:
    """`demand-<region>@champion` with its version and data cut-off; LookupError when none."""
    client, _ = open_store(config)
    version = champion_version(client, model_name(region))
    cutoff = client.get_run(version.run_id).data.params.get("validation_end")
    return Champion(str(version.version), load_version(config, model_name(region), version.version),
                    datetime.fromisoformat(cutoff) if cutoff else None)


def champions(config: MlflowConfig) -> pd.DataFrame:
    """Per registered `demand-*` model: champion and challenger versions and the champion's
    validation median APE against EIA DF and seasonal-naive (from its training run)."""
    records = []
    client, _ = open_store(config)
    for registered in client.search_registered_models("name LIKE 'demand-%'"):
        if registered.name.startswith("demand-horizons-"):
            continue  # the multi-horizon family (`horizon_registry`)
        aliases = dict(registered.aliases or {})
        record = {"model_name": registered.name,
                  "champion": aliases.get(CHAMPION), "challenger": aliases.get(CHALLENGER)}
        if record["champion"] is not None:
            version = client.get_model_version(registered.name, record["champion"])
            metrics = client.get_run(version.run_id).data.metrics
            record.update({who: metrics.get(f"val_{who}_mdape")
                           for who in ("model", "df", "naive")})
        records.append(record)
    columns = ["model_name", "champion", "challenger", "model", "df", "naive"]
    return pd.DataFrame.from_records(records, columns=columns).sort_values("model_name")
