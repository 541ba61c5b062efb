"""ConfigurableResource classes and `build_resources`, which configures them from the environment.

The UI shows each resource's configuration; secrets (EIA_API_KEY, KAFKA_SASL_PASSWORD) are
`EnvVar`s, so Dagster resolves them in the run and never displays or stores their values.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from electricity_assets import settings
from electricity_assets.datasets import DEMAND, WEATHER
from electricity_assets.replay_clock import DataClock
from electricity_assets.settings import DEFAULT_BROKER_ADDRESS, KafkaSettings
from electricity_assets.sources.select import SourceConfig


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
    """Where raw rows come from (the offline replay folder or the live APIs) and the data clock
    that goes with it (the replay clock or the wall clock)."""

    mode: str = "bundled"  # bundled | api
    data_dir: str = ""
    home: str = ""  # where the replay clock keeps its state (empty: ELECTRICITY_HOME)
    eia_api_key: str | None = None
    eia_base_url: str = settings.EIA_BASE_URL
    open_meteo_archive_url: str = settings.OPEN_METEO_ARCHIVE_URL
    open_meteo_forecast_url: str = settings.OPEN_METEO_FORECAST_URL

    def source_config(self) -> SourceConfig:
        """What `sources.select.load_window` needs (the key resolved, never shown)."""
        return SourceConfig(
            mode=self.mode,
            data_dir=Path(self.data_dir or settings.data_dir()),
            eia_api_key=self.eia_api_key,
            eia_base_url=self.eia_base_url,
            open_meteo_archive_url=self.open_meteo_archive_url,
            open_meteo_forecast_url=self.open_meteo_forecast_url,
        )

    def clock(self) -> DataClock:
        """"Now" for the data this source serves."""
        return DataClock(self.mode, Path(self.home) if self.home else None,
                         Path(self.data_dir) if self.data_dir else None)


class MLflowResource(dg.ConfigurableResource):
    """Where training runs and the model registry live (empty fields: `settings` defaults)."""

    tracking_uri: str = ""
    artifact_root: str = ""
    experiment_name: str = "demand-forecasting"
    ui_url: str = settings.DEFAULT_MLFLOW_UI_URL  # for run links in asset metadata

    def mlflow_config(self):  # -> modeling.registry.MlflowConfig (lazy import: MLflow is slow)
        from electricity_assets.modeling.registry import MlflowConfig

        return MlflowConfig(self.tracking_uri or settings.mlflow_tracking_uri(),
                            self.artifact_root or settings.mlflow_artifact_root(),
                            self.experiment_name, self.ui_url)


class KafkaResource(dg.ConfigurableResource):
    """The Kafka cluster the sensor polls and the raw assets' stream runs read."""

    bootstrap_servers: str = DEFAULT_BROKER_ADDRESS
    demand_topic: str = KafkaSettings().topic(DEMAND)
    weather_topic: str = KafkaSettings().topic(WEATHER)
    topic_partitions: int = 3
    max_batch_messages: int = 50_000
    security_protocol: str | None = None
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_ca_location: str | None = None

    @classmethod
    def from_settings(cls, kafka: KafkaSettings) -> KafkaResource:
        """The resource for `kafka`, with the password as an EnvVar (never a plain value)."""
        return cls(
            bootstrap_servers=kafka.bootstrap_servers,
            demand_topic=kafka.topic(DEMAND),
            weather_topic=kafka.topic(WEATHER),
            topic_partitions=kafka.topic_partitions,
            max_batch_messages=kafka.max_batch_messages,
            security_protocol=kafka.security_protocol,
            sasl_mechanism=kafka.sasl_mechanism,
            sasl_username=kafka.sasl_username,
            sasl_password=dg.EnvVar("KAFKA_SASL_PASSWORD") if kafka.sasl_password else None,
            ssl_ca_location=kafka.ssl_ca_location,
        )

    def kafka_settings(self) -> KafkaSettings:
        return KafkaSettings(
            bootstrap_servers=self.bootstrap_servers,
            topics={DEMAND.name: self.demand_topic, WEATHER.name: self.weather_topic},
            topic_partitions=self.topic_partitions,
            max_batch_messages=self.max_batch_messages,
            security_protocol=self.security_protocol,
            sasl_mechanism=self.sasl_mechanism,
            sasl_username=self.sasl_username,
            sasl_password=self.sasl_password,
            ssl_ca_location=self.ssl_ca_location,
        )


def build_resources(config: settings.Settings | None = None
                    ) -> dict[str, dg.ConfigurableResource]:
    """The resources `config` describes (default: `Settings.from_env()`); secrets as EnvVars."""
    config = config or settings.Settings.from_env()
    return {
        "duckdb": ElectricityDuckDB(database=config.duckdb_path),
        "source": SourceResource(
            mode=config.source_mode,
            data_dir=str(config.data_dir),
            eia_api_key=dg.EnvVar("EIA_API_KEY") if config.eia_api_key else None,
        ),
        "mlflow": MLflowResource(
            tracking_uri=config.mlflow_tracking_uri,
            artifact_root=config.mlflow_artifact_root,
            ui_url=config.mlflow_ui_url,
        ),
        "kafka": KafkaResource.from_settings(config.kafka),
    }
