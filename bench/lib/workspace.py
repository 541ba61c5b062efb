"""Build a self-contained DuckDB from a replay folder: ingest, then featurise every hour.

Used by the backtest benchmark on data the project has never seen (`--data-dir`), so it never
touches the user's database; the Dagster assets do the same work partition by partition.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd

from electricity_assets import storage
from electricity_assets.datasets import DEMAND, WEATHER, Dataset
from electricity_assets.features import demand, weather
from electricity_assets.ingest import ingest_window
from electricity_assets.sources.bundled import BundledDataError, bundled_coverage
from electricity_assets.sources.select import SourceConfig

logger = logging.getLogger(__name__)


def _ingest(conn: duckdb.DuckDBPyConnection, dataset: Dataset, data_dir: Path
            ) -> tuple[datetime, datetime] | None:
    try:
        coverage = bundled_coverage(dataset, data_dir)
    except BundledDataError:
        if dataset is DEMAND:
            raise
        logger.warning("%s: no %s file, continuing without it", data_dir, dataset.bundled_file)
        return None
    if coverage is None:
        return None
    start = pd.Timestamp(coverage[0]).tz_convert("UTC").to_pydatetime()
    end = pd.Timestamp(coverage[1]).tz_convert("UTC").to_pydatetime() + timedelta(hours=1)
    rows = ingest_window(conn, dataset, start, end, SourceConfig("bundled", data_dir))
    logger.info("ingested %d %s rows from %s", rows, dataset.name, data_dir)
    return start, end


def build_workspace(conn: duckdb.DuckDBPyConnection, data_dir: Path) -> tuple[datetime, datetime]:
    """Ingest `data_dir` and compute both feature tables; returns the demand window [start, end)."""
    conn.execute("SET TimeZone = 'UTC'")
    window = _ingest(conn, DEMAND, data_dir)
    if window is None:
        raise BundledDataError(f"{data_dir}/{DEMAND.bundled_file} holds no rows")
    _ingest(conn, WEATHER, data_dir)
    start, end = window
    end += timedelta(hours=demand.FORECAST_HORIZON_HOURS)  # features exist a day past the data
    storage.replace_window(conn, demand.SCHEMA, demand.compute_demand_features(conn, start, end),
                           start, end)
    cutoff = weather.default_normalisation_cutoff(conn)
    if cutoff is not None:  # fit, then transform, as the weather_statistics asset does
        fitted = weather.fit_weather_statistics(conn, cutoff)
        storage.replace_table(conn, weather.OFFSETS_SCHEMA, fitted.offsets)
        storage.replace_table(conn, weather.NORMALISATION_SCHEMA, fitted.normalisation)
    storage.replace_window(conn, weather.SCHEMA,
                           weather.compute_weather_features(conn, start, end), start, end)
    return start, end
