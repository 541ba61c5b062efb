"""demand_features, weather_features and the weather statistics: thin assets over `features/`.

Each feature run featurises its partition window (one hour, or a whole backfill range in one
run), reading raw history before the window as lookback, and replaces exactly that window in
DuckDB. The weather statistics (station offsets, z-score mean/std) are fitted on a training
window by their own asset (fit), which the weather features read (transform): a refit is a
materialisation of `weather_station_offsets` + `weather_normalisation`.
"""


from datetime import datetime, timedelta

import dagster as dg
import pandas as pd
from pydantic import Field

from electricity_assets import quality, storage
from electricity_assets.assets.metadata import column_schema, window_metadata
from electricity_assets.automation import reissue_on_late_inputs
from electricity_assets.features import demand, weather
from electricity_assets.partitions import HOURLY_WINDOWED
from electricity_assets.resources import ElectricityDuckDB
from electricity_assets.storage import replace_window

OWNERS = ["team:forecasting"]
PREVIEW_COLUMNS = {
    demand.TABLE: ["region", "period_utc", "demand_mwh", "is_implausible", "lag_24h",
                   "roll24_mean", "local_hour", "is_holiday"],
    weather.TABLE: ["region", "period_utc", "temperature_c", "dewpoint_c", "cdh",
                    "temp_ewm_24h", "temp_ewm_168h", "weather_stations", "weather_source"],
}


def _metadata(table: str, frame: pd.DataFrame, start: datetime, end: datetime,
              written: int) -> dict[str, dg.MetadataValue]:
    regions = sorted(frame["region"].unique()) if len(frame) else []
    return window_metadata(written, start, end, regions, frame[PREVIEW_COLUMNS[table]].tail(10))


def _reads_back(hours: int) -> dg.TimeWindowPartitionMapping:
    """A feature hour reads its raw hour and the `hours` before it (lags, rolling windows)."""
    return dg.TimeWindowPartitionMapping(start_offset=-hours, end_offset=0)


@dg.asset(
    deps=[dg.AssetDep("raw_demand", partition_mapping=_reads_back(max(demand.LAG_HOURS)))],
    **HOURLY_WINDOWED,
    automation_condition=reissue_on_late_inputs(),
    metadata=column_schema(demand.SCHEMA),
    group_name="features",
    kinds={"duckdb"},
    owners=OWNERS,
    description=(
        "Hourly demand + calendar features per region for 24-hour-ahead forecasting: cleaned "
        "demand (implausible EIA glitches nulled by a trailing 60-day median ratio rule), lags "
        "24-336 h, rolling mean/std/min/max over 24 h and 168 h ending at t-24h, local-time "
        "hour/weekday/day-of-year sin/cos (DST-correct), weekend, holiday and bridge-day flags."
    ),
)
def demand_features(context: dg.AssetExecutionContext,
                    duckdb: ElectricityDuckDB) -> dg.MaterializeResult:
    start, end = context.partition_time_window
    with duckdb.get_connection() as conn:
        frame = demand.compute_demand_features(conn, start, end)
        written = replace_window(conn, demand.SCHEMA, frame, start, end)
    flagged = (frame.loc[frame["is_implausible"]].groupby("region").size()
               .rename("implausible_hours").reset_index())
    context.log.info(f"demand_features: {written:,} rows for [{start.isoformat()}, "
                     f"{end.isoformat()}), {int(flagged['implausible_hours'].sum())} implausible")
    metadata = _metadata(demand.TABLE, frame, start, end, written)
    metadata["implausible_hours"] = dg.MetadataValue.int(int(flagged["implausible_hours"].sum()))
    metadata["implausible_by_region"] = dg.MetadataValue.md(quality.markdown_table(flagged))
    metadata["missing_target_hours"] = dg.MetadataValue.int(int(frame["demand_mwh"].isna().sum()))
    return dg.MaterializeResult(metadata=metadata)


class WeatherStatisticsConfig(dg.Config):
    normalisation_cutoff: str | None = Field(
        default=None,
        description=(
            "ISO-8601 UTC time: fit the station offsets and z-score statistics on hours strictly "
            "before it. Empty: the latest demand hour - 8 weeks."
        ),
    )


WEATHER_STATISTICS = (dg.AssetKey(weather.OFFSETS_TABLE), dg.AssetKey(weather.NORMALISATION_TABLE))


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            weather.OFFSETS_TABLE, deps=["raw_weather", "raw_demand"],
            metadata=column_schema(weather.OFFSETS_SCHEMA), kinds={"duckdb"}, owners=OWNERS,
            description=(
                "Per region, station, variable and UTC month (0 = all months): the mean "
                "difference between the region's reference series (its main source's stations) "
                "and the station, on hours before the cut-off. Added to each station's values "
                "so the region's weather stays continuous where stations or sources change.")),
        dg.AssetSpec(
            weather.NORMALISATION_TABLE, deps=["raw_weather", "raw_demand"],
            metadata=column_schema(weather.NORMALISATION_SCHEMA), kinds={"duckdb"},
            owners=OWNERS,
            description=(
                "Per region and weather variable: mean and standard deviation of the region's "
                "(offset-adjusted) series on hours before the cut-off, for the z-score features; "
                "fitted with the station offsets, same cut-off.")),
    ],
    group_name="features",
    can_subset=False,
    # Lets a CLI partition-range run of raw + features select it too (fitted once per run).
    backfill_policy=dg.BackfillPolicy.single_run(),
)
def weather_statistics(context: dg.AssetExecutionContext, config: WeatherStatisticsConfig,
                       duckdb: ElectricityDuckDB):
    """Fit the station offsets and z-score statistics; both tables replaced together."""
    with duckdb.get_connection() as conn:
        if config.normalisation_cutoff:
            cutoff = pd.Timestamp(config.normalisation_cutoff)
            cutoff = cutoff.tz_localize("UTC") if cutoff.tzinfo is None else cutoff
        else:
            cutoff = weather.default_normalisation_cutoff(conn)
        if cutoff is None:
            raise dg.Failure("no demand or weather rows to fit on: materialise raw_demand and "
                             "raw_weather first")
        fitted = weather.fit_weather_statistics(conn, cutoff)
        with storage.transaction(conn):
            storage.replace_table(conn, weather.OFFSETS_SCHEMA, fitted.offsets)
            storage.replace_table(conn, weather.NORMALISATION_SCHEMA, fitted.normalisation)
    stats = fitted.normalisation
    context.log.info(f"weather statistics fitted before {cutoff}: {len(fitted.offsets):,} "
                     f"station offsets, {len(stats):,} z-score statistics")
    common = {"cutoff_utc": dg.MetadataValue.text(pd.Timestamp(cutoff).isoformat())}
    yield dg.MaterializeResult(asset_key=WEATHER_STATISTICS[0], metadata={
        **common, "dagster/row_count": dg.MetadataValue.int(len(fitted.offsets)),
        "stations": dg.MetadataValue.int(int(fitted.offsets["station"].nunique()))})
    yield dg.MaterializeResult(asset_key=WEATHER_STATISTICS[1], metadata={
        **common, "dagster/row_count": dg.MetadataValue.int(len(stats)),
        "normalisation": dg.MetadataValue.md(quality.markdown_table(
            stats[["region", "variable", "mean", "std", "n_rows"]], max_rows=40))})


@dg.asset(
    deps=[dg.AssetDep("raw_weather", partition_mapping=_reads_back(
        int(weather.LOOKBACK / timedelta(hours=1)))), *WEATHER_STATISTICS],
    **HOURLY_WINDOWED,
    automation_condition=reissue_on_late_inputs(),
    metadata=column_schema(weather.SCHEMA),
    group_name="features",
    kinds={"duckdb"},
    owners=OWNERS,
    description=(
        "Hourly weather features per region, derived from the region's catalogue stations "
        "(NOAA stations, Open-Meteo points; per-station offsets fitted on a training window keep "
        "the series continuous where stations or sources change): temperature, dew point, "
        "humidity, wind, precipitation, heating/cooling degree hours and their products with "
        "the local hour, NWS heat index, temperature lags 1-72 h, trailing 24 h mean/max/min, "
        "exponentially weighted means over a day, a week and a month, and z-scores "
        "(statistics and offsets from a training window only: weather_normalisation, "
        "weather_station_offsets; before they are materialised, plain station means and no "
        "z-scores)."
    ),
)
def weather_features(context: dg.AssetExecutionContext,
                     duckdb: ElectricityDuckDB) -> dg.MaterializeResult:
    start, end = context.partition_time_window
    with duckdb.get_connection() as conn:
        frame = weather.compute_weather_features(conn, start, end)
        written = replace_window(conn, weather.SCHEMA, frame, start, end)
        stats = weather.weather_normalisation(conn)
    context.log.info(f"weather_features: {written:,} rows for [{start.isoformat()}, "
                     f"{end.isoformat()})")
    if stats.empty and len(frame):
        context.log.warning("no weather statistics yet: plain station means, no z-scores; "
                            "materialise weather_station_offsets + weather_normalisation")
    metadata = _metadata(weather.TABLE, frame, start, end, written)
    metadata["normalisation_cutoff"] = dg.MetadataValue.text(
        str(stats["cutoff_utc"].iloc[0]) if len(stats) else "not fitted")
    metadata["normalisation"] = dg.MetadataValue.md(quality.markdown_table(
        stats[["region", "variable", "mean", "std", "n_rows"]], max_rows=40))
    sources = (frame.groupby(["region", "weather_source"], dropna=False).size()
               .rename("hours").reset_index() if len(frame) else frame)
    metadata["hours_by_source"] = dg.MetadataValue.md(quality.markdown_table(sources, 40))
    return dg.MaterializeResult(metadata=metadata)


feature_assets = [demand_features, weather_statistics, weather_features]
