"""DuckDB table schemas and the idempotent writes every asset and the stream consumer use.

All timestamps are TIMESTAMPTZ in UTC. Every table has a primary key, so a duplicate can never
be stored; writes either replace a time window (delete + insert in one transaction) or upsert.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import duckdb
import pandas as pd

TABLES: dict[str, str] = {
    "raw_demand": """
        region VARCHAR NOT NULL,
        period_utc TIMESTAMPTZ NOT NULL,
        type VARCHAR NOT NULL,            -- D = demand, DF = operator's day-ahead forecast
        value_mwh DOUBLE,
        source VARCHAR NOT NULL,          -- bundled | eia_api | kafka
        ingested_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (region, period_utc, type)""",
    "raw_weather": """
        region VARCHAR NOT NULL,          -- the region the station lies in (its catalogue home)
        station VARCHAR NOT NULL,         -- NOAA USAF id, open-meteo:<point>, or region-mean
        period_utc TIMESTAMPTZ NOT NULL,
        temperature_c DOUBLE,
        dewpoint_c DOUBLE,
        relative_humidity DOUBLE,
        wind_speed_kmh DOUBLE,
        precipitation_mm DOUBLE,
        source VARCHAR NOT NULL,          -- noaa_lcd | open_meteo (bundled or API) | kafka
        ingested_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (region, station, period_utc)""",
    "dead_letters": """
        topic VARCHAR NOT NULL,
        kafka_partition INTEGER NOT NULL,
        kafka_offset BIGINT NOT NULL,
        payload VARCHAR,                  -- truncated to 1,000 characters
        reason VARCHAR NOT NULL,
        received_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (topic, kafka_partition, kafka_offset)""",
}


def register_table(name: str, columns_sql: str) -> None:
    """Let another module (features, modeling, streaming) declare its table next to its code."""
    TABLES[name] = columns_sql


REGION_MEAN_STATION = "region-mean"
"""`station` of weather rows that are already a region's value (older databases, messages
without a station)."""


def _upgrade_raw_weather(conn: duckdb.DuckDBPyConnection) -> None:
    """A database from before per-station weather: keep its rows as the region's own series."""
    columns = {r[0] for r in conn.execute(
        "SELECT column_name FROM duckdb_columns() WHERE table_name = 'raw_weather' "
        "AND database_name = current_database() AND schema_name = current_schema()").fetchall()}
    if not columns or "station" in columns:
        return
    conn.execute("BEGIN TRANSACTION")
    try:
        conn.execute("ALTER TABLE raw_weather RENAME TO raw_weather_before_stations")
        conn.execute(f"CREATE TABLE raw_weather ({TABLES['raw_weather']})")
        conn.execute(f"INSERT INTO raw_weather BY NAME SELECT *, '{REGION_MEAN_STATION}' "
                     "AS station FROM raw_weather_before_stations")
        conn.execute("DROP TABLE raw_weather_before_stations")
        conn.execute("COMMIT")
    except Exception:
        conn.execute("ROLLBACK")
        raise


def ensure_table(conn: duckdb.DuckDBPyConnection, name: str) -> None:
    if name == "raw_weather":
        _upgrade_raw_weather(conn)
    conn.execute(f"CREATE TABLE IF NOT EXISTS {name} ({TABLES[name]})")


def ensure_tables(conn: duckdb.DuckDBPyConnection, names: Sequence[str] | None = None) -> None:
    for name in names or list(TABLES):
        ensure_table(conn, name)


def _insert_frame(conn: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame,
                  verb: str) -> None:
    columns = ", ".join(f'"{c}"' for c in frame.columns)
    conn.register("_incoming", frame)
    try:
        conn.execute(f"{verb} INTO {table} ({columns}) SELECT {columns} FROM _incoming")
    finally:
        conn.unregister("_incoming")


def replace_window(conn: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame,
                   start: datetime, end: datetime, time_column: str = "period_utc") -> int:
    """Replace every row of `table` with `start <= time_column < end` by `frame`, atomically.

    Re-running the same window therefore never duplicates; rows outside the window are untouched.
    """
    ensure_table(conn, table)
    if len(frame):
        outside = (frame[time_column] < start) | (frame[time_column] >= end)
        if outside.any():
            raise ValueError(f"{int(outside.sum())} rows for {table} fall outside [{start}, {end})")
    conn.execute("BEGIN TRANSACTION")
    try:
        conn.execute(f"DELETE FROM {table} WHERE {time_column} >= ? AND {time_column} < ?",
                     [start, end])
        if len(frame):
            _insert_frame(conn, table, frame, "INSERT")
        conn.execute("COMMIT")
    except Exception:
        conn.execute("ROLLBACK")
        raise
    return len(frame)


def upsert(conn: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> int:
    """Insert or replace rows by the table's primary key (used for streamed, out-of-order rows)."""
    ensure_table(conn, table)
    if len(frame):
        conn.execute("BEGIN TRANSACTION")
        try:
            _insert_frame(conn, table, frame, "INSERT OR REPLACE")
            conn.execute("COMMIT")
        except Exception:
            conn.execute("ROLLBACK")
            raise
    return len(frame)


# Serving tables shared by modelling (writer) and the dashboard (reader).
register_table("demand_forecasts", """
        region VARCHAR NOT NULL,
        period_utc TIMESTAMPTZ NOT NULL,  -- the hour forecast (hour-ending, as EIA)
        forecast_mwh DOUBLE NOT NULL,
        p10_mwh DOUBLE,
        p90_mwh DOUBLE,
        model_name VARCHAR NOT NULL,      -- registered model, e.g. demand-CAL
        model_version VARCHAR NOT NULL,
        issued_at TIMESTAMPTZ NOT NULL,   -- data cut-off: period_utc - 24 h
        created_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (region, period_utc)""")

register_table("forecast_backtest", """
        run_id VARCHAR NOT NULL,          -- one backtest execution
        region VARCHAR NOT NULL,
        hours INTEGER NOT NULL,
        model_mdape DOUBLE, model_mape DOUBLE, model_mae DOUBLE,
        df_mdape DOUBLE, df_mape DOUBLE, df_mae DOUBLE,
        naive_mdape DOUBLE, naive_mape DOUBLE, naive_mae DOUBLE,
        coverage_p10_p90 DOUBLE,          -- percent of hours inside [P10, P90]
        window_start TIMESTAMPTZ, window_end TIMESTAMPTZ,
        created_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (run_id, region)""")
