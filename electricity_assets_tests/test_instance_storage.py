"""The project's Dagster instance storage (dagster.yaml): batched asset events, one planned row
per check of a range run. Real sqlite instances in a temporary DAGSTER_HOME."""

from __future__ import annotations

import sqlite3
import warnings
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

from devstack.instance_storage import (
    TESTED_DAGSTER,
    BatchedSqliteEventLogStorage,
    ElectricitySqliteStorage,
    untested_dagster,
)
from electricity_assets.assets.raw import raw_asset_checks, raw_assets
from electricity_assets.resources import ElectricityDuckDB, KafkaResource, SourceResource
from electricity_assets.settings import PACKAGE_DATA_DIR

warnings.filterwarnings("ignore", category=dg.BetaWarning)

RANGE_TAGS = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


@pytest.fixture
def instance(project_dagster_home: Path,
             monkeypatch: pytest.MonkeyPatch) -> dg.DagsterInstance:
    """An instance from the project's own dagster.yaml, as `./dev` sets it up."""
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "500")
    with dg.DagsterInstance.from_config(str(project_dagster_home)) as inst:
        yield inst


def _range_run(instance: dg.DagsterInstance, db: str, first: str, last: str,
               selection: list) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        selection, instance=instance,
        resources={"duckdb": ElectricityDuckDB(database=db),
                   "source": SourceResource(mode="bundled", data_dir=str(PACKAGE_DATA_DIR)),
                   "kafka": KafkaResource()},
        tags=dict(zip(RANGE_TAGS, (first, last), strict=True)))


def test_dagster_yaml_selects_the_batched_storage(instance: dg.DagsterInstance) -> None:
    assert instance.get_ref().storage_data.class_name == ElectricitySqliteStorage.__name__
    assert isinstance(instance.event_log_storage, BatchedSqliteEventLogStorage)
    assert instance.run_storage.__class__.__name__ == "SqliteRunStorage"


def test_a_range_run_plans_one_event_per_asset_without_any_environment_variable(
        instance: dg.DagsterInstance, duckdb_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """dagster.yaml alone (not ./dev) makes a sensor-created range run write one plan per asset."""
    monkeypatch.delenv("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", raising=False)
    result = _range_run(instance, duckdb_path, "2016-01-01-00:00", "2016-03-31-23:00",
                        raw_assets)
    planned = instance.get_records_for_run(
        result.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED).records
    assert len(planned) == 2  # raw_demand, raw_weather: not 2 x 2,184 hours
    monkeypatch.setenv("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", "0")
    storage = instance.event_log_storage
    assert not storage.supports_partition_subset_in_asset_materialization_planned_events


def test_a_range_run_beyond_sqlite_limits_records_every_partition_and_resolves_checks(
        instance: dg.DagsterInstance, duckdb_path: str) -> None:
    # 6 months of hourly partitions (4,368 > 4,095, where the stock planned-check insert fails)
    # as ONE run, with the raw checks selected as the UI selects them.
    result = _range_run(instance, duckdb_path, "2016-01-01-00:00", "2016-06-30-23:00",
                        [*raw_assets, *raw_asset_checks])
    assert result.success
    hours = 182 * 24
    assert hours > 4095
    for asset in ("raw_demand", "raw_weather"):
        key = dg.AssetKey(asset)
        assert len(instance.get_materialized_partitions(key)) == hours
        record = instance.get_latest_materialization_event(key)
        assert record is not None
        assert record.dagster_event.partition == "2016-06-30-23:00"  # the asset row = newest

    storage = instance.event_log_storage
    for check in raw_asset_checks:
        for check_key in check.check_keys:
            executions = storage.get_asset_check_execution_history(check_key, limit=100)
            # One row per check for the run, and it is resolved (not left PLANNED).
            assert len(executions) == 1, check_key
            assert executions[0].run_id == result.run_id
            assert executions[0].status.value in {"SUCCEEDED", "FAILED"}, check_key


def _index_rows(base_dir: Path) -> dict[str, list[tuple]]:
    with sqlite3.connect(base_dir / "index.db") as conn:
        return {
            "events": conn.execute(
                "SELECT run_id, event, dagster_event_type, asset_key, partition "
                "FROM event_logs ORDER BY id").fetchall(),
            "tags": conn.execute(
                "SELECT e.partition, t.asset_key, t.key, t.value FROM asset_event_tags t "
                "JOIN event_logs e ON e.id = t.event_id ORDER BY t.event_id, t.key").fetchall(),
            "asset_keys": conn.execute(
                "SELECT k.asset_key, e.partition, k.last_run_id FROM asset_keys k "
                "JOIN event_logs e ON e.id = json_extract(k.last_materialization, "
                "'$.storage_id')").fetchall(),
        }


def test_batched_writes_store_what_one_by_one_writes(
        instance: dg.DagsterInstance, duckdb_path: str, tmp_path: Path) -> None:
    result = _range_run(instance, duckdb_path, "2016-03-01-00:00", "2016-03-02-23:00",
                        raw_assets)
    events = [e.event_log_entry for e in instance.get_records_for_run(
        result.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION, limit=1000).records]
    assert len(events) == 2 * 48

    stock = SqliteEventLogStorage(str(tmp_path / "stock"))
    for event in events:
        stock.store_event(event)
    batched = BatchedSqliteEventLogStorage(str(tmp_path / "batched"))
    batched.store_event_batch(events)

    expected, got = _index_rows(tmp_path / "stock"), _index_rows(tmp_path / "batched")
    assert len(got["events"]) == 96 and len(got["tags"]) > 0
    assert got == expected
    with sqlite3.connect(tmp_path / "batched" / f"{result.run_id}.db") as conn:
        assert conn.execute("SELECT count(*) FROM event_logs").fetchone()[0] == 96


def test_installed_dagster_is_a_tested_version() -> None:
    import dagster

    assert untested_dagster() is None, (
        f"Dagster {dagster.__version__} is installed, but devstack/instance_storage.py "
        f"subclasses private Dagster internals tested with {', '.join(TESTED_DAGSTER)} only: run "
        "this module's tests on the new version, fix what broke, add it to TESTED_DAGSTER and "
        "pyproject.toml's pins")


def test_an_untested_dagster_gets_the_stock_event_log_and_a_warning(
        project_dagster_home: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    import dagster

    monkeypatch.setattr(dagster, "__version__", "1.99.0")
    with dg.DagsterInstance.from_config(str(project_dagster_home)) as instance:
        assert type(instance.event_log_storage) is SqliteEventLogStorage
    assert "Dagster 1.99.0" in caplog.text and "stock sqlite event log" in caplog.text
