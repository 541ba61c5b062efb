"""demand_forecasts: every region's 1-48 h path issued at each hour, from what was known then.

The hourly partition K is the issue hour: its data (demand and weather of hour K) is complete at
K + 1 h, the issue time `issue_utc`, and the partition holds the forecasts of K + 1 h .. K + 48 h
(`horizon_h` 1..48) for every region. Backfilling issue hours replays history (forecast
vintages); the 24 h-ahead series the dashboard compares with EIA's DF is the `horizon_h = 24`
slice. An input hour that lands late re-issues every partition that read it
(`automation.reissue_on_late_inputs`, through the partition mappings below).
"""

from datetime import datetime, timedelta

import dagster as dg
import pandas as pd
from pydantic import Field

from electricity_assets import quality, settings, storage
from electricity_assets.assets.metadata import column_schema, long_window
from electricity_assets.automation import day_ahead_when_issued, reissue_on_late_inputs
from electricity_assets.datasets import DEMAND, WEATHER
from electricity_assets.features import issue
from electricity_assets.partitions import HOURLY_WINDOWED, day_ahead_partitions
from electricity_assets.resources import ElectricityDuckDB, MLflowResource, SourceResource
from electricity_assets.sources.select import load_window

OWNERS = ["team:forecasting"]


def _hours_back(span: timedelta) -> int:
    return -int(span / timedelta(hours=1))


@dg.asset(
    deps=[
        # An issue reads demand and observed weather up to its hour, back to the oldest lag.
        dg.AssetDep("raw_demand", partition_mapping=dg.TimeWindowPartitionMapping(
            start_offset=-issue.PROFILE_LOOKBACK_HOURS - 1, end_offset=0)),
        dg.AssetDep("raw_weather", partition_mapping=dg.TimeWindowPartitionMapping(
            start_offset=_hours_back(issue.WEATHER_LOOKBACK), end_offset=0)),
        # Issues of week W come from the champion trained up to the end of week W-1. The
        # offsets count downstream (hourly) partitions: -1 would map an hour to the week of
        # the hour before it.
        dg.AssetDep("trained_models", partition_mapping=dg.TimeWindowPartitionMapping(
            start_offset=-168, end_offset=-168)),
        "weather_station_offsets",  # the region weather of an issue (features.issue)
    ],
    **HOURLY_WINDOWED,
    automation_condition=reissue_on_late_inputs(),
    metadata=column_schema(storage.DEMAND_FORECASTS),
    group_name="modeling",
    kinds={"mlflow", "duckdb"},
    owners=OWNERS,
    description=(
        "Partition = issue hour K (issued at K + 1 h, when K's data is complete): for every "
        "region the champion's forecast of the next 48 hours (`horizon_h` 1..48) with P10/P90, "
        "model version, the last demand hour used and the weather input. Only data before the "
        "issue time is used; a region whose demand of hour K is missing or whose model cannot "
        "be loaded is skipped with the reason (table forecast_skips, metadata). Re-issued by "
        "automation when an input hour it read lands late."
    ),
)
def demand_forecasts(context: dg.AssetExecutionContext, duckdb: ElectricityDuckDB,
                     mlflow: MLflowResource, source: SourceResource) -> dg.MaterializeResult:
    # Not MLflow: the champions come from the serving cache while it is fresh (latency).
    from electricity_assets.modeling import champion_cache, issuing

    start, end = context.partition_time_window
    issues = issuing.issues_of_window(start, end)
    source_config = source.source_config()

    def outlook(first: datetime, last: datetime) -> pd.DataFrame:
        return load_window(WEATHER, first, last, source_config).rows

    def df_outlook(first: datetime, last: datetime) -> pd.DataFrame:
        # EIA's DF of the hours ahead (`known_before` keeps the DF rows): live only what EIA
        # has posted; offline the replay's, which `features.issue` reads from EIA's posting on.
        return load_window(DEMAND, first, last, source_config).rows

    with duckdb.get_connection() as conn:
        regions = storage.demand_regions(conn)
    champions, model_skips = champion_cache.load_champions(
        regions, issuing.MlflowChampions(mlflow.mlflow_config), settings.local_home(),
        settings.champion_index_max_age())
    batch = issuing.forecast_issues(duckdb.get_connection, issues, champions, model_skips,
                                    outlook, simulate_error=source.clock().replaying,
                                    df_outlook=df_outlook)
    with duckdb.get_connection() as conn:
        written = issuing.replace_issues(conn, batch, issues[0], issues[-1] + timedelta(hours=1),
                                         regions=sorted(champions))
    return dg.MaterializeResult(metadata=_metadata(context, batch, written, start, end,
                                                   model_skips))


def _metadata(context: dg.AssetExecutionContext, batch, written: int, start: datetime,
              end: datetime, model_skips: dict[str, str]) -> dict[str, dg.MetadataValue]:
    skipped = batch.skipped
    if batch.df_outlook_error:
        context.log.warning(f"EIA's DF of the hours ahead unavailable ({batch.df_outlook_error}): "
                            "the models forecast without it, as before 11:00 Eastern")
    for region, reason in model_skips.items():
        context.log.warning(f"{region}: no forecasts - {reason} (its stored forecasts are kept)")
    for (region, reason), rows in skipped.groupby(["region", "reason"]).size().items():
        if region not in model_skips:
            context.log.warning(f"{region}: {rows} issue(s) skipped - {reason}")
    context.log.info(f"demand_forecasts: {written:,} rows for issues [{start + timedelta(hours=1)}"
                     f", {end + timedelta(hours=1)}), {len(skipped)} region-issues skipped")
    rows = batch.rows
    by_region = (rows.groupby("region").agg(
        issues=("issue_utc", "nunique"), rows=("horizon_h", "size"),
        model_version=("model_version", "first"), weather_input=("weather_input", "first"))
        .reset_index() if len(rows) else rows)
    metadata = {
        "dagster/row_count": dg.MetadataValue.int(written),
        "issues": dg.MetadataValue.int(int((end - start) / timedelta(hours=1))),
        "regions": dg.MetadataValue.text(", ".join(sorted(rows["region"].unique())) or "none"),
        "skipped_region_issues": dg.MetadataValue.int(len(skipped)),
        # From 11:00 Eastern EIA's DF of the rest of the day is an input (features.issue).
        "rows_with_df_input": dg.MetadataValue.int(batch.df_input_rows),
        "df_outlook": dg.MetadataValue.text(
            f"unavailable ({batch.df_outlook_error}): forecast without DF"
            if batch.df_outlook_error else "read from the source"),
        "skipped_regions": dg.MetadataValue.text(", ".join(sorted(skipped["region"].unique()))
                                                 or "none"),
    }
    if not long_window(start, end):  # copied into every partition's event: keep it small
        reasons = (skipped.groupby(["region", "reason"]).size().rename("issues").reset_index()
                   if len(skipped) else skipped)
        metadata["skipped"] = dg.MetadataValue.md(quality.markdown_table(reasons) or "none")
        metadata["by_region"] = dg.MetadataValue.md(quality.markdown_table(by_region))
        metadata["preview"] = dg.MetadataValue.md(quality.markdown_table(
            rows[rows["horizon_h"].isin([1, 6, 24, 48])][
                ["region", "issue_utc", "horizon_h", "forecast_mwh", "p10_mwh", "p90_mwh"]]
            .head(16)))
    return metadata


class DayAheadConfig(dg.Config):
    issue_local_hour: int = Field(
        default=9, ge=1, le=23,
        description="Local hour of D-1 whose issue is the day-ahead product of day D (balancing "
                    "authorities prepare theirs in the morning; EIA publishes DF ~10:00 ET).")


@dg.asset(
    deps=[dg.AssetDep("demand_forecasts", partition_mapping=dg.TimeWindowPartitionMapping(
        start_offset=-1, end_offset=-1))],  # day D reads the issues of UTC day D-1
    partitions_def=day_ahead_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    automation_condition=day_ahead_when_issued(),
    metadata=column_schema(storage.DAY_AHEAD_FORECASTS),
    group_name="modeling",
    kinds={"duckdb"},
    owners=OWNERS,
    description=(
        "The day-ahead product on DF's footing: for local day D of every region, the issue made "
        "at 09:00 local time on D-1 (config issue_local_hour), its forecasts of the hours of D. "
        "Scored against EIA's DF on the same hours in the metadata and by "
        "`bench/forecast_accuracy.py --day-ahead`."
    ),
)
def day_ahead_forecasts(context: dg.AssetExecutionContext, config: DayAheadConfig,
                        duckdb: ElectricityDuckDB) -> dg.MaterializeResult:
    from electricity_assets.modeling import issuing

    start, end = context.partition_time_window
    days = pd.date_range(start, end, freq="D", inclusive="left").date
    with duckdb.get_connection() as conn:
        regions = storage.demand_regions(conn)
        parts, skipped = [], {}
        for day in days:
            rows, missing = issuing.day_ahead_rows(conn, day, regions, config.issue_local_hour)
            parts.append(rows)
            skipped.update({f"{r} {day}": why for r, why in missing.items()})
        frame = pd.concat(parts, ignore_index=True)
        storage.ensure_table(conn, storage.DAY_AHEAD_FORECASTS)
        with storage.transaction(conn):
            conn.execute("DELETE FROM day_ahead_forecasts WHERE target_date >= ? "
                         "AND target_date < ?", [start.date(), end.date()])
            if len(frame):
                storage.insert_frame(conn, "day_ahead_forecasts", frame)
        scores = issuing.day_ahead_scores(conn, start.date(), end.date())
    for key, why in skipped.items():
        context.log.warning(f"day-ahead {key}: {why}")
    return dg.MaterializeResult(metadata={
        "dagster/row_count": dg.MetadataValue.int(len(frame)),
        "days": dg.MetadataValue.text(f"{days[0]} .. {days[-1]}"),
        "issue_local_hour": config.issue_local_hour,
        "skipped": dg.MetadataValue.md("\n".join(f"- {k}: {v}" for k, v in skipped.items())
                                       or "none"),
        "scores_vs_df": dg.MetadataValue.md(quality.markdown_table(scores) or "no actuals yet"),
    })
