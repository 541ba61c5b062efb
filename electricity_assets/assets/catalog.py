"""The tables no asset materialises by name, declared so the catalog lists every table.

Each is written as a side output of an asset's run (the writer is in `written_by`) or, for the
dashboard's serving snapshot (`serving.duckdb`), by the `publish_serving_snapshot` sensor and the
first-run seed. Declared with `AssetSpec`: Dagster shows them, their columns and what they are
derived from, and never tries to materialise them itself.
"""

from __future__ import annotations

import dagster as dg

from electricity_assets import storage
from electricity_assets.assets.metadata import column_schema
from electricity_assets.streaming.losses import STREAM_LOSSES

OWNERS = ["team:forecasting"]
SNAPSHOT = "serving.duckdb (the dashboard's read-only copy; see serving.py)"


def _written_by(*writers: str, where: str = "electricity.duckdb") -> dict[str, dg.MetadataValue]:
    return {"written_by": dg.MetadataValue.text(", ".join(writers)),
            "database": dg.MetadataValue.text(where)}


def _table(table: storage.Table, group: str, description: str, *writers: str
           ) -> dg.AssetSpec:
    return dg.AssetSpec(
        table.name, group_name=group, kinds={"duckdb"}, owners=OWNERS, description=description,
        metadata={**column_schema(table), **_written_by(*writers)})


def _snapshot(name: str, description: str, deps: list[str]) -> dg.AssetSpec:
    return dg.AssetSpec(
        name, deps=deps, group_name="serving", kinds={"duckdb"}, owners=OWNERS,
        description=description,
        metadata=_written_by("publish_serving_snapshot sensor", "the first-run seed",
                             where=SNAPSHOT))


side_tables = [
    _table(storage.RAW_DEMAND_BY_SOURCE, "raw",
           "Every source's row of each demand key (bundled, API, Kafka): raw_demand holds the "
           "one the resolution rule picks (latest published, else latest ingested).",
           "raw_demand"),
    _table(storage.RAW_WEATHER_BY_SOURCE, "raw",
           "Every source's row of each station hour; raw_weather holds the one the resolution "
           "rule picks.", "raw_weather"),
    _table(storage.DEAD_LETTERS, "raw",
           "Kafka messages that could not become raw rows (invalid JSON, schema, implausible "
           "values, hours outside the data clock), with the reason; keyed by topic offset so "
           "a re-read range is stored once.", "raw_demand", "raw_weather"),
    _table(STREAM_LOSSES, "raw",
           "Kafka offset ranges lost before ingestion, with the hours they may be about and "
           "when a source pull re-fetched them (the raw assets' no_lost_messages check).",
           "raw_demand", "raw_weather"),
    _table(storage.FORECAST_SKIPS, "modeling",
           "Per issue, the regions left out of demand_forecasts (or given fewer hours) and why "
           "(no champion, missing demand hour, model not loadable).", "demand_forecasts"),
]

serving_snapshot = [
    _snapshot("forecasts_24h",
              "The 24 h-ahead slice of demand_forecasts (one row per region and hour, as EIA's "
              "day-ahead forecast), copied into the serving snapshot.", ["demand_forecasts"]),
    _snapshot("model_cards",
              "The served champion of each region as MLflow had it at publish time: version, "
              "validation metrics, feature-importance figure.", ["trained_models"]),
    _snapshot("serving_meta", "When the serving snapshot was published (its freshness).", []),
]

catalog_specs = [*side_tables, *serving_snapshot]
