"""Metadata every DuckDB-table asset shares: its column schema; per run rows, window, regions,
a preview."""

from datetime import datetime

import dagster as dg
import pandas as pd

from electricity_assets import quality, storage

# Dagster copies a ranged run's metadata into the event of every hourly partition it covers: a
# full-history backfill would store a markdown table ~40,000 times (hundreds of MB of event log).
# Beyond a week, tables are left out of the metadata (raw assets log their coverage instead).
MAX_TABLE_HOURS = 168


def column_schema(table: storage.Table) -> dict[str, dg.TableSchema]:
    """Definition metadata: the table's columns in the UI, from the DDL's own declaration
    (names unquoted: `"offset"` is quoted in SQL only because OFFSET is a keyword)."""
    return {"dagster/column_schema": dg.TableSchema(columns=[
        dg.TableColumn(c.name.strip('"'), c.sql_type, description=c.description or None,
                       constraints=dg.TableColumnConstraints(nullable=c.nullable))
        for c in table.columns])}


def long_window(start: datetime, end: datetime) -> bool:
    return (end - start).total_seconds() > MAX_TABLE_HOURS * 3600


def window_metadata(rows: int, start: datetime, end: datetime, regions: list[str],
                    preview: pd.DataFrame) -> dict[str, dg.MetadataValue]:
    metadata = {
        "dagster/row_count": dg.MetadataValue.int(rows),
        "window_start": dg.MetadataValue.text(start.isoformat()),
        "window_end": dg.MetadataValue.text(end.isoformat()),
        "regions": dg.MetadataValue.text(", ".join(regions) or "none"),
    }
    if not long_window(start, end):
        metadata["preview"] = dg.MetadataValue.md(quality.markdown_table(preview))
    return metadata
