"""Seed a tmp DuckDB with real bundled data for the dashboard tests.

Raw demand and weather are the real bundled rows. `demand_forecasts`, `next_day_forecasts` and
`forecast_backtest` rows are TEST FIXTURES derived from real data (model = mean of the same hour
over the two previous weeks, P10/P90 = +-4 %, model_version "test-fixture"), standing in for the
modelling pipeline (next day: the 24 hours after each region's last hour, issued at
NEXT_DAY_ISSUED; SE skipped with a reason).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd

from electricity_assets.datasets import DEMAND, WEATHER
from electricity_assets.settings import PACKAGE_DATA_DIR
from electricity_assets.sources.bundled import read_bundled
from electricity_assets.storage import ensure_tables, insert_frame, replace_window

SEED_START = datetime(2020, 2, 15, tzinfo=UTC)
SEED_END = datetime(2020, 4, 2, tzinfo=UTC)
FORECAST_START = datetime(2020, 3, 18, tzinfo=UTC)
FIXTURE_VERSION = "test-fixture"
NEXT_DAY_ISSUED = datetime(2020, 4, 2, 3, tzinfo=UTC)
NEXT_DAY_SKIP_REASON = "no champion for demand-SE: materialise trained_models first"


def seed_raw(conn: duckdb.DuckDBPyConnection, start: datetime = SEED_START,
             end: datetime = SEED_END) -> None:
    now = pd.Timestamp(datetime.now(UTC))
    for dataset in (DEMAND, WEATHER):
        rows = read_bundled(dataset, start, end, PACKAGE_DATA_DIR)
        rows = rows.assign(source="bundled", ingested_at=now)
        replace_window(conn, dataset.table, rows, start, end)


def fixture_forecasts(conn: duckdb.DuckDBPyConnection,
                      start: datetime = FORECAST_START) -> pd.DataFrame:
    """TEST FIXTURE forecasts from real actuals: mean of t-168 h and t-336 h."""
    return conn.execute("""
        WITH d AS (SELECT region, period_utc, value_mwh FROM raw_demand WHERE type = 'D')
        SELECT d.region, d.period_utc,
               (w1.value_mwh + w2.value_mwh) / 2 AS forecast_mwh,
               (w1.value_mwh + w2.value_mwh) / 2 * 0.96 AS p10_mwh,
               (w1.value_mwh + w2.value_mwh) / 2 * 1.04 AS p90_mwh,
               'demand-' || d.region AS model_name, ? AS model_version,
               d.period_utc - INTERVAL 24 HOUR AS issued_at, now() AS created_at
        FROM d
        JOIN d w1 ON w1.region = d.region AND w1.period_utc = d.period_utc - INTERVAL 168 HOUR
        JOIN d w2 ON w2.region = d.region AND w2.period_utc = d.period_utc - INTERVAL 336 HOUR
        WHERE d.period_utc >= ?""", [FIXTURE_VERSION, start]).df()


def fixture_next_day(conn: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """TEST FIXTURE next-day forecasts: the 24 hours after each region's last D hour (SE left
    out), the mean of t-168 h and t-336 h."""
    return conn.execute("""
        WITH d AS (SELECT region, period_utc, value_mwh FROM raw_demand WHERE type = 'D'),
        last AS (SELECT region, max(period_utc) AS until FROM d GROUP BY region),
        hours AS (SELECT region, until, unnest(generate_series(until + INTERVAL 1 HOUR,
                         until + INTERVAL 24 HOUR, INTERVAL 1 HOUR)) AS period_utc FROM last)
        SELECT h.region, h.period_utc, (w1.value_mwh + w2.value_mwh) / 2 AS forecast_mwh,
               (w1.value_mwh + w2.value_mwh) / 2 * 0.96 AS p10_mwh,
               (w1.value_mwh + w2.value_mwh) / 2 * 1.04 AS p90_mwh,
               'demand-' || h.region AS model_name, ? AS model_version,
               ? AS issued_at, h.until AS data_until_utc,
               'observed + simulated day-ahead error (offline replay)' AS weather_input,
               now() AS created_at
        FROM hours h
        JOIN d w1 ON w1.region = h.region AND w1.period_utc = h.period_utc - INTERVAL 168 HOUR
        JOIN d w2 ON w2.region = h.region AND w2.period_utc = h.period_utc - INTERVAL 336 HOUR
        WHERE h.region <> 'SE'""", [FIXTURE_VERSION, NEXT_DAY_ISSUED]).df()


def seed_all(path: str) -> None:
    with duckdb.connect(path) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        ensure_tables(conn)
        seed_raw(conn)
        forecasts = fixture_forecasts(conn)
        replace_window(conn, "demand_forecasts", forecasts, FORECAST_START, SEED_END)
        insert_frame(conn, "next_day_forecasts", fixture_next_day(conn))
        conn.execute("INSERT INTO next_day_skipped VALUES ('SE', ?, ?)",
                     [NEXT_DAY_ISSUED, NEXT_DAY_SKIP_REASON])
        conn.execute("""
            INSERT INTO forecast_backtest
            SELECT 'test-fixture-run', region, 336, 3.1, 3.4, 1000, 1.9, 2.2, 700, 6.0, 7.0, 2000,
                   78.0, ?, ?, now(), 2.9
            FROM (SELECT DISTINCT region FROM demand_forecasts)""", [FORECAST_START, SEED_END])
        conn.execute("INSERT INTO dead_letters BY NAME SELECT 'electricity.demand.v1' AS topic, "
                     "'' AS topic_id, 0 AS kafka_partition, 7 AS kafka_offset, "
                     "'{not json' AS payload, 'invalid JSON' AS reason, now() AS received_at")


_seeded: Path | None = None


def seeded_database(base_dir: Path) -> Path:
    """The seeded file, built once per test session (copy it before writing to it)."""
    global _seeded
    if _seeded is None or not _seeded.exists():
        path = base_dir / "seed.duckdb"
        seed_all(str(path))
        _seeded = path
    return _seeded
