"""The data clock is the source resource's: assets ask it, not the environment."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from electricity_assets import storage
from electricity_assets.assets.freshness import freshness_checks
from electricity_assets.replay_clock import STATE_FILE, DataClock, data_clock
from electricity_assets.resources import ElectricityDuckDB, SourceResource


def _home_with_clock(home: Path, replay_start: str) -> Path:
    """A home whose replay clock shows `replay_start` now (and runs in real time)."""
    home.mkdir(parents=True)
    (home / STATE_FILE).write_text(json.dumps({
        "replay_start": replay_start, "anchor": datetime.now(UTC).isoformat(), "speed": 1.0}))
    return home


@pytest.fixture
def demand_db(tmp_path: Path) -> str:
    """raw_demand with CAL's newest hour at 2020-03-20 04:00 UTC."""
    path = str(tmp_path / "clock.duckdb")
    with duckdb.connect(path) as conn:
        storage.ensure_table(conn, "raw_demand")
        conn.execute("INSERT INTO raw_demand (region, period_utc, type, value_mwh, source, "
                     "ingested_at) VALUES ('CAL', TIMESTAMPTZ '2020-03-20 04:00:00+00', 'D', "
                     "30000, 'bundled', now())")
    return path


def _freshness(db: str, source: SourceResource):
    check = next(c for c in freshness_checks if "raw_demand" in str(c.check_keys))
    return check(duckdb=ElectricityDuckDB(database=db), source=source)


def test_the_freshness_check_reads_the_resource_clock_not_the_environment(
        demand_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ELECTRICITY_REPLAY_START", "ELECTRICITY_REPLAY_ANCHOR",
                 "ELECTRICITY_FRESHNESS_MAX_LAG_HOURS"):
        monkeypatch.delenv(name, raising=False)
    # The environment's clock is a month later (everything stale) and its source is live.
    monkeypatch.setenv("ELECTRICITY_HOME", str(_home_with_clock(tmp_path / "env",
                                                                "2020-04-20T05:00:00+00:00")))
    monkeypatch.setenv("ELECTRICITY_SOURCE", "api")
    home = _home_with_clock(tmp_path / "resource", "2020-03-20T05:00:00+00:00")
    replay = _freshness(demand_db, SourceResource(mode="bundled", home=str(home)))
    assert replay.passed  # 04:00 at the resource's 05:00: one hour old
    assert replay.metadata["data_clock_utc"].value.startswith("2020-03-20T05:0")
    assert replay.metadata["max_lag_hours"].value == 3.0  # the replay's allowance
    live = _freshness(demand_db, SourceResource(mode="api", home=str(home)))
    assert not live.passed  # against the wall clock, 2020 is stale
    assert live.metadata["max_lag_hours"].value == 6.0
    assert pd.Timestamp(live.metadata["data_clock_utc"].value) > datetime.now(UTC) - timedelta(
        minutes=5)


def test_data_clock_is_the_one_place_built_from_the_settings(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ELECTRICITY_REPLAY_START", raising=False)
    monkeypatch.delenv("ELECTRICITY_REPLAY_ANCHOR", raising=False)
    home = _home_with_clock(tmp_path / "clock_home", "2020-03-20T05:00:00+00:00")
    monkeypatch.setenv("ELECTRICITY_HOME", str(home))
    monkeypatch.setenv("ELECTRICITY_SOURCE", "bundled")
    clock = data_clock()
    assert clock == DataClock("bundled", home.resolve(), clock.data_dir)
    assert clock.now().date().isoformat() == "2020-03-20"
    assert SourceResource(mode="bundled", home=str(home)).clock().now() - clock.now() < timedelta(
        seconds=5)
    monkeypatch.setenv("ELECTRICITY_SOURCE", "api")
    assert not data_clock().replaying and data_clock().speed() == 1.0
    assert data_clock().now().year == datetime.now(UTC).year


def test_the_source_config_comes_from_the_resource_and_hides_the_key() -> None:
    source = SourceResource(mode="api", data_dir="/replay", eia_api_key="k3y-value")
    config = source.source_config()
    assert (config.mode, str(config.data_dir), config.eia_api_key) == ("api", "/replay",
                                                                       "k3y-value")
    assert "k3y-value" not in repr(config)
