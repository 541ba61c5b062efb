"""End to end through the sensor: a live hour produced on Kafka shows up in demand_forecasts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import duckdb
import pytest

from electricity_assets import settings
from electricity_assets.datasets import DEMAND, WEATHER
from electricity_assets.features import model_frame
from electricity_assets.sources.bundled import read_bundled
from electricity_assets.streaming.client import ensure_topics
from electricity_assets.streaming.producer import Publisher
from electricity_assets.streaming.settings import KafkaSettings
from electricity_assets_tests.test_modeling_training import write_sample

LIVE_HOUR = datetime(2020, 3, 30, 6, tzinfo=UTC)


def forecast_rows(path: str) -> list[tuple]:
    with duckdb.connect(path, read_only=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        if not conn.execute("SELECT count(*) FROM information_schema.tables "
                            "WHERE table_name = 'demand_forecasts'").fetchone()[0]:
            return []
        return conn.execute("SELECT region, period_utc, model_version FROM demand_forecasts "
                            "WHERE period_utc = ?", [LIVE_HOUR]).fetchall()


def test_a_live_hour_on_kafka_reaches_demand_forecasts(
        kafka_settings: KafkaSettings, duckdb_path: str, isolated_home,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from electricity_assets import definitions
    from electricity_assets.jobs import stream_ingest_job
    from electricity_assets.modeling.registry import MlflowConfig, log_and_register
    from electricity_assets.modeling.training import train_region
    from electricity_assets.modeling.workspace import build_workspace
    from electricity_assets.sensors import kafka_stream_sensor

    # History up to the live hour (CAL demand + weather), features, and a CAL champion.
    folder = write_sample(isolated_home / "data", ("2020-01-25", "2020-03-30T06:00:00Z"))
    monkeypatch.setenv("DUCKDB_PATH", duckdb_path)
    with duckdb.connect(duckdb_path) as conn:
        start, end = build_workspace(conn, folder)
        frame = model_frame(conn, start, end)
    config = MlflowConfig(settings.mlflow_tracking_uri(), settings.mlflow_artifact_root())
    log_and_register(train_region(frame[frame["region"] == "CAL"]), config)
    assert forecast_rows(duckdb_path) == []

    # The live hour arrives on the topics.
    ensure_topics(kafka_settings)
    publisher = Publisher(kafka_settings)
    for dataset in (DEMAND, WEATHER):
        rows = read_bundled(dataset, LIVE_HOUR, LIVE_HOUR + timedelta(hours=1),
                            settings.PACKAGE_DATA_DIR)
        rows = rows[rows["region"] == "CAL"]
        assert publisher.publish_frame(dataset, rows, "replay") > 0
    publisher.flush()

    defs = dg.Definitions(assets=definitions.assets, jobs=[stream_ingest_job],
                          sensors=[kafka_stream_sensor], resources=definitions.build_resources())
    with dg.DagsterInstance.ephemeral() as instance:
        tick = defs.resolve_sensor_def("kafka_stream_sensor").evaluate_tick(
            dg.build_sensor_context(instance=instance, definitions=defs,
                                    resources=dict(defs.resources or {})))
        assert len(tick.run_requests) == 1
        request = tick.run_requests[0]
        result = defs.resolve_job_def("stream_ingest_job").execute_in_process(
            run_config=request.run_config, tags=request.tags, instance=instance)
    assert result.success
    materialized = {e.asset_key.to_user_string()
                    for e in result.get_asset_materialization_events()}
    assert {"raw_demand", "raw_weather", "demand_features", "demand_forecasts"} <= materialized
    assert forecast_rows(duckdb_path) == [("CAL", LIVE_HOUR, "1")]
