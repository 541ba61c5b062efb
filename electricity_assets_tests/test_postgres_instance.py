"""Dagster on PostgreSQL storage, against a real server this module starts (Debian's package).

The scale-out path of the README: `electricity-stack --postgres` / DAGSTER_POSTGRES_URL switch
dagster.yaml's storage to `dagster-postgres`; runs, events and schedules then live in Postgres.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from dagster_postgres import PostgresEventLogStorage

from devstack.postgres import LocalPostgres, write_instance_yaml
from electricity_assets import settings
from electricity_assets.assets.raw import raw_asset_checks, raw_assets
from electricity_assets.resources import ElectricityDuckDB, KafkaResource, SourceResource
from electricity_assets_tests.test_streaming_sensor import END, START, build_defs, publish

RANGE_TAGS = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")
REPO = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def postgres() -> Iterator[LocalPostgres]:
    # Not pytest's tmp_path: as root the server runs as `postgres`, which must reach the folder.
    folder = Path(tempfile.mkdtemp(prefix="electricity-pg-"))
    folder.chmod(0o711)
    server = LocalPostgres(folder / "data", _free_port())
    try:
        with server:
            yield server
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def pg_home(postgres: LocalPostgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
            request: pytest.FixtureRequest) -> Path:
    """A DAGSTER_HOME on a fresh database of the test's own, as the stack writes it."""
    url = postgres.create_database(request.node.name[:60].lower().replace("[", "_"))
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", url)
    home = tmp_path / "dagster_home"
    write_instance_yaml(home, postgres=True)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


def _instance(home: Path) -> dg.DagsterInstance:
    instance = dg.DagsterInstance.from_config(str(home))
    assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
    return instance


def _hours(instance: dg.DagsterInstance, asset: str) -> list[str]:
    return sorted(instance.get_materialized_partitions(dg.AssetKey(asset)))


def test_a_partition_range_run_is_recorded_per_partition_in_postgres(
        pg_home: Path, duckdb_path: str) -> None:
    resources = {"duckdb": ElectricityDuckDB(database=duckdb_path),
                 "source": SourceResource(mode="bundled", data_dir=str(settings.data_dir())),
                 "kafka": KafkaResource()}
    with _instance(pg_home) as instance:
        result = dg.materialize(
            [*raw_assets, *raw_asset_checks], instance=instance, resources=resources,
            tags=dict(zip(RANGE_TAGS, ("2020-01-01-00:00", "2020-01-02-23:00"), strict=True)))
        assert result.success
        assert instance.get_run_by_id(result.run_id).status == dg.DagsterRunStatus.SUCCESS
        for asset in ("raw_demand", "raw_weather"):
            hours = _hours(instance, asset)
            assert (len(hours), hours[0], hours[-1]) == (48, "2020-01-01-00:00",
                                                        "2020-01-02-23:00")
        checks = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey("raw_demand"), "no_duplicate_keys"), limit=1000)
        # The range's evaluation; the stock storage also leaves one PLANNED row per partition
        # that it never resolves (README: "Known Dagster issues").
        assert [(c.status.value, c.partition) for c in checks if c.status.value != "PLANNED"
                ] == [("SUCCEEDED", None)]
        assert sum(c.status.value == "PLANNED" for c in checks) == 48


def test_the_kafka_sensors_runs_on_postgres(pg_home: Path, kafka_settings, duckdb_path: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DUCKDB_PATH", duckdb_path)
    defs = build_defs()
    publish(kafka_settings, START, END)
    sensor = defs.resolve_sensor_def("kafka_stream_sensor")
    with _instance(pg_home) as instance:
        context = dg.build_sensor_context(instance=instance, definitions=defs,
                                          resources=dict(defs.resources or {}))
        tick = sensor.evaluate_tick(context)
        assert len(tick.run_requests) == 1
        request = tick.run_requests[0]
        result = defs.resolve_job_def("stream_ingest_job").execute_in_process(
            run_config=request.run_config, tags=request.tags, instance=instance)
        assert result.success
        # The stream run materialised exactly the three hours it read, in Postgres.
        assert _hours(instance, "raw_demand") == [
            "2020-01-15-00:00", "2020-01-15-01:00", "2020-01-15-02:00"]
        assert _hours(instance, "demand_features") == _hours(instance, "raw_demand")
        [record] = instance.get_run_records(dg.RunsFilter(job_name="stream_ingest_job"))
        assert record.dagster_run.tags["kafka/messages"] == request.tags["kafka/messages"]


def test_two_concurrent_runs_share_the_postgres_instance(pg_home: Path, duckdb_path: str) -> None:
    env = {**settings.dagster_process_env(), "DUCKDB_PATH": duckdb_path}
    ranges = [("2019-01-01-00:00", "2019-01-07-23:00"), ("2019-02-01-00:00", "2019-02-07-23:00")]
    runs = [subprocess.Popen(
        [sys.executable, "-m", "dagster", "asset", "materialize", "-m",
         "electricity_assets.definitions", "--select", "raw_demand,raw_weather",
         "--partition-range", f"{first}...{last}"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for first, last in ranges]
    outputs = [run.communicate(timeout=300)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], "\n".join(o[-3000:] for o in outputs)
    with _instance(pg_home) as instance:
        records = instance.get_run_records()
        assert sorted(r.dagster_run.status.value for r in records) == ["SUCCESS", "SUCCESS"]
        # They ran at the same time: each started before the other ended.
        (a, b) = records
        assert a.start_time < b.end_time and b.start_time < a.end_time
        hours = _hours(instance, "raw_demand")
        assert len(hours) == 2 * 7 * 24
        assert {hours[0], hours[-1]} == {ranges[0][0], ranges[1][1]}
