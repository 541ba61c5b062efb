"""ConfigurableResource classes, configured from environment variables in `definitions.py`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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
        if self.database != ":memory:":
            Path(self.database).parent.mkdir(parents=True, exist_ok=True)
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


class MLflowResource(dg.ConfigurableResource):
    """Where training runs and the model registry live (empty fields: `settings` defaults)."""

    tracking_uri: str = ""
    artifact_root: str = ""
    experiment_name: str = "demand-forecasting"
    ui_url: str = "http://127.0.0.1:5000"  # for run links in asset metadata

    def mlflow_config(self):  # -> modeling.registry.MlflowConfig (lazy import: MLflow is slow)
        from electricity_assets import settings
        from electricity_assets.modeling.registry import MlflowConfig

        return MlflowConfig(self.tracking_uri or settings.mlflow_tracking_uri(),
                            self.artifact_root or settings.mlflow_artifact_root(),
                            self.experiment_name, self.ui_url)


def build_resources() -> dict[str, dg.ConfigurableResource]:
    """Resources from the environment; secrets go through EnvVar so the UI never shows them."""
    from electricity_assets import settings

    key = dg.EnvVar("EIA_API_KEY") if os.environ.get("EIA_API_KEY") else None
    return {
        "duckdb": ElectricityDuckDB(database=settings.duckdb_path()),
        "source": SourceResource(
            mode=settings.source_mode(),
            data_dir=str(settings.data_dir()),
            eia_api_key=key,
        ),
        "mlflow": MLflowResource(
            tracking_uri=settings.mlflow_tracking_uri(),
            artifact_root=settings.mlflow_artifact_root(),
            ui_url=os.environ.get("MLFLOW_UI_URL", "http://127.0.0.1:5000"),
        ),
    }
