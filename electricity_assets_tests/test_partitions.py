"""Offline the partitions end where the replayed data does; live they follow the wall clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from electricity_assets import history, partitions
from electricity_assets.automation import ended_partition_keys
from electricity_assets.partitions import partitions_ending_at

BUNDLED_LAST_HOUR = datetime(2020, 4, 1, 23, tzinfo=UTC)  # the package data's last demand hour
ANCHOR = datetime(2026, 1, 1, tzinfo=UTC)


def test_replay_partitions_end_with_the_data_and_the_last_issue() -> None:
    ended = partitions_ending_at(BUNDLED_LAST_HOUR)
    assert ended.hourly.get_first_partition_key() == "2015-07-01-05:00"
    # The last hour is the issue made when the last hour of data is in (its 48 h run past it).
    assert ended.hourly.get_last_partition_key() == "2020-04-02-00:00"
    # The week holding it (to 2020-04-05): its model trains on all of the data.
    assert ended.weekly.get_last_partition_key() == "2020-03-29"
    assert ended.daily.get_last_partition_key() == "2020-04-03"  # reached by that issue
    # The data's 41,683 hours + that issue, instead of ~100,000 hours to the wall clock.
    assert len(ended.hourly.get_partition_keys()) == 41_684


def test_live_partitions_run_to_the_wall_clock() -> None:
    live = partitions_ending_at(None)
    last = datetime.strptime(live.hourly.get_last_partition_key(), "%Y-%m-%d-%H:%M")
    assert datetime.now(UTC) - last.replace(tzinfo=UTC) < timedelta(hours=2)
    assert live.hourly.get_first_partition_key() == "2015-07-01-05:00"


def test_the_code_location_ends_where_the_mode_says(monkeypatch: pytest.MonkeyPatch) -> None:
    assert partitions.last_data_hour() == BUNDLED_LAST_HOUR  # the default: offline replay
    assert partitions.hourly_partitions.get_last_partition_key() == "2020-04-02-00:00"
    monkeypatch.setenv("ELECTRICITY_SOURCE", "api")
    assert partitions.last_data_hour() is None


def test_the_data_end_is_read_once_then_cached(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from electricity_assets.sources import bundled

    monkeypatch.setenv("ELECTRICITY_CACHE_DIR", str(tmp_path / "cache"))
    assert history.replay_data_end() == BUNDLED_LAST_HOUR
    assert list((tmp_path / "cache").glob("demand-*.parquet"))

    def parse(*args):
        raise AssertionError("the replay file was parsed again")

    # Same file: the cached rows, not a second read of the CSV.
    monkeypatch.setattr(bundled, "_judge_sql", parse)
    assert history.replay_data_end() == BUNDLED_LAST_HOUR


def test_automation_never_targets_past_the_last_partition() -> None:
    ended = partitions_ending_at(BUNDLED_LAST_HOUR)
    keys = ended_partition_keys(ended.hourly, 24, BUNDLED_LAST_HOUR + timedelta(days=3))
    assert keys[-1] == "2020-04-02-00:00"


@pytest.fixture
def clock_after_the_data(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ELECTRICITY_REPLAY_START", "2020-04-01T20:00:00Z")
    monkeypatch.setenv("ELECTRICITY_REPLAY_ANCHOR", ANCHOR.isoformat())


@pytest.mark.parametrize(("hours_later", "expected"), [
    (2, ("2020-04-01-20:00", "2020-04-01-21:00")),  # within the data: as always
    (6, ("2020-04-02-00:00", "2020-04-02-00:00")),  # the last issue, not the hour after it
    (30, None),  # the clock ran past the data: nothing left to do
])
def test_hourly_schedule_stops_at_the_last_partition(
        clock_after_the_data: None, hours_later: int, expected: tuple[str, str] | None) -> None:
    from electricity_assets.schedules import RANGE_END_TAG, RANGE_START_TAG, hourly_run_request

    request = hourly_run_request(ANCHOR + timedelta(hours=hours_later, minutes=5))
    if expected is None:
        assert isinstance(request, dg.SkipReason)
        assert "past the replayed data" in request.skip_message
    else:
        assert (request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG]) == expected


def test_retrain_schedule_keeps_to_the_last_week_of_the_data(clock_after_the_data: None) -> None:
    from electricity_assets.schedules import retrain_run_request

    request = retrain_run_request(ANCHOR + timedelta(days=60))
    assert request.partition_key == "2020-03-29"
