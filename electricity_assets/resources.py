"""ConfigurableResource classes, configured from environment variables in `definitions.py`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource


class ElectricityDuckDB(DuckDBResource):
    """DuckDBResource that pins the session to UTC and always closes its connection.

    The parent already retries while another process holds the file lock; connections are kept
    short so the dashboard and concurrent runs can take turns.
    """

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with super().get_connection() as conn:
            try:
                conn.execute("SET TimeZone = 'UTC'")
                yield conn
            finally:
                conn.close()


class SourceResource(dg.ConfigurableResource):
    """Where raw rows come from: the offline replay folder or the live APIs."""

    mode: str = "bundled"  # bundled | api
    data_dir: str = ""
    eia_api_key: str | None = None
    eia_base_url: str = "https://api.eia.gov/v2"
    open_meteo_archive_url: str = "https://archive-api.open-meteo.com/v1/archive"
    open_meteo_forecast_url: str = "https://api.open-meteo.com/v1/forecast"
