"""The producer commands against the real broker: what they publish and how they fail."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime

import pandas as pd
import pytest

from electricity_assets.datasets import DEMAND, WEATHER
from electricity_assets.settings import PACKAGE_DATA_DIR, KafkaSettings
from electricity_assets.sources.bundled import read_bundled
from electricity_assets.streaming.client import (
    end_offsets,
    ensure_topics,
    new_consumer,
    read_ranges,
)
from electricity_assets.streaming.messages import decode
from electricity_assets.streaming.producer import Publisher
from electricity_assets.streaming.producer_cli import live_main, publish_new_hours, replay_main


def topic_messages(settings: KafkaSettings, topic: str) -> list[bytes]:
    ensure_topics(settings, [topic])
    consumer = new_consumer(settings)
    try:
        ends = end_offsets(consumer, topic)
        return [m.value for m in read_ranges(consumer, topic, ends)]
    finally:
        consumer.close()


def test_replay_publishes_every_row_of_the_window(kafka_settings: KafkaSettings,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    replay_main(["--start", "2020-01-15T00:00Z", "--hours", "3", "--speed", "0"])
    out, err = capsys.readouterr()
    start, end = datetime(2020, 1, 15, tzinfo=UTC), datetime(2020, 1, 15, 3, tzinfo=UTC)
    for dataset in (DEMAND, WEATHER):
        values = topic_messages(kafka_settings, kafka_settings.topic(dataset))
        decoded = [decode(dataset, v) for v in values]
        assert all(reason is None for _, reason in decoded)
        assert len(decoded) == len(read_bundled(dataset, start, end, PACKAGE_DATA_DIR)) > 0
        assert {json.loads(v)["source"] for v in values} == {"replay"}
    assert "100.0%" in err and "published" in out


def test_replay_paces_one_hour_per_tick(kafka_settings: KafkaSettings,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    began = datetime.now(UTC)
    replay_main(["--start", "2020-01-15T00:00Z", "--hours", "2", "--speed", "4",
                 "--datasets", "demand"])
    assert (datetime.now(UTC) - began).total_seconds() >= 0.5  # 2 hours at 4 hours/s
    assert topic_messages(kafka_settings, kafka_settings.topic(WEATHER)) == []


def test_replay_rejects_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        replay_main(["--start", "yesterday-ish"])
    assert "is not a timestamp" in capsys.readouterr().err


def test_live_without_a_key_says_where_to_get_one(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        live_main(["--once"])
    assert exit_info.value.code == 2
    assert "EIA_API_KEY is not set" in capsys.readouterr().err


def test_live_publishes_only_hours_newer_than_the_last_published(
        kafka_settings: KafkaSettings) -> None:
    rows = read_bundled(DEMAND, datetime(2020, 1, 15, tzinfo=UTC),
                        datetime(2020, 1, 15, 4, tzinfo=UTC), PACKAGE_DATA_DIR)
    state: dict[str, str] = {}
    publisher = Publisher(kafka_settings)
    first = publish_new_hours(publisher, "demand", rows[rows["period_utc"] < pd.Timestamp(
        "2020-01-15T02:00Z")], state, "eia_api")
    again = publish_new_hours(publisher, "demand", rows, state, "eia_api")  # next poll overlaps
    publisher.flush()
    assert first + again == len(rows)
    assert state["CAL/D"] == "2020-01-15T03:00:00+00:00"
    assert len(topic_messages(kafka_settings, kafka_settings.topic(DEMAND))) == len(rows)


def test_replay_with_only_kafka_broker_port_publishes_to_that_broker(
        kafka_settings: KafkaSettings, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The adversarial run's KAFKA_BROKER_PORT=29999 published into another stack on 19092."""
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BROKER_ADDRESS"}
    env["KAFKA_BROKER_PORT"] = kafka_settings.bootstrap_servers.rsplit(":", 1)[1]
    done = subprocess.run(
        [sys.executable, "-c", "from electricity_assets.cli import replay; replay()",
         "--start", "2020-01-15T00:00Z", "--hours", "1", "--speed", "0", "--datasets", "demand"],
        env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"to {kafka_settings.bootstrap_servers}" in done.stdout
    sent = len(read_bundled(DEMAND, datetime(2020, 1, 15, tzinfo=UTC),
                            datetime(2020, 1, 15, 1, tzinfo=UTC), PACKAGE_DATA_DIR))
    assert len(topic_messages(kafka_settings, kafka_settings.topic(DEMAND))) == sent


def test_replay_defaults_to_hours_after_the_seeded_history(isolated_home) -> None:
    """The seed stops at the replay clock's start: replaying from 2020-01-01 re-published
    loaded history and gave in-sample forecasts."""
    from electricity_assets import replay_clock
    from electricity_assets.streaming.producer_cli import default_replay_start

    clock = replay_clock.replay_clock()
    start = default_replay_start()
    assert start == clock.replay_start  # the clock has not moved a whole hour since
    assert start == datetime(2020, 3, 25, 23, tzinfo=UTC)  # last bundled hour - 7 days


def test_replay_moves_the_data_clock_with_the_hours_it_publishes(
        kafka_settings: KafkaSettings, capsys: pytest.CaptureFixture[str]) -> None:
    """The README's replay example published 24 hours in 24 s while the clock moved 24 s: the
    overview showed a data lag of -24 h and forecasts were issued before their inputs' hours.
    Now each published hour moves the clock to its end, and never back."""
    from electricity_assets import replay_clock
    from electricity_assets.replay_clock import advance_to, latest_complete_hour

    start = replay_clock.replay_clock().replay_start
    replay_main(["--hours", "3", "--speed", "0", "--datasets", "demand"])
    now = replay_clock.current_time()
    assert start + pd.Timedelta(hours=3) <= now < start + pd.Timedelta(hours=3, minutes=5)
    published = {pd.Timestamp(json.loads(v)["period_utc"])
                 for v in topic_messages(kafka_settings, kafka_settings.topic(DEMAND))}
    assert max(published) == latest_complete_hour(now)  # data lag 1 h, not negative
    assert advance_to(start)  # an earlier instant does not move the clock back
    assert replay_clock.current_time() >= now


def test_a_fixed_replay_clock_is_not_moved(monkeypatch: pytest.MonkeyPatch) -> None:
    from electricity_assets import replay_clock

    monkeypatch.setenv("ELECTRICITY_REPLAY_START", "2020-01-01T00:00Z")
    monkeypatch.setenv("ELECTRICITY_REPLAY_ANCHOR", "2030-01-01T00:00Z")
    assert not replay_clock.advance_to(datetime(2020, 2, 1, tzinfo=UTC))
    assert replay_clock.current_time() == datetime(2020, 1, 1, tzinfo=UTC)
