"""demand_forecasts: each region's champion forecast, 24 hours ahead, per hourly partition."""


import dagster as dg

from electricity_assets import quality, storage
from electricity_assets.assets.metadata import column_schema, window_metadata
from electricity_assets.partitions import HOURLY_WINDOWED
from electricity_assets.resources import ElectricityDuckDB, MLflowResource
from electricity_assets.storage import replace_window

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
        "Regions without a champion are skipped (listed in the metadata)."
    ),
)
def demand_forecasts(context: dg.AssetExecutionContext, duckdb: ElectricityDuckDB,
                     mlflow: MLflowResource) -> dg.MaterializeResult:
    from electricity_assets.modeling.forecasting import forecast_window  # MLflow import is slow

    start, end = context.partition_time_window
    with duckdb.get_connection() as conn:
        batch = forecast_window(conn, start, end, mlflow.mlflow_config())
        written = replace_window(conn, TABLE, batch.rows, start, end)
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

