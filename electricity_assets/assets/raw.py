"""raw_demand and raw_weather: one ingestion asset factory, two dataset configurations.

Each run covers a time window (one hour, or a whole backfill range in a single run) and replaces
exactly that window of its own source's rows in DuckDB, so re-materialising never duplicates and
never deletes another source's rows (streamed ones above all). Runs started by the Kafka sensor
carry `kafka_offsets` instead and upsert the messages of that offset range. Every source's rows
are kept in `<table>_by_source`; the raw table holds, per key, the latest published one.
"""


from datetime import datetime

import dagster as dg
from pydantic import Field

from electricity_assets import quality, storage
from electricity_assets.assets.metadata import column_schema, long_window, window_metadata
from electricity_assets.datasets import DEMAND, WEATHER, Dataset
from electricity_assets.ingest import write_window
from electricity_assets.partitions import HOURLY_WINDOWED
from electricity_assets.plausibility import latest_plausible_hour
from electricity_assets.resources import ElectricityDuckDB, KafkaResource, SourceResource
from electricity_assets.sources.select import load_window
from electricity_assets.streaming import losses

OWNERS = ["team:data-platform"]
LOST_TAG = "kafka/lost_messages"  # .<table> on a stream run that found messages lost


def lost_messages(tags: dict[str, str]) -> int:
    """Messages a run's raw assets found lost (their run tags)."""
    return sum(int(v) for k, v in tags.items() if k.startswith(LOST_TAG + "."))

DESCRIPTIONS = {
    "demand": (
        "Hourly EIA-930 demand (type D) and the balancing authorities' day-ahead forecast (DF) "
        "per region, in MWh, as published (glitches flagged by checks, never dropped). Source: "
        "bundled replay of real EIA data by default, EIA API v2 when EIA_API_KEY is set, Kafka "
        "for live partitions."
    ),
    "weather": (
        "Hourly weather per station (temperature, dew point, relative humidity, wind speed, "
        "precipitation), `source` saying where from: NOAA LCD airport stations (public domain) "
        "and Open-Meteo points (CC BY 4.0) in the bundled replay, the Open-Meteo archive/forecast "
        "APIs for every catalogue point in api mode, Kafka for live partitions. A region's "
        "weather is derived from its catalogue stations in weather_features."
    ),
}
_SOURCES_NOTE = (
    " Every source's rows are kept side by side in {table}_by_source; this table holds one row "
    "per key, the latest published (a streamed message by its Kafka time; a bulk pull counts as "
    "published before any message), so re-pulling a window never loses a streamed row.")


class RawIngestConfig(dg.Config):
    kafka_offsets: str | None = Field(
        default=None,
        description="Set by the Kafka sensor: JSON offset ranges to ingest instead of the source.",
    )
    kafka_first_hour: str | None = Field(
        default=None, description="Set by the Kafka sensor: first hour (ISO) this run writes.")
    kafka_last_hour: str | None = Field(
        default=None, description="Set by the Kafka sensor: last hour (ISO) this run writes.")
    kafka_latest_plausible_hour: str | None = Field(
        default=None,
        description="Set by the Kafka sensor: messages about later hours are dead letters "
                    "(default: a few days past the data clock's now).")

    def span(self) -> tuple[datetime, datetime] | None:
        if self.kafka_first_hour is None or self.kafka_last_hour is None:
            return None
        return (datetime.fromisoformat(self.kafka_first_hour),
                datetime.fromisoformat(self.kafka_last_hour))

    def latest_hour(self) -> datetime | None:
        hour = self.kafka_latest_plausible_hour
        return None if hour is None else datetime.fromisoformat(hour)


def _window_metadata(context: dg.AssetExecutionContext, conn, dataset: Dataset,
                     start: datetime, end: datetime, rows: int) -> dict[str, dg.MetadataValue]:
    gaps = quality.missing_hours(conn, dataset, start, end)
    if long_window(start, end):  # too big to copy into every partition's event: log it once
        context.log.info(f"{dataset.table} coverage per series:\n"
                         f"{quality.markdown_table(gaps, max_rows=100)}")
    preview = conn.execute(
        f"SELECT {', '.join(dataset.columns)} FROM {dataset.table} "
        "WHERE period_utc >= ? AND period_utc < ? ORDER BY period_utc DESC, region LIMIT 10",
        [start, end],
    ).df()
    regions = sorted(gaps["region"].unique()) if len(gaps) else []
    sources = quality.rows_by_source(conn, dataset, start, end)
    streamed = sources.loc[sources["source"] == "kafka", "rows_stored"].sum()
    return {
        # What each source holds in the window and how many of its rows the latest-published
        # rule uses: a bulk re-run shows here that the streamed rows were kept.
        "rows_by_source": dg.MetadataValue.md(quality.markdown_table(sources)),
        "streamed_rows": dg.MetadataValue.int(int(streamed)),
        **window_metadata(rows, start, end, regions, preview),
        "missing_hours": dg.MetadataValue.int(int(gaps["missing_hours"].sum()) if len(gaps) else 0),
        "rows_with_nulls": dg.MetadataValue.int(
            int(gaps["rows_with_nulls"].sum()) if len(gaps) else 0),
        **({} if long_window(start, end) else {
            "coverage": dg.MetadataValue.md(quality.markdown_table(gaps, max_rows=40))}),
    }


def build_raw_asset(dataset: Dataset) -> dg.AssetsDefinition:
    @dg.asset(
        name=dataset.table,
        **HOURLY_WINDOWED,
        group_name="raw",
        kinds={"duckdb"},
        owners=OWNERS,
        description=DESCRIPTIONS[dataset.name] + _SOURCES_NOTE.format(table=dataset.table),
        metadata=column_schema(storage.TABLES[dataset.table]),
    )
    def _raw(context: dg.AssetExecutionContext, config: RawIngestConfig,
             duckdb: ElectricityDuckDB, source: SourceResource,
             kafka: KafkaResource) -> dg.MaterializeResult:
        start, end = context.partition_time_window
        if config.kafka_offsets:
            from electricity_assets.streaming.ingest import ingest_offsets

            with duckdb.get_connection() as conn:
                result = ingest_offsets(
                    conn, dataset, config.kafka_offsets, kafka.kafka_settings(), config.span(),
                    config.latest_hour() or latest_plausible_hour(source.clock().now()))
                metadata = _window_metadata(context, conn, dataset, start, end,
                                            result.rows_written)
            context.log.info(
                f"{dataset.table}: {result.messages} Kafka messages -> {result.rows_written} rows "
                f"upserted, {result.dead_letters} dead letters, {len(result.hours)} hours")
            metadata["kafka_messages"] = dg.MetadataValue.int(result.messages)
            metadata["dead_letters"] = dg.MetadataValue.int(result.dead_letters)
            if result.lost:
                lost = "\n".join(f"| {x.partition} | {x.start}..{x.end - 1} | {x.reason} |"
                                  for x in result.lost)
                with duckdb.get_connection() as conn:  # the ledger the check and re-fetch read
                    count = losses.record_losses(conn, dataset.name, result.topic,
                                                 result.topic_id, result.lost,
                                                 losses.hour_range(start, end), context.run.run_id)
                context.log.warning(f"{dataset.table}: {count} Kafka messages lost before "
                                    f"ingestion (never written); their hours are re-fetched "
                                    f"from the source (refetch_lost_hours):\n{lost}")
                context.instance.add_run_tags(context.run.run_id,
                                              {f"{LOST_TAG}.{dataset.table}": str(count)})
                metadata["lost_offsets"] = dg.MetadataValue.md(
                    f"| partition | offsets | why |\n|---|---|---|\n{lost}")
                metadata["lost_messages"] = dg.MetadataValue.int(count)
            return dg.MaterializeResult(metadata=metadata)

        fetched = load_window(dataset, start, end, source.source_config())
        context.log.info(
            f"{dataset.table}: {len(fetched.rows):,} rows from {fetched.source} for "
            f"[{start.isoformat()}, {end.isoformat()})")
        if len(fetched.rejected):
            context.log.warning(
                f"{dataset.table}: {len(fetched.rejected)} source rows rejected, e.g. "
                f"{fetched.rejected['reason'].iloc[0]}")
        with duckdb.get_connection() as conn:
            written = write_window(conn, dataset, fetched, start, end)
            metadata = _window_metadata(context, conn, dataset, start, end, written)
            refetched = losses.mark_refetched(conn, dataset.name, start, end, context.run.run_id)
        if refetched:
            context.log.info(f"{dataset.table}: the hours of {refetched} lost Kafka messages "
                             "re-fetched from the source")
            metadata["lost_messages_refetched"] = dg.MetadataValue.int(refetched)
        metadata["source"] = dg.MetadataValue.text(fetched.source)
        metadata["rejected_rows"] = dg.MetadataValue.int(len(fetched.rejected))
        return dg.MaterializeResult(metadata=metadata)

    return _raw


def build_raw_checks(dataset: Dataset,
                     asset: dg.AssetsDefinition) -> list[dg.AssetChecksDefinition]:
    @dg.asset_check(asset=asset, name="no_duplicate_keys", blocking=True,
                    description=f"No two rows share ({', '.join(dataset.key_columns)}).")
    def _no_duplicates(duckdb: ElectricityDuckDB) -> dg.AssetCheckResult:
        with duckdb.get_connection() as conn:
            dupes = quality.duplicate_keys(conn, dataset)
        return dg.AssetCheckResult(
            passed=dupes.empty,
            metadata={"duplicate_keys": len(dupes), "examples": dg.MetadataValue.md(
                quality.markdown_table(dupes))})

    @dg.asset_check(asset=asset, name="missing_hours",
                    description="Hours with no row between each series' first and last hour.")
    def _missing(duckdb: ElectricityDuckDB) -> dg.AssetCheckResult:
        with duckdb.get_connection() as conn:
            gaps = quality.missing_hours(conn, dataset)
        missing = int(gaps["missing_hours"].sum()) if len(gaps) else 0
        return dg.AssetCheckResult(
            passed=missing == 0, severity=dg.AssetCheckSeverity.WARN,
            metadata={"missing_hours": missing,
                      "per_series": dg.MetadataValue.md(quality.markdown_table(gaps, 40))})

    @dg.asset_check(asset=asset, name="implausible_values",
                    description="Negative or physically implausible values (flagged, kept in raw).")
    def _implausible(duckdb: ElectricityDuckDB) -> dg.AssetCheckResult:
        with duckdb.get_connection() as conn:
            bad = quality.implausible_rows(conn, dataset)
        series = [c for c in dataset.key_columns if c != "period_utc"]
        counts = (bad.groupby([*series, "reason"]).size().rename("rows").reset_index()
                  if len(bad) else bad)
        return dg.AssetCheckResult(
            passed=bad.empty, severity=dg.AssetCheckSeverity.WARN,
            metadata={"implausible_rows": len(bad),
                      "by_rule": dg.MetadataValue.md(quality.markdown_table(counts, 40)),
                      "examples": dg.MetadataValue.md(quality.markdown_table(bad))})

    @dg.asset_check(asset=asset, name="no_lost_messages",
                    description="No Kafka message lost before ingestion whose hours were not "
                                "re-fetched from the source yet (stream_losses).")
    def _no_lost(duckdb: ElectricityDuckDB) -> dg.AssetCheckResult:
        with duckdb.get_connection() as conn:
            open_ = losses.open_losses(conn, dataset.name)
        return dg.AssetCheckResult(
            passed=open_.empty,
            metadata={"lost_messages": int(open_["messages"].sum()) if len(open_) else 0,
                      "lost_ranges": dg.MetadataValue.md(quality.markdown_table(open_, 40))})

    return [_no_duplicates, _missing, _implausible, _no_lost]


raw_demand = build_raw_asset(DEMAND)
raw_weather = build_raw_asset(WEATHER)
raw_assets = [raw_demand, raw_weather]
raw_asset_checks = [
    *build_raw_checks(DEMAND, raw_demand),
    *build_raw_checks(WEATHER, raw_weather),
]
