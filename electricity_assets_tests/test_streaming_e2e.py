"""End to end through the sensor and the real broker: a live hour produced on Kafka issues the
next 48 hours, and an hour that arrives late re-issues, through Dagster's automation, the
issues that were made without it (the newcomer's case: a replay that skipped an hour)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import duckdb
import pandas as pd
import pytest

from electricity_assets import settings
from electricity_assets.datasets import DEMAND, WEATHER
from electricity_assets.settings import KafkaSettings
from electricity_assets.sources.bundled import read_bundled
from electricity_assets.streaming.client import ensure_topics
from electricity_assets.streaming.producer import Publisher
from electricity_assets_tests.test_modeling_training import write_sample

LATE_HOUR = datetime(2020, 3, 30, 5, tzinfo=UTC)  # never loaded by the "seed", streamed last
LIVE_HOUR = datetime(2020, 3, 30, 6, tzinfo=UTC)
CLOCK = datetime(2020, 3, 30, 7, 30, tzinfo=UTC)


def issue_rows(path: str, issue: datetime) -> pd.DataFrame:
    with duckdb.connect(path, read_only=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        if not conn.execute("SELECT count(*) FROM information_schema.tables "
                            "WHERE table_name = 'demand_forecasts'").fetchone()[0]:
            return pd.DataFrame()
        return conn.execute("SELECT * FROM demand_forecasts WHERE issue_utc = ? "
                            "ORDER BY region, horizon_h", [issue]).df()


def skip_reasons(path: str, issue: datetime) -> dict[str, str]:
    with duckdb.connect(path, read_only=True) as conn:
        return dict(conn.execute("SELECT region, reason FROM forecast_skips "
                                 "WHERE issue_utc = ?", [issue]).fetchall())


def publish_hour(publisher: Publisher, hour: datetime) -> None:
    for dataset in (DEMAND, WEATHER):
        rows = read_bundled(dataset, hour, hour + timedelta(hours=1), settings.PACKAGE_DATA_DIR)
        assert publisher.publish_frame(dataset, rows[rows["region"] == "CAL"], "replay") > 0
    publisher.flush()


def stream_once(defs: dg.Definitions, instance: dg.DagsterInstance,
                cursor: str | None) -> tuple[dg.ExecuteInProcessResult, str | None]:
    """One tick of the real sensor, and the run it requests executed as Dagster would."""
    context = dg.build_sensor_context(instance=instance, definitions=defs, cursor=cursor,
                                      resources=dict(defs.resources or {}))
    tick = defs.resolve_sensor_def("kafka_stream_sensor").evaluate_tick(context)
    assert len(tick.run_requests) == 1
    request = tick.run_requests[0]
    result = defs.resolve_job_def("stream_ingest_job").execute_in_process(
        run_config=request.run_config, tags=request.tags, instance=instance)
    assert result.success
    return result, tick.cursor


def test_a_live_hour_issues_and_a_late_hour_re_issues_what_missed_it(
        kafka_settings: KafkaSettings, duckdb_path: str, isolated_home,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.lib.workspace import build_workspace
    from electricity_assets import definitions
    from electricity_assets.modeling import horizons
    from electricity_assets.modeling.registry import MlflowConfig

    monkeypatch.setenv("DUCKDB_PATH", duckdb_path)
    monkeypatch.setenv("ELECTRICITY_REPLAY_START", CLOCK.isoformat())
    monkeypatch.setenv("ELECTRICITY_REPLAY_ANCHOR", "2099-01-01T00:00Z")  # the clock stands
    # History up to LATE_HOUR (CAL demand + weather) and a CAL multi-horizon champion.
    folder = write_sample(isolated_home / "data", ("2020-01-25", LATE_HOUR.isoformat()))
    config = MlflowConfig(settings.mlflow_tracking_uri(), settings.mlflow_artifact_root())
    with duckdb.connect(duckdb_path) as conn:
        build_workspace(conn, folder)
        horizons.train_and_register_horizons(conn, LATE_HOUR - timedelta(days=1), config,
                                             regions=["CAL"])
    ensure_topics(kafka_settings)
    publisher = Publisher(kafka_settings)
    from electricity_assets.jobs import stream_ingest_job
    from electricity_assets.sensors import kafka_stream_sensor

    # Resources built now: they read DUCKDB_PATH set above.
    defs = dg.Definitions(assets=definitions.assets, jobs=[stream_ingest_job],
                          sensors=[kafka_stream_sensor], resources=definitions.build_resources())
    with dg.instance_for_test() as instance:
        # The live hour arrives; the hour before it has not (the replay example's gap).
        publish_hour(publisher, LIVE_HOUR)
        result, cursor = stream_once(defs, instance, None)
        materialized = {e.asset_key.to_user_string()
                        for e in result.get_asset_materialization_events()}
        assert {"raw_demand", "raw_weather", "demand_features", "demand_forecasts"} <= (
            materialized)
        issue = LIVE_HOUR + timedelta(hours=1)
        first = issue_rows(duckdb_path, issue)
        assert len(first), skip_reasons(duckdb_path, issue)
        assert list(first["horizon_h"]) == list(range(1, 49))  # its 48 hours, issued at 07:00
        assert (first["data_until_utc"] == pd.Timestamp(LIVE_HOUR)).all()
        first_eval = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        assert first_eval.total_requested == 0

        # The missing hour lands late: its own issue is made, and Dagster re-issues 07:00.
        publish_hour(publisher, LATE_HOUR)
        stream_once(defs, instance, cursor)
        late_issue = issue_rows(duckdb_path, LATE_HOUR + timedelta(hours=1))
        assert len(late_issue) == 48 and "CAL" not in skip_reasons(
            duckdb_path, LATE_HOUR + timedelta(hours=1))
        evaluation = dg.evaluate_automation_conditions(defs=defs, instance=instance,
                                                       cursor=first_eval.cursor)
        requested = set(evaluation.get_requested_partitions(dg.AssetKey("demand_forecasts")))
        assert requested == {LIVE_HOUR.strftime("%Y-%m-%d-%H:00")}
        reissue = dg.materialize(definitions.assets, instance=instance,
                                 selection=[dg.AssetKey("demand_forecasts")],
                                 partition_key=LIVE_HOUR.strftime("%Y-%m-%d-%H:00"),
                                 resources=definitions.build_resources())
        assert reissue.success
        second = issue_rows(duckdb_path, issue)
        assert len(second) == 48 and (second["created_at"] > first["created_at"]).all()
        # The late hour is now a lag of the 07:00 issue: its forecasts moved.
        assert not second["forecast_mwh"].equals(first["forecast_mwh"])
