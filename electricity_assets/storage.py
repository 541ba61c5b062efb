"""DuckDB table schemas and the idempotent writes every asset and the stream consumer use.

All timestamps are TIMESTAMPTZ in UTC. Every table has a primary key, so a duplicate can never
be stored; writes either replace a time window (delete + insert in one transaction) or upsert.
A table is declared once as a `Table` next to the code that writes it (the raw, dead-letter and
serving tables here, feature tables in `features/`); the same declaration creates it and gives
the asset's column schema in the Dagster UI.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import duckdb
import pandas as pd


@dataclass(frozen=True)
class Column:
    name: str
    sql_type: str
    nullable: bool = True
    description: str = ""


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ("region", "period_utc")

    def ddl(self) -> str:
        body = [f"{c.name} {c.sql_type}{'' if c.nullable else ' NOT NULL'}" for c in self.columns]
        return ", ".join([*body, f"PRIMARY KEY ({', '.join(self.primary_key)})"])

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


def columns(spec: dict[str, str], descriptions: dict[str, str] | None = None
            ) -> tuple[Column, ...]:
    """Columns from {name: "TYPE" or "TYPE NOT NULL"}, with optional descriptions."""
    descriptions = descriptions or {}
    return tuple(Column(name, sql.removesuffix(" NOT NULL"), not sql.endswith(" NOT NULL"),
                        descriptions.get(name, "")) for name, sql in spec.items())


def _col(name: str, sql_type: str, description: str = "", nullable: bool = False) -> Column:
    return Column(name, sql_type, nullable, description)


RAW_DEMAND = Table("raw_demand", (
    _col("region", "VARCHAR", "EIA respondent code"),
    _col("period_utc", "TIMESTAMPTZ", "hour-ending, UTC, as EIA publishes it"),
    _col("type", "VARCHAR", "D = demand, DF = operator's day-ahead forecast"),
    _col("value_mwh", "DOUBLE", "as published, glitches included", nullable=True),
    _col("source", "VARCHAR", "bundled | eia_api | kafka"),
    _col("ingested_at", "TIMESTAMPTZ"),
), ("region", "period_utc", "type"))

RAW_WEATHER = Table("raw_weather", (
    _col("region", "VARCHAR", "the region the station lies in (its catalogue home)"),
    _col("station", "VARCHAR", "NOAA USAF id, open-meteo:<point>, or region-mean"),
    _col("period_utc", "TIMESTAMPTZ", "hour-ending, UTC"),
    _col("temperature_c", "DOUBLE", nullable=True),
    _col("dewpoint_c", "DOUBLE", nullable=True),
    _col("relative_humidity", "DOUBLE", "percent", nullable=True),
    _col("wind_speed_kmh", "DOUBLE", nullable=True),
    _col("precipitation_mm", "DOUBLE", nullable=True),
    _col("source", "VARCHAR", "noaa_lcd | open_meteo (bundled or API) | kafka"),
    _col("ingested_at", "TIMESTAMPTZ"),
), ("region", "station", "period_utc"))
REGION_MEAN_STATION = "region-mean"
"""`station` of weather rows that are already a region's value (older databases, messages
without a station)."""

DEAD_LETTERS = Table("dead_letters", (
    _col("topic", "VARCHAR"),
    _col("kafka_partition", "INTEGER"),
    _col("kafka_offset", "BIGINT"),
    _col("payload", "VARCHAR", "truncated to 1,000 characters", nullable=True),
    _col("reason", "VARCHAR"),
    _col("received_at", "TIMESTAMPTZ"),
), ("topic", "kafka_partition", "kafka_offset"))

# Serving tables shared by modelling (writer) and the dashboard (reader).
# What every forecast table carries for an hour: the forecast, its band and the model version.
_FORECAST_VALUES = (
    _col("forecast_mwh", "DOUBLE"),
    _col("p10_mwh", "DOUBLE", nullable=True),
    _col("p90_mwh", "DOUBLE", nullable=True),
    _col("model_name", "VARCHAR", "registered model, e.g. demand-CAL"),
    _col("model_version", "VARCHAR"),
)

DEMAND_FORECASTS = Table("demand_forecasts", (
    _col("region", "VARCHAR"),
    _col("period_utc", "TIMESTAMPTZ", "the hour forecast (hour-ending, as EIA)"),
    *_FORECAST_VALUES,
    _col("issued_at", "TIMESTAMPTZ", "data cut-off: period_utc - 24 h"),
    _col("created_at", "TIMESTAMPTZ"),
))

FORECAST_BACKTEST = Table("forecast_backtest", (
    _col("run_id", "VARCHAR", "one backtest execution"),
    _col("region", "VARCHAR"),
    _col("hours", "INTEGER"),
    *(_col(f"{who}_{metric}", "DOUBLE", nullable=True)
      for who in ("model", "df", "naive") for metric in ("mdape", "mape", "mae")),
    _col("coverage_p10_p90", "DOUBLE", "percent of hours inside [P10, P90]", nullable=True),
    _col("window_start", "TIMESTAMPTZ", nullable=True),
    _col("window_end", "TIMESTAMPTZ", nullable=True),
    _col("created_at", "TIMESTAMPTZ"),
    _col("model_mdape_expost", "DOUBLE",
         "model median APE with observed weather (model_mdape: with weather forecast error)",
         nullable=True),
), ("run_id", "region"))

NEXT_DAY_FORECASTS = Table("next_day_forecasts", (
    _col("region", "VARCHAR"),
    _col("period_utc", "TIMESTAMPTZ", "an hour after the region's latest observed demand hour"),
    *_FORECAST_VALUES,
    _col("issued_at", "TIMESTAMPTZ", "data clock at issue: only rows before it are used"),
    _col("data_until_utc", "TIMESTAMPTZ", "the region's latest observed demand hour"),
    _col("weather_input", "VARCHAR", "what stands in for the hours' weather"),
    _col("created_at", "TIMESTAMPTZ"),
), ("region", "period_utc"))

NEXT_DAY_SKIPPED = Table("next_day_skipped", (
    _col("region", "VARCHAR"),
    _col("issued_at", "TIMESTAMPTZ"),
    _col("reason", "VARCHAR", "why the region has no next-day forecast in this issue"),
), ("region",))

DEMAND_FORECASTS_SKIPPED = Table("demand_forecasts_skipped", (
    _col("region", "VARCHAR"),
    _col("window_start", "TIMESTAMPTZ", "first hour of the demand_forecasts run's window"),
    _col("window_end", "TIMESTAMPTZ", "end of that window (exclusive)"),
    _col("reason", "VARCHAR", "why the region got no forecast in that run"),
    _col("recorded_at", "TIMESTAMPTZ"),
), ("region",))

# The tables named by string (raw datasets, the stream's dead letters, the dashboard's tables).
TABLES: dict[str, Table] = {t.name: t for t in (
    RAW_DEMAND, RAW_WEATHER, DEAD_LETTERS, DEMAND_FORECASTS, FORECAST_BACKTEST,
    NEXT_DAY_FORECASTS, NEXT_DAY_SKIPPED, DEMAND_FORECASTS_SKIPPED)}


def resolve_table(table: Table | str) -> Table:
    if isinstance(table, Table):
        return table
    if table not in TABLES:
        raise KeyError(f"no schema for table {table!r}: pass its storage.Table")
    return TABLES[table]


def _upgrade_raw_weather(conn: duckdb.DuckDBPyConnection) -> None:
    """A database from before per-station weather: keep its rows as the region's own series."""
    present = {r[0] for r in conn.execute(
        "SELECT column_name FROM duckdb_columns() WHERE table_name = 'raw_weather' "
        "AND database_name = current_database() AND schema_name = current_schema()").fetchall()}
    if not present or "station" in present:
        return
    with transaction(conn):
        conn.execute("ALTER TABLE raw_weather RENAME TO raw_weather_before_stations")
        conn.execute(f"CREATE TABLE raw_weather ({RAW_WEATHER.ddl()})")
        conn.execute(f"INSERT INTO raw_weather BY NAME SELECT *, '{REGION_MEAN_STATION}' "
                     "AS station FROM raw_weather_before_stations")
        conn.execute("DROP TABLE raw_weather_before_stations")


def ensure_table(conn: duckdb.DuckDBPyConnection, table: Table | str) -> None:
    table = resolve_table(table)
    if table.name == RAW_WEATHER.name:
        _upgrade_raw_weather(conn)
    conn.execute(f"CREATE TABLE IF NOT EXISTS {table.name} ({table.ddl()})")
    _add_missing_columns(conn, table)


def _add_missing_columns(conn: duckdb.DuckDBPyConnection, table: Table) -> None:
    """A table created by an older version gains the nullable columns added since."""
    present = {r[0] for r in conn.execute(
        "SELECT column_name FROM duckdb_columns() WHERE table_name = ? "
        "AND database_name = current_database() AND schema_name = current_schema()",
        [table.name]).fetchall()}
    for column in table.columns:
        if column.nullable and column.name.strip('"') not in present:
            conn.execute(f"ALTER TABLE {table.name} ADD COLUMN {column.name} {column.sql_type}")


def ensure_tables(conn: duckdb.DuckDBPyConnection,
                  tables: Sequence[Table | str] | None = None) -> None:
    for table in tables or list(TABLES.values()):
        ensure_table(conn, table)


@contextmanager
def transaction(conn: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """BEGIN, then COMMIT if the block succeeds or ROLLBACK if it raises."""
    conn.execute("BEGIN TRANSACTION")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def insert_frame(conn: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame,
                 verb: str = "INSERT") -> None:
    """`verb` INTO `table` the rows of `frame`, matching columns by name."""
    columns = ", ".join(f'"{c}"' for c in frame.columns)
    conn.register("_incoming", frame)
    try:
        conn.execute(f"{verb} INTO {table} ({columns}) SELECT {columns} FROM _incoming")
    finally:
        conn.unregister("_incoming")


def replace_window(conn: duckdb.DuckDBPyConnection, table: Table | str, frame: pd.DataFrame,
                   start: datetime, end: datetime, time_column: str = "period_utc",
                   regions: Collection[str] | None = None) -> int:
    """Replace every row of `table` with `start <= time_column < end` by `frame`, atomically.

    Re-running the same window therefore never duplicates; rows outside the window are untouched.
    `regions`: replace only these regions' rows (the regions actually computed), so a region that
    was skipped - its model missing or broken - keeps what it had.
    """
    table = resolve_table(table)
    ensure_table(conn, table)
    if len(frame):
        outside = (frame[time_column] < start) | (frame[time_column] >= end)
        if regions is not None:
            outside |= ~frame["region"].isin(list(regions))
        if outside.any():
            raise ValueError(f"{int(outside.sum())} rows for {table.name} fall outside "
                             f"[{start}, {end})" + ("" if regions is None
                                                    else f" or regions {sorted(regions)}"))
    where, params = f"{time_column} >= ? AND {time_column} < ?", [start, end]
    if regions is not None:
        where, params = where + " AND list_contains(?, region)", [*params, sorted(regions)]
    with transaction(conn):
        conn.execute(f"DELETE FROM {table.name} WHERE {where}", params)
        if len(frame):
            insert_frame(conn, table.name, frame)
    return len(frame)


def upsert(conn: duckdb.DuckDBPyConnection, table: Table | str, frame: pd.DataFrame) -> int:
    """Insert or replace rows by the table's primary key (used for streamed, out-of-order rows)."""
    table = resolve_table(table)
    ensure_table(conn, table)
    if len(frame):
        with transaction(conn):
            insert_frame(conn, table.name, frame, "INSERT OR REPLACE")
    return len(frame)


def replace_skipped(conn: duckdb.DuckDBPyConnection, table: Table | str,
                    skipped: dict[str, str], **columns: object) -> int:
    """The regions the latest run skipped (region -> reason, plus `columns` on every row),
    replacing the previous run's list in one transaction."""
    table = resolve_table(table)
    ensure_table(conn, table)
    frame = pd.DataFrame({"region": list(skipped), "reason": list(skipped.values())})
    for name, value in columns.items():
        frame[name] = value
    if "recorded_at" in table.column_names:
        frame["recorded_at"] = pd.Timestamp.now(tz="UTC")
    with transaction(conn):
        conn.execute(f"DELETE FROM {table.name}")
        if len(frame):
            insert_frame(conn, table.name, frame)
    return len(frame)
