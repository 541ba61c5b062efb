"""The hourly schedule follows the replay clock and does real work; stale data fails freshness."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from electricity_assets import serving
from electricity_assets.assets.freshness import assess_freshness, freshness_checks
from electricity_assets.schedules import RANGE_END_TAG, RANGE_START_TAG, due_hours
from electricity_assets.sensors import publish_serving_snapshot

ANCHOR = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def replay_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ELECTRICITY_REPLAY_START", "2020-03-20T00:00:00Z")
    monkeypatch.setenv("ELECTRICITY_REPLAY_ANCHOR", ANCHOR.isoformat())


def _defs() -> dg.Definitions:
    from electricity_assets.definitions import assets, jobs, schedules
    from electricity_assets.resources import build_resources

    return dg.Definitions(assets=assets, asset_checks=freshness_checks, jobs=jobs,
                          schedules=schedules, resources=build_resources())


@pytest.mark.parametrize(("minutes", "speed", "hours"), [(60, 1.0, 2), (1, 60.0, 2), (5, 60.0, 6),
                                                        (60, 600.0, 48)])
def test_due_hours_cover_one_tick_of_data_time_plus_the_previous_hour(
        minutes: int, speed: float, hours: int) -> None:
    now = datetime(2020, 3, 20, 5, 7, tzinfo=UTC)
    first, last = due_hours(minutes, speed, now)
    assert last == datetime(2020, 3, 20, 4, tzinfo=UTC)  # the hour 04:00-05:00 is complete
    assert last - first == timedelta(hours=hours - 1)


def test_retrain_schedule_targets_the_newest_complete_data_week(replay_env: None) -> None:
    defs = _defs()
    schedule = defs.resolve_schedule_def("retrain_schedule")
    assert defs.resolve_job_def("retrain_job").partitions_def is not None
    with dg.DagsterInstance.ephemeral() as instance:
        # Data clock 2020-03-20 + 3 days = Monday 2020-03-23: the week of 03-15 has just ended.
        context = dg.build_schedule_context(
            instance=instance, scheduled_execution_time=ANCHOR + timedelta(days=3),
            repository_def=defs.get_repository_def())
        [request] = schedule.evaluate_tick(context).run_requests
    assert request.partition_key == "2020-03-15"
    # The same tick evaluated twice asks for the same run (deduplicated by its run key).
    assert request.run_key == "2020-03-15"


def test_schedule_targets_the_replayed_hours(replay_env: None) -> None:
    defs = _defs()
    schedule = defs.resolve_schedule_def("hourly_forecast_schedule")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    with dg.DagsterInstance.ephemeral() as instance:
        context = dg.build_schedule_context(
            instance=instance, scheduled_execution_time=ANCHOR + timedelta(hours=5, minutes=5))
        [request] = schedule.evaluate_tick(context).run_requests
    assert request.tags[RANGE_START_TAG] == "2020-03-20-03:00"
    assert request.tags[RANGE_END_TAG] == "2020-03-20-04:00"
    assert request.run_key == "2020-03-20-03:00...2020-03-20-04:00"


def test_hourly_run_ingests_replayed_hours_checks_freshness_and_publishes(
        replay_env: None, isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    defs = _defs()
    schedule = defs.resolve_schedule_def("hourly_forecast_schedule")
    job = defs.resolve_job_def("hourly_forecast_job")
    tick = ANCHOR + timedelta(hours=5, minutes=5)
    with dg.DagsterInstance.ephemeral() as instance:
        context = dg.build_schedule_context(instance=instance, scheduled_execution_time=tick)
        [request] = schedule.evaluate_tick(context).run_requests
        # Move the anchor so the data clock during the run reads the tick's replayed time.
        monkeypatch.setenv("ELECTRICITY_REPLAY_ANCHOR",
                           (datetime.now(UTC) - (tick - ANCHOR)).isoformat())
        # Raw ingestion + its checks only: features and forecasts have their own tests, and
        # forecasting here would only create an empty MLflow registry (slow, no champion).
        result = job.execute_in_process(
            instance=instance, tags=request.tags,
            asset_selection=[dg.AssetKey("raw_demand"), dg.AssetKey("raw_weather")])
        assert result.success
        checks = {(e.asset_key.to_user_string(), e.check_name): e
                  for e in result.get_asset_check_evaluations()}
        assert checks[("raw_demand", "freshness")].passed  # latest 04:00 at 05:05: 1.1 h old

        sensor_context = dg.build_run_status_sensor_context(
            sensor_name="publish_serving_snapshot", dagster_instance=instance,
            dagster_run=result.dagster_run, dagster_event=result.get_run_success_event(),
        )
        publish_serving_snapshot(sensor_context)

    with duckdb.connect(str(serving.serving_path()), read_only=True) as conn:
        rows = conn.execute("SELECT region, count(*) FROM raw_demand WHERE type = 'D' "
                            "GROUP BY region").fetchall()
    # Two replayed hours for each of the 12 bundled regions (TEN lacks a few hours in history).
    assert len(rows) == 12 and all(n == 2 for _, n in rows)


def test_freshness_turns_red_for_a_region_that_stopped_reporting() -> None:
    latest = pd.DataFrame({"region": ["CAL", "TEN"],
                           "latest_hour": pd.to_datetime(["2020-03-20T04:00Z",
                                                          "2020-03-19T20:00Z"])})
    now = datetime(2020, 3, 20, 5, 5, tzinfo=UTC)
    frame = assess_freshness(latest, now, timedelta(hours=3)).set_index("region")
    assert not frame.loc["CAL", "stale"] and frame.loc["CAL", "lag_hours"] == 1.1
    assert frame.loc["TEN", "stale"] and frame.loc["TEN", "lag_hours"] == 9.1
