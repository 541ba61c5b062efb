"""demand_forecasts: each region's champion forecast, 24 hours ahead, per hourly partition;
next_day_forecasts: the 24 hours after the latest observed hour, issued at the data clock."""

from datetime import datetime

import dagster as dg
import pandas as pd
from pydantic import Field

from electricity_assets import quality, replay_clock, storage
from electricity_assets.assets.metadata import column_schema, window_metadata
from electricity_assets.assets.raw import source_config
from electricity_assets.datasets import WEATHER
from electricity_assets.partitions import HOURLY_WINDOWED
from electricity_assets.resources import ElectricityDuckDB, MLflowResource, SourceResource
from electricity_assets.sources.select import load_window

OWNERS = ["team:forecasting"]
TABLE = storage.DEMAND_FORECASTS.name


@dg.asset(
    # Hours of week W are forecast by the model trained up to the end of week W-1.
    deps=["demand_features", "weather_features",
          dg.AssetDep("trained_models", partition_mapping=dg.TimeWindowPartitionMapping(
              start_offset=-1, end_offset=-1))],
    **HOURLY_WINDOWED,
    metadata=column_schema(storage.DEMAND_FORECASTS),
    group_name="modeling",
    kinds={"mlflow", "duckdb"},
    owners=OWNERS,
    description=(
        "For every region and hour of the window, the forecast of models:/demand-<REGION>"
        "@champion made with data up to 24 h before the hour, its P10/P90 and model version. "
        "A region whose champion is missing or cannot be loaded is skipped, named with the "
        "reason (log, metadata, check every_region_forecast) and keeps its stored rows."
    ),
)
def demand_forecasts(context: dg.AssetExecutionContext, duckdb: ElectricityDuckDB,
                     mlflow: MLflowResource) -> dg.MaterializeResult:
    from electricity_assets.modeling.forecasting import (  # MLflow import is slow
        forecast_window,
        write_forecasts,
    )

    start, end = context.partition_time_window
    with duckdb.get_connection() as conn:
        batch = forecast_window(conn, start, end, mlflow.mlflow_config())
        written = write_forecasts(conn, batch, start, end)  # skipped regions keep their rows
    for region, reason in batch.skipped.items():
        context.log.warning(f"{region}: no forecast - {reason}")
    for region, hours in batch.in_sample.items():
        context.log.warning(f"{region}: {hours} forecast hours fall inside the champion's "
                            "training window (in-sample): materialise an earlier trained_models "
                            "partition for honest historical forecasts")
    context.log.info(f"demand_forecasts: {written:,} rows for [{start.isoformat()}, "
                     f"{end.isoformat()})")
    versions = (batch.rows.groupby("region")["model_version"].first().reset_index()
                if written else batch.rows)
    regions = sorted(batch.rows["region"].unique()) if written else []
    return dg.MaterializeResult(metadata={
        **window_metadata(written, start, end, regions, batch.rows.tail(10)),
        "skipped": dg.MetadataValue.md(
            "\n".join(f"- {k}: {v}" for k, v in batch.skipped.items()) or "none"),
        "model_versions": dg.MetadataValue.md(quality.markdown_table(versions)),
        "in_sample_hours": sum(batch.in_sample.values()),
    })



class NextDayConfig(dg.Config):
    issued_at: str | None = Field(
        default=None,
        description=("ISO-8601 UTC time to issue the forecast at (data with period_utc before "
                     "its hour). Empty: the data clock (the replay clock offline)."))


@dg.asset(
    deps=["raw_demand", "raw_weather", "weather_features", "trained_models"],
    metadata=column_schema(storage.NEXT_DAY_FORECASTS),
    group_name="modeling",
    kinds={"mlflow", "duckdb"},
    owners=OWNERS,
    description=(
        "The next 24 hours: for every region, the champion's forecast with P10/P90 for the 24 "
        "hours after its latest observed demand hour, issued at the data clock with data "
        "before it only. Weather of the hours ahead: the Open-Meteo forecast live; offline the "
        "replay's observations plus simulated day-ahead forecast error. The table holds the "
        "newest issue; kept fresh by next_day_after_new_data after each hourly, stream or "
        "retraining run."
    ),
)
def next_day_forecasts(context: dg.AssetExecutionContext, config: NextDayConfig,
                       duckdb: ElectricityDuckDB, mlflow: MLflowResource,
                       source: SourceResource) -> dg.MaterializeResult:
    from electricity_assets.modeling import next_day  # MLflow import is slow

    clock = (pd.Timestamp(config.issued_at) if config.issued_at
             else pd.Timestamp(replay_clock.current_time()))
    clock = clock.tz_localize("UTC") if clock.tzinfo is None else clock
    weather_source = source_config(source)

    def outlook(start: datetime, end: datetime) -> pd.DataFrame:
        return load_window(WEATHER, start, end, weather_source).rows

    batch = next_day.next_day_forecasts(duckdb.get_connection, clock.to_pydatetime(),
                                        mlflow.mlflow_config(), outlook,
                                        simulate_error=source.mode == "bundled")
    with duckdb.get_connection() as conn:
        written = next_day.replace_forecasts(conn, batch)
    for region, reason in batch.skipped.items():
        context.log.warning(f"{region}: no next-day forecast - {reason}")
    for region, note in batch.notes.items():
        context.log.warning(f"{region}: {note}")
    context.log.info(f"next_day_forecasts: {written} rows issued at "
                     f"{batch.issued_at.isoformat()}")
    rows = batch.rows
    regions = sorted(rows["region"].unique()) if written else []
    summary = (rows.groupby("region").agg(
        data_until_utc=("data_until_utc", "first"), hours=("period_utc", "size"),
        peak_mwh=("forecast_mwh", "max"), weather_input=("weather_input", "first"),
        model_version=("model_version", "first")).reset_index() if written else rows)
    return dg.MaterializeResult(metadata={
        "dagster/row_count": dg.MetadataValue.int(written),
        "issued_at": dg.MetadataValue.text(batch.issued_at.isoformat()),
        "regions": dg.MetadataValue.text(", ".join(regions) or "none"),
        "by_region": dg.MetadataValue.md(quality.markdown_table(summary)),
        "skipped": dg.MetadataValue.md(
            "\n".join(f"- {k}: {v}" for k, v in {**batch.skipped, **batch.notes}.items())
            or "none"),
        "preview": dg.MetadataValue.md(quality.markdown_table(
            rows[["region", "period_utc", "forecast_mwh", "p10_mwh", "p90_mwh"]].head(10))),
    })
