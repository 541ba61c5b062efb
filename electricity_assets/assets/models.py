"""trained_models: retrain every region's LightGBM model, log it to MLflow, move the aliases.

Weekly partitions in DATA time (`partitions.weekly_partitions`): partition W trains on every
feature row before W's end (the cut-off), so the model a partition produces only knows the past
of that week, and a backfill of weeks rebuilds the model history. Offline the replay clock
decides which week is due (`retrain_schedule`); a new version becomes `champion` only if it beats
the current one on the same validation hours, otherwise `challenger`.
"""

import os
from datetime import UTC, datetime, timedelta

import dagster as dg
from pydantic import Field

from electricity_assets import quality, settings, storage
from electricity_assets.assets.forecasts import day_ahead_forecasts, demand_forecasts
from electricity_assets.features import model_frame, with_forecast_weather
from electricity_assets.history import HISTORY_START
from electricity_assets.partitions import weekly_partitions
from electricity_assets.resources import ElectricityDuckDB, MLflowResource

OWNERS = ["team:forecasting"]


class TrainedModelsConfig(dg.Config):
    regions: list[str] = Field(
        default_factory=list,
        description="Regions to train (empty: every region in demand_features).")
    history_days: int = Field(
        default=0, ge=0, description="Train on the last N days only (0: all history).")
    horizons: bool = Field(
        default=True, description="Also train the multi-horizon family demand-horizons-<REGION> "
                                  "(forecasts 1-48 h ahead from each issue hour).")


def _window(conn, history_days: int, cutoff: datetime) -> tuple[datetime, datetime]:
    """Training rows: from the start (or the last `history_days`) to the last demand hour
    before `cutoff`, the end of the partition's week."""
    (latest,) = conn.execute(
        "SELECT max(period_utc) FROM demand_features WHERE demand_mwh IS NOT NULL "
        "AND period_utc < ?", [cutoff]).fetchone()
    if latest is None:
        raise dg.Failure(f"demand_features holds no demand before {cutoff:%Y-%m-%d %H:%M} UTC: "
                         "materialise raw_demand and demand_features for the weeks before "
                         "this partition first (e.g. a backfill in the UI)")
    end = latest.astimezone(UTC) + timedelta(hours=1)
    start = (end - timedelta(days=history_days) if history_days
             else HISTORY_START)
    return start, end


def _refresh_served_champions(context: dg.AssetExecutionContext, duckdb: ElectricityDuckDB,
                              mlflow: MLflowResource) -> None:
    """The serving cache names the champions as the registry has them now: the next issue
    uses a champion this run chose (the automation re-issues the newest one)."""
    from electricity_assets.modeling import champion_cache, issuing

    with duckdb.get_connection() as conn:
        regions = storage.demand_regions(conn)
    champions, skipped = champion_cache.resolve(
        regions, issuing.MlflowChampions(mlflow.mlflow_config), settings.local_home())
    context.log.info("serving champions: " + ", ".join(
        f"{r} v{c.version}" for r, c in sorted(champions.items())))
    for region, reason in skipped.items():
        context.log.warning(f"{region}: no multi-horizon champion served - {reason}")


@dg.asset(
    deps=["demand_features", "weather_features", "weather_station_offsets",
          "weather_normalisation"],  # the ex-ante weather of the frame (with_forecast_weather)
    partitions_def=weekly_partitions,
    group_name="modeling",
    kinds={"lightgbm", "mlflow"},
    owners=OWNERS,
    description=(
        "One LightGBM model per region (demand / recent-level ratio target; lags >= 24 h, "
        "calendar, weather where the region has it), time-ordered split with the last 4 weeks "
        "for early stopping and conformal P10/P90, then refitted on all hours. Logged to MLflow "
        "and registered as demand-<REGION>; a version becomes `champion` only if it beats the "
        "current champion on the validation hours after the champion's training data, "
        "otherwise `challenger`. Also (config `horizons`) the multi-horizon family "
        "demand-horizons-<REGION>: forecasts 1-48 h ahead from each issue hour, P10/P90 per "
        "horizon bucket, the same champion rule (metadata `horizons_*`)."
    ),
)
def trained_models(context: dg.AssetExecutionContext, config: TrainedModelsConfig,
                   duckdb: ElectricityDuckDB, mlflow: MLflowResource) -> dg.MaterializeResult:
    from electricity_assets.modeling import horizons
    from electricity_assets.modeling.retrain import retrain_all  # MLflow import is slow

    regions = config.regions or None
    horizon_config = horizons.HorizonConfig(history_days=config.history_days)
    with duckdb.get_connection() as conn:  # released before training: others can write
        start, end = _window(conn, config.history_days, context.partition_time_window.end)
        frame = with_forecast_weather(  # the interval is calibrated on forecast weather
            conn, model_frame(conn, start, end, regions=regions))
        issue_rows = (horizons.horizon_training_frame(conn, end, horizon_config, regions)
                      if config.horizons else None)
    if frame.empty:
        raise dg.Failure(f"no feature rows for regions {config.regions} in [{start}, {end})")
    tags = {"dagster_run_id": context.run.run_id}
    report = retrain_all(frame, mlflow.mlflow_config(), tags=tags)
    for region, reason in report.failed.items():
        context.log.error(f"{region}: not trained - {reason}")
    if not report.registrations:
        raise dg.Failure("no region could be trained: " + "; ".join(report.failed.values()))
    table = report.metrics_table()
    context.log.info(f"trained {len(report.registrations)} regions in {report.seconds:.1f} s")
    links = "\n".join(f"- [{r.model_name} v{r.version} ({r.alias})]({r.run_url})"
                      for r in report.registrations)
    horizon_metadata = {}
    if issue_rows is not None:
        # One region per core: 12 regions take about half the time on 2 cores.
        multi = horizons.register_horizons(issue_rows, mlflow.mlflow_config(), horizon_config,
                                           tags, workers=os.cpu_count() or 1)
        for region, reason in multi.failed.items():
            context.log.error(f"{region}: multi-horizon model not trained - {reason}")
        context.log.info(f"trained {len(multi.registrations)} multi-horizon models in "
                         f"{multi.seconds:.1f} s")
        horizon_metadata = horizon_family_metadata(multi)
        _refresh_served_champions(context, duckdb, mlflow)
    return dg.MaterializeResult(metadata={
        **horizon_metadata,
        "regions_trained": len(report.registrations),
        "regions_failed": dg.MetadataValue.md(
            "\n".join(f"- {k}: {v}" for k, v in report.failed.items()) or "none"),
        "training_seconds": round(report.seconds, 1),
        "data_end": end.isoformat(),
        "champions": ", ".join(r.region for r in report.registrations if r.alias == "champion"),
        "metrics": dg.MetadataValue.md(quality.markdown_table(table, max_rows=100)),
        "mlflow_runs": dg.MetadataValue.md(links),
        "mean_model_mdape": float(table["model_mdape"].mean()),
        "mean_df_mdape": float(table["df_mdape"].mean()),
    })


def horizon_family_metadata(report) -> dict[str, object]:
    """Metadata of the demand-horizons-<REGION> family, its keys prefixed `horizons_`."""
    table = report.metrics_table()
    return {
        "horizons_regions_trained": len(report.registrations),
        "horizons_regions_failed": dg.MetadataValue.md(
            "\n".join(f"- {k}: {v}" for k, v in report.failed.items()) or "none"),
        "horizons_training_seconds": round(report.seconds, 1),
        "horizons_champions": ", ".join(r.region for r in report.registrations
                                        if r.alias == "champion"),
        "horizons_metrics": dg.MetadataValue.md(quality.markdown_table(table, max_rows=100)),
        "horizons_mlflow_runs": dg.MetadataValue.md("\n".join(
            f"- [{r.model_name} v{r.version} ({r.alias})]({r.run_url})"
            for r in report.registrations) or "none"),
        **({"horizons_mean_model_mdape": float(table["all_mdape"].mean())} if len(table) else {}),
    }


@dg.asset_check(
    asset=trained_models,
    description=("Every registered demand-<REGION> has a champion, and each champion's "
                 "validation median APE beats seasonal-naive (same hour last week)."),
)
def champions_beat_seasonal_naive(mlflow: MLflowResource) -> dg.AssetCheckResult:
    from electricity_assets.modeling.registry import champions

    table = champions(mlflow.mlflow_config())
    missing = table.loc[table["champion"].isna(), "model_name"].tolist()
    losing = table.loc[table["model"].astype(float) >= table["naive"].astype(float),
                       "model_name"].tolist()
    return dg.AssetCheckResult(
        passed=bool(len(table)) and not missing and not losing,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "models": len(table),
            "without_champion": ", ".join(missing) or "none",
            "champion_not_beating_naive": ", ".join(losing) or "none",
            "champions": dg.MetadataValue.md(quality.markdown_table(table, max_rows=100)),
        },
    )


model_assets = [trained_models, demand_forecasts, day_ahead_forecasts]
@dg.asset_check(
    asset=demand_forecasts, name="every_region_forecast",
    description=("The newest issue forecast every region: fails naming each region it skipped "
                 "and why (champion missing or unloadable: error; a late input: warning)."))
def every_region_forecast(duckdb: ElectricityDuckDB) -> dg.AssetCheckResult:
    from electricity_assets.modeling import issuing

    with duckdb.get_connection() as conn:
        issue_utc, skipped = issuing.newest_issue_skips(conn)
    # A missing or broken model needs someone to act; a late feed may arrive on its own.
    model_failed = skipped["reason"].str.contains("champion|model", regex=True)
    return dg.AssetCheckResult(
        passed=skipped.empty,
        severity=(dg.AssetCheckSeverity.ERROR if model_failed.any()
                  else dg.AssetCheckSeverity.WARN),
        description=("every region forecast" if skipped.empty else
                     "no forecast for " + ", ".join(skipped["region"])),
        metadata={"issue_utc": str(issue_utc), "skipped_regions": ", ".join(skipped["region"])
                  or "none", "model_failures": int(model_failed.sum()),
                  "reasons": dg.MetadataValue.md(quality.markdown_table(skipped, max_rows=40))})


model_asset_checks = [champions_beat_seasonal_naive, every_region_forecast]
