"""Late inputs re-issue what read them: the code location's own automation conditions and
partition mappings, evaluated by Dagster against a real (ephemeral) instance's events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import pandas as pd
import pytest

from electricity_assets.partitions import hourly_partitions

CLOCK = datetime(2020, 3, 26, 2, 30, tzinfo=UTC)
LATE_HOUR = "2020-03-25-23:00"  # the hour the README's old replay example never loaded


@pytest.fixture
def defs(monkeypatch: pytest.MonkeyPatch) -> dg.Definitions:
    monkeypatch.setenv("ELECTRICITY_REPLAY_START", CLOCK.isoformat())
    monkeypatch.setenv("ELECTRICITY_REPLAY_ANCHOR", "2099-01-01T00:00Z")  # a stopped clock
    from electricity_assets.definitions import defs

    return defs


def _hours(first: str, last: str) -> list[str]:
    return hourly_partitions.get_partition_keys_in_range(dg.PartitionKeyRange(first, last))


def _report(instance: dg.DagsterInstance, asset: str, keys: list[str]) -> None:
    for key in keys:
        instance.report_runless_asset_event(dg.AssetMaterialization(asset, partition=key))


def _requested(result, asset: str) -> set[str]:
    return set(result.get_requested_partitions(dg.AssetKey(asset)))


def _history(instance: dg.DagsterInstance) -> None:
    """Two days of hours issued, the late hour's raw demand missing."""
    hours = _hours("2020-03-24-00:00", "2020-03-26-01:00")
    _report(instance, "raw_demand", [h for h in hours if h != LATE_HOUR])
    _report(instance, "raw_weather", hours)
    for asset in ("demand_features", "weather_features", "demand_forecasts"):
        _report(instance, asset, hours)


def test_a_late_hour_re_issues_every_forecast_that_read_it_up_to_the_data_clock(
        defs: dg.Definitions) -> None:
    with dg.instance_for_test() as instance:
        _history(instance)
        first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        assert first.total_requested == 0  # nothing changed since the issues were written
        _report(instance, "raw_demand", [LATE_HOUR])
        late = dg.evaluate_automation_conditions(defs=defs, instance=instance,
                                                 cursor=first.cursor)
        # Issues 23:00, 00:00 and 01:00 read it; 02:00 has not ended on the data clock (02:30),
        # and the partitions up to 2026 on the wall clock are never touched.
        reissued = {LATE_HOUR, "2020-03-26-00:00", "2020-03-26-01:00"}
        assert _requested(late, "demand_forecasts") == reissued
        assert _requested(late, "demand_features") == reissued
        assert _requested(late, "weather_features") == set()  # no weather hour changed
        again = dg.evaluate_automation_conditions(defs=defs, instance=instance,
                                                  cursor=late.cursor)
        assert again.total_requested == 0  # requested once, not on every tick


def test_a_correction_older_than_the_lookback_re_issues_nothing(defs: dg.Definitions) -> None:
    with dg.instance_for_test() as instance:
        _history(instance)
        old = (CLOCK - timedelta(days=20)).strftime(hourly_partitions.fmt)
        _report(instance, "demand_forecasts", [old])
        first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        _report(instance, "raw_demand", [old])
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance,
                                                   cursor=first.cursor)
        assert _requested(result, "demand_forecasts") == set()


def test_a_new_model_re_issues_the_newest_issue_only(defs: dg.Definitions) -> None:
    with dg.instance_for_test() as instance:
        _history(instance)
        first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        _report(instance, "trained_models", ["2020-03-15"])  # the week before the clock's
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance,
                                                   cursor=first.cursor)
        assert _requested(result, "demand_forecasts") == {"2020-03-26-01:00"}
        assert _requested(result, "demand_features") == set()


def test_the_partitions_ended_on_the_clock_for_hourly_and_daily_assets() -> None:
    from electricity_assets.automation import ended_partition_keys

    now = pd.Timestamp("2020-03-25T23:30Z").to_pydatetime()
    assert ended_partition_keys(hourly_partitions, 3, now) == [
        "2020-03-25-20:00", "2020-03-25-21:00", "2020-03-25-22:00"]
    daily = dg.DailyPartitionsDefinition(start_date="2015-07-02")
    assert ended_partition_keys(daily, 72, now) == ["2020-03-22", "2020-03-23", "2020-03-24"]


def test_a_refit_of_the_weather_statistics_re_issues_nothing(defs: dg.Definitions) -> None:
    """A refit applies from the next materialisation: re-issuing past hours with statistics
    fitted after them would rewrite served forecasts with later knowledge."""
    with dg.instance_for_test() as instance:
        _history(instance)
        first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        for table in ("weather_station_offsets", "weather_normalisation"):
            instance.report_runless_asset_event(dg.AssetMaterialization(table))
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance,
                                                   cursor=first.cursor)
        assert result.total_requested == 0
