"""Raw ingestion: a window of one dataset from its source into its DuckDB table.

The one bulk-ingest path: the raw assets, the seed, the benchmarks' workspace and the backfill
benchmark all write through `write_window`, which stamps the rows and replaces exactly
[start, end) of the rows of the sources it loaded (re-running never duplicates, and rows of
other sources, e.g. streamed ones, are kept: `storage.replace_source_window`).
"""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import pandas as pd

from electricity_assets.datasets import Dataset
from electricity_assets.sources.select import SourceConfig, SourceWindow, load_window
from electricity_assets.storage import replace_source_window


def write_window(conn: duckdb.DuckDBPyConnection, dataset: Dataset, fetched: SourceWindow,
                 start: datetime, end: datetime) -> int:
    """Replace [start, end) of the fetched sources' rows by the fetched rows (each with its
    `source`), stamped with the ingestion time; returns the rows written."""
    rows = fetched.rows.assign(ingested_at=pd.Timestamp(datetime.now(UTC)),
                               published_at=pd.NaT)  # a bulk pull has no publish time
    rows["published_at"] = pd.to_datetime(rows["published_at"], utc=True)
    return replace_source_window(conn, dataset.table, rows, fetched.sources, start, end)


def ingest_window(conn: duckdb.DuckDBPyConnection, dataset: Dataset, start: datetime,
                  end: datetime, config: SourceConfig) -> int:
    """Load [start, end) from a local source (the replay folder) and write it in one go.

    Callers that fetch from the network use `load_window` first, outside their DuckDB
    connection, then `write_window`: the writer lock is not held during HTTP calls."""
    return write_window(conn, dataset, load_window(dataset, start, end, config), start, end)
