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

import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import matplotlib

matplotlib.use("Agg")  # before pyplot: training runs headless inside Dagster

import matplotlib.pyplot as plt  # noqa: E402
import mlflow  # noqa: E402
import mlflow.pyfunc  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from mlflow import MlflowClient  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.models import infer_signature  # noqa: E402
from mlflow.tracking._model_registry import utils as _registry_utils  # noqa: E402
from mlflow.tracking._tracking_service import utils as _tracking_utils  # noqa: E402

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


def champion_uri(region: str) -> str:
    return f"models:/{model_name(region)}@{CHAMPION}"


_URI_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


@contextmanager
def tracking(config: MlflowConfig) -> Iterator[tuple[MlflowClient, str]]:
    """Point MLflow at `config` (tracking + registry) and yield a client and the experiment id."""
    if config.tracking_uri.startswith("sqlite:///"):
        Path(config.tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True,
                                                                          exist_ok=True)
    # MLflow keeps the URIs as process globals (and set_tracking_uri exports MLFLOW_TRACKING_URI,
    # which `settings` reads): save and restore both globals and the environment exactly, or one
    # config leaks into the next caller's registry look-ups.
    saved_uris = (_tracking_utils._tracking_uri, _registry_utils._registry_uri)
    saved_env = {k: os.environ.get(k) for k in _URI_ENV}
    mlflow.set_tracking_uri(config.tracking_uri)
    mlflow.set_registry_uri(config.tracking_uri)
    try:
        client = MlflowClient(config.tracking_uri, config.tracking_uri)
        experiment = client.get_experiment_by_name(config.experiment_name)
        if experiment is None:
            artifact_root = Path(config.artifact_root)
            artifact_root.mkdir(parents=True, exist_ok=True)
            experiment_id = client.create_experiment(
                config.experiment_name, artifact_location=artifact_root.resolve().as_uri())
        else:
            experiment_id = experiment.experiment_id
        yield client, experiment_id
    finally:
        _tracking_utils._tracking_uri, _registry_utils._registry_uri = saved_uris
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


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
    with tracking(config) as (client, experiment_id):
        previous = _score_champion(client, model, inputs)
        with mlflow.start_run(experiment_id=experiment_id,
                              run_name=f"{name} {model.validation_end:%Y-%m-%d}") as run:
            mlflow.set_tags({"region": model.region, "model_name": name, **(tags or {})})
            mlflow.log_params(_params(model))
            mlflow.log_metrics(_flat_metrics(model))
            fig = _importance_figure(model)
            mlflow.log_figure(fig, "feature_importance.png")
            plt.close(fig)
            forecaster = DemandForecaster.from_region_model(model)
            example = inputs.head(5)
            info = mlflow.pyfunc.log_model(
                name="model", python_model=forecaster,
                signature=infer_signature(example, forecaster.predict(None, example)),
                input_example=example, pip_requirements=PIP_REQUIREMENTS,
                registered_model_name=name,
            )
            run_id = run.info.run_id
        version = str(info.registered_model_version)
        if previous is None:
            mdape, hours, wins = validation_score(model), 0, True
        else:
            mdape = validation_score(model, since=previous.fit_end)
            hours = compared_hours(model, previous.fit_end)
            wins = hours > 0 and mdape < previous.mdape
        alias = CHAMPION if wins else CHALLENGER
        client.set_registered_model_alias(name, alias, version)
        client.set_model_version_tag(name, version, "validation_mdape",
                                     f"{validation_score(model):.3f}")
        if previous is not None:
            client.set_model_version_tag(
                name, version, "champion_comparison",
                f"v{version} {mdape:.3f} % vs v{previous.version} {previous.mdape:.3f} % on the "
                f"{hours} validation hours after v{previous.version}'s training data")
    registration = Registration(
        region=model.region, model_name=name, version=version, alias=alias, run_id=run_id,
        run_url=f"{config.ui_url}/#/experiments/{experiment_id}/runs/{run_id}",
        mdape=mdape, previous_version=None if previous is None else previous.version,
        previous_mdape=None if previous is None else previous.mdape, compared_hours=hours,
    )
    logger.info("%s v%s: %s", name, version, registration.decision)
    return registration


class ChampionScore(NamedTuple):
    version: str
    mdape: float                # on the new model's validation hours from fit_end on
    fit_end: datetime | None    # end of the hours the champion's trees were fitted on


def _fit_end(params: dict[str, str]) -> datetime | None:
    """End of the hours a version's trees saw: `fit_end`, else (older versions) the end of its
    validation hours, which early stopping looked at."""
    text = params.get("fit_end") or params.get("validation_end")
    return datetime.fromisoformat(text) if text else None


def _score_champion(client: MlflowClient, model: RegionModel, inputs: pd.DataFrame
                    ) -> ChampionScore | None:
    try:
        version = client.get_model_version_by_alias(model_name(model.region), CHAMPION)
    except MlflowException:
        return None  # no registered model or no champion yet
    fit_end = _fit_end(client.get_run(version.run_id).data.params)
    champion = mlflow.pyfunc.load_model(champion_uri(model.region))
    predicted = champion.predict(inputs)["forecast_mwh"].to_numpy()
    return ChampionScore(str(version.version), validation_score(model, predicted, fit_end),
                         fit_end)


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
    with tracking(config) as (client, _):
        try:
            version = client.get_model_version_by_alias(model_name(region), CHAMPION)
        except MlflowException as exc:
            raise LookupError(
                f"no champion for {model_name(region)}: materialise trained_models first") from exc
        cutoff = client.get_run(version.run_id).data.params.get("validation_end")
        return Champion(str(version.version), mlflow.pyfunc.load_model(champion_uri(region)),
                        datetime.fromisoformat(cutoff) if cutoff else None)


ChampionLoader = Callable[[str, MlflowConfig], Champion]
_CREDENTIALS = re.compile(r"://[^/@\s]+@")  # user:password@ in a URI an error message quotes


def load_champions(regions: Iterable[str], config: MlflowConfig,
                   loader: ChampionLoader = load_champion
                   ) -> tuple[dict[str, Champion], dict[str, str]]:
    """(region -> champion, region -> why it has none) for `regions`.

    Any error loading one region's champion (no alias, a deleted version, a corrupt pickle, a
    missing artifact) skips that region alone, named with the reason; the others load.
    """
    models: dict[str, Champion] = {}
    skipped: dict[str, str] = {}
    for region in regions:
        try:
            models[region] = loader(region, config)
        except LookupError as exc:
            skipped[region] = str(exc)
        except Exception as exc:  # whatever a broken model raises: UnpicklingError, OSError, ...
            detail = _CREDENTIALS.sub("://***@", f"{type(exc).__name__}: {exc}")[:300]
            skipped[region] = (f"the champion of {model_name(region)} cannot be loaded ({detail}): "
                               "retrain the region (trained_models) or point the champion alias "
                               "at a good version")
        if region in skipped:
            logger.warning("%s skipped: %s", region, skipped[region])
    return models, skipped


def champions(config: MlflowConfig) -> pd.DataFrame:
    """Per registered `demand-*` model: champion and challenger versions and the champion's
    validation median APE against EIA DF and seasonal-naive (from its training run)."""
    records = []
    with tracking(config) as (client, _):
        for registered in client.search_registered_models("name LIKE 'demand-%'"):
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
