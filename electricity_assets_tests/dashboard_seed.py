"""Seed a tmp DuckDB with real bundled data for the dashboard tests.

Raw demand and weather are the real bundled rows. `demand_forecasts`, `forecast_skips` and
`forecast_backtest` rows are TEST FIXTURES derived from real data (model = mean of the same hour
over the two previous weeks, P10/P90 = +-4 %, model_version "test-fixture"), standing in for the
modelling pipeline: an issue every hour from FORECAST_START - 1 day, each with 48 horizons; the
newest issue (NEXT_DAY_ISSUED, the hour after the last demand hour) leaves SE out with a reason.
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
NEXT_DAY_ISSUED = datetime(2020, 4, 2, 0, tzinfo=UTC)
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
    """TEST FIXTURE issues from real actuals: every hour's issue from `start` - 1 day to
    NEXT_DAY_ISSUED, 48 horizons, the forecast the mean of t-168 h and t-336 h (SE left out of
    the newest issue)."""
    return conn.execute("""
        WITH d AS (SELECT region, period_utc, value_mwh FROM raw_demand WHERE type = 'D'),
        issues AS (SELECT DISTINCT d.region, i.issue_utc FROM d,
                   (SELECT unnest(generate_series(?::TIMESTAMPTZ - INTERVAL 1 DAY,
                                   ?::TIMESTAMPTZ, INTERVAL 1 HOUR)) AS issue_utc) i),
        paths AS (SELECT region, issue_utc, h AS horizon_h,
                         issue_utc + (h - 1) * INTERVAL 1 HOUR AS period_utc
                  FROM issues, (SELECT unnest(range(1, 49)) AS h))
        SELECT p.region, p.issue_utc, p.horizon_h::INTEGER AS horizon_h, p.period_utc,
               (w1.value_mwh + w2.value_mwh) / 2 AS forecast_mwh,
               (w1.value_mwh + w2.value_mwh) / 2 * 0.96 AS p10_mwh,
               (w1.value_mwh + w2.value_mwh) / 2 * 1.04 AS p90_mwh,
               'demand-horizons-' || p.region AS model_name, ? AS model_version,
               p.issue_utc - INTERVAL 1 HOUR AS data_until_utc,
               'observed + simulated forecast error growing with lead time (offline replay)'
                   AS weather_input,
               now() AS created_at
        FROM paths p
        JOIN d w1 ON w1.region = p.region AND w1.period_utc = p.period_utc - INTERVAL 168 HOUR
        JOIN d w2 ON w2.region = p.region AND w2.period_utc = p.period_utc - INTERVAL 336 HOUR
        WHERE NOT (p.region = 'SE' AND p.issue_utc = ?::TIMESTAMPTZ)""",
                        [start, NEXT_DAY_ISSUED, FIXTURE_VERSION, NEXT_DAY_ISSUED]).df()


def seed_all(path: str) -> None:
    with duckdb.connect(path) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        ensure_tables(conn)
        seed_raw(conn)
        insert_frame(conn, "demand_forecasts", fixture_forecasts(conn))
        conn.execute("INSERT INTO forecast_skips VALUES ('SE', ?, ?, now())",
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
