"""What the dashboard says when DuckDB cannot be read: a held lock is waited for, a corrupt or
truncated file is named at once (it used to read as "a long write is running" after 10 s)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from electricity_assets import serving

APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")


def _real_database(path: Path) -> bytes:
    with duckdb.connect(str(path)) as conn:
        conn.execute("CREATE TABLE raw_demand AS SELECT range AS value_mwh FROM range(200000)")
    return path.read_bytes()


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_corrupt_database_is_named_at_once(isolated_home: Path, damage: str) -> None:
    live = isolated_home / "electricity.duckdb"
    good = _real_database(isolated_home / "good.duckdb")
    live.write_bytes(good[: len(good) // 3] if damage == "truncated" else b"not duckdb " * 500)
    began = time.monotonic()
    with pytest.raises(serving.CorruptDatabaseError) as error, serving.read_connection():
        pass
    assert time.monotonic() - began < 2  # not the 10 s lock wait
    assert "is not a valid DuckDB database" in str(error.value)
    assert str(isolated_home) not in str(error.value)  # the log names the file, not the page
    assert "locked" not in str(error.value)
    with pytest.raises(serving.CorruptDatabaseError, match="is not a valid DuckDB"):
        serving.publish_snapshot()

    st.cache_data.clear()  # earlier tests' pages cached real data in this process
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception
    assert any("is not a valid DuckDB database" in w.value for w in at.warning)


BULK = {  # 400,000 rows appended to one table, in blocks written after the intact ones
    "raw_demand": "SELECT 'R' || (range % 50) AS region, TIMESTAMPTZ '2021-01-01 00:00+00' + "
                  "to_hours(range // 50) AS period_utc, 'D' AS type, range::DOUBLE AS value_mwh, "
                  "'bundled' AS source, now() AS ingested_at FROM range(400000)",
    "demand_forecasts": "SELECT 'CAL' AS region, TIMESTAMPTZ '2021-01-01 00:00+00' + "
                        "to_hours(range // 48) AS issue_utc, (range % 48 + 1)::INTEGER AS "
                        "horizon_h, TIMESTAMPTZ '2021-01-01 00:00+00' + to_hours(range // 48 "
                        "+ range % 48) AS period_utc, range::DOUBLE AS forecast_mwh, 'm' AS "
                        "model_name, '1' AS model_version, now() AS data_until_utc, "
                        "'w' AS weather_input, now() AS created_at "
                        "FROM range(400000)",
}


def _block_corrupt(path: Path, table: str) -> None:
    """A real database whose header and catalogue are intact but whose blocks written for
    `table` last are not: it opens, and fails only when a query reads a damaged block."""
    from electricity_assets import storage

    with duckdb.connect(str(path)) as conn:
        storage.ensure_tables(conn)
        conn.execute("INSERT INTO raw_demand BY NAME SELECT 'CAL' AS region, TIMESTAMPTZ "
                     "'2020-03-01 00:00+00' + to_hours(range) AS period_utc, 'D' AS type, "
                     "1000.0 AS value_mwh, 'bundled' AS source, now() AS ingested_at "
                     "FROM range(48)")
        conn.execute("CHECKPOINT")
        intact = path.stat().st_size
        conn.execute(f"INSERT INTO {table} BY NAME {BULK[table]}")
    data = bytearray(path.read_bytes())
    for offset in range(intact, len(data) - 262144, 4096):
        data[offset + 100:offset + 200] = b"Z" * 100
    path.write_bytes(bytes(data))
    with duckdb.connect(str(path), read_only=True) as conn, pytest.raises(duckdb.Error,
                                                                          match="checksum"):
        conn.execute(f"SELECT count(DISTINCT region) FROM {table}").fetchall()


@pytest.mark.parametrize("table", ["raw_demand", "demand_forecasts"])
def test_a_block_corrupt_database_gives_the_dashboard_a_short_message(
        isolated_home: Path, table: str) -> None:
    """Damage in the first table a page reads, or in one read after the page has started."""
    live = isolated_home / "electricity.duckdb"
    _block_corrupt(live, table)
    with pytest.raises(serving.CorruptDatabaseError, match="is not a valid DuckDB"):
        with serving.read_connection() as conn:
            conn.execute(f"SELECT count(DISTINCT region) FROM {table}").fetchall()

    # The overview reads raw_demand first; the region page reads the forecasts after its
    # title is drawn (the damage surfaces mid-page).
    pages = [None, "views/region.py"] if table == "raw_demand" else ["views/region.py"]
    for page in pages:
        st.cache_data.clear()
        at = AppTest.from_file(APP, default_timeout=60)
        at.query_params["region"] = "CAL"
        at.run()
        if page:
            at.switch_page(page).run()
        assert not at.exception, at.exception  # was: the traceback, with the code's paths
        warnings = [w.value for w in at.warning]
        assert any("is not a valid DuckDB database" in w for w in warnings), (page, warnings)
        assert not any(str(isolated_home) in w or ".py" in w for w in warnings)


def test_a_held_lock_is_still_waited_for_and_said(isolated_home: Path) -> None:
    live = isolated_home / "electricity.duckdb"
    _real_database(live)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
         "print('held', flush=True); time.sleep(30)", str(live)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(serving.ServingUnavailableError) as error:
            with serving.read_connection(timeout_s=1):
                pass
        assert not isinstance(error.value, serving.CorruptDatabaseError)
        assert "stayed locked" in str(error.value)
    finally:
        holder.kill()
        holder.wait()


def test_api_mode_without_data_names_the_exact_backfill(
        isolated_home: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """api mode seeds nothing: dashboard and stack say what to backfill, not 'run the stack'."""
    from datetime import UTC, datetime

    from devstack import seed
    from electricity_assets.api_backfill import backfill_range

    monkeypatch.setenv("ELECTRICITY_SOURCE", "api")
    first, last = backfill_range(datetime.now(UTC))
    assert (datetime.now(UTC) - datetime.strptime(last, "%Y-%m-%d-%H:%M").replace(
        tzinfo=UTC)).total_seconds() < 2 * 3600
    selection = (f"Partition range {first} ... {last}")

    st.cache_data.clear()  # earlier tests' pages cached real data in this process
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception
    shown = " ".join(w.value for w in at.warning)
    assert selection in shown and "raw_demand, raw_weather" in shown
    assert "electricity-stack" not in shown  # which seeds nothing in api mode
    # A command that works as shown from the repository root (bare `dagster` has no DAGSTER_HOME).
    assert ("`./dev dagster asset materialize -m electricity_assets.definitions --select "
            "raw_demand,raw_weather,weather_station_offsets,weather_normalisation,"
            f'demand_features,weather_features --partition-range "{first}'
            f'...{last}"`') in shown

    assert seed.seed() == 0
    out = capsys.readouterr().out
    assert selection in out and "seeding" not in out
    assert not (isolated_home / "electricity.duckdb").exists()
