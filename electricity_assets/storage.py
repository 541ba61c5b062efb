"""DuckDB table schemas and the idempotent writes every asset and the stream consumer use.

All timestamps are TIMESTAMPTZ in UTC. Every table has a primary key, so a duplicate can never
be stored; writes either replace a time window (delete + insert in one transaction) or upsert.
A table is declared once as a `Table` next to the code that writes it (the raw, dead-letter and
serving tables here, feature tables in `features/`); the same declaration creates it and gives
the asset's column schema in the Dagster UI.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
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


_PUBLISHED = ("a streamed row's Kafka message time; NULL for a bulk source (bundled, API), "
              "which counts as published before any message")

RAW_DEMAND = Table("raw_demand", (
    _col("region", "VARCHAR", "EIA respondent code"),
    _col("period_utc", "TIMESTAMPTZ", "hour-ending, UTC, as EIA publishes it"),
    _col("type", "VARCHAR", "D = demand, DF = operator's day-ahead forecast"),
    _col("value_mwh", "DOUBLE", "as published, glitches included", nullable=True),
    _col("source", "VARCHAR", "bundled | eia_api | kafka"),
    _col("ingested_at", "TIMESTAMPTZ"),
    _col("published_at", "TIMESTAMPTZ", _PUBLISHED, nullable=True),
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
    _col("published_at", "TIMESTAMPTZ", _PUBLISHED, nullable=True),
), ("region", "station", "period_utc"))
REGION_MEAN_STATION = "region-mean"
"""`station` of weather rows that are already a region's value (older databases, messages
without a station)."""



def by_source(table: Table) -> Table:
    """The every-source twin of a raw table: the same columns, `source` in the key."""
    return Table(f"{table.name}_by_source", table.columns, (*table.primary_key, "source"))


# Every source's rows, kept side by side: a source replaces only its own (`replace_source_window`)
# and the raw table holds the one value per key the rule picks (`RESOLVE_ORDER`).
RAW_DEMAND_BY_SOURCE = by_source(RAW_DEMAND)
RAW_WEATHER_BY_SOURCE = by_source(RAW_WEATHER)
RESOLVE_ORDER = "published_at DESC NULLS LAST, ingested_at DESC, source"
"""Which row of a key the raw table holds: the latest published (a streamed row, by its message
time), and between bulk sources (no publish time) the latest ingested."""

DEAD_LETTERS = Table("dead_letters", (
    _col("topic", "VARCHAR"),
    _col("kafka_partition", "INTEGER"),
    _col("kafka_offset", "BIGINT"),
    _col("payload", "VARCHAR", "truncated to 1,000 characters", nullable=True),
    _col("reason", "VARCHAR"),
    _col("received_at", "TIMESTAMPTZ"),
    _col("topic_id", "VARCHAR",
         "the topic's incarnation (Kafka topic id; '' for letters stored before it was kept)"),
), ("topic", "topic_id", "kafka_partition", "kafka_offset"))

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
    _col("issue_utc", "TIMESTAMPTZ",
         "the issue time: only data with period_utc before it was used (partition hour + 1 h)"),
    _col("horizon_h", "INTEGER", "1..48: period_utc = issue_utc + (horizon_h - 1) h"),
    _col("period_utc", "TIMESTAMPTZ", "the hour forecast (hour-ending, as EIA)"),
    *_FORECAST_VALUES,
    _col("data_until_utc", "TIMESTAMPTZ", "the region's latest demand hour the issue used"),
    _col("weather_input", "VARCHAR", "what stood in for the weather of the hours ahead"),
    _col("created_at", "TIMESTAMPTZ"),
), ("region", "issue_utc", "horizon_h"))

DAY_AHEAD_FORECASTS = Table("day_ahead_forecasts", (
    _col("region", "VARCHAR"),
    _col("target_date", "DATE", "local day D of the region"),
    _col("period_utc", "TIMESTAMPTZ", "an hour of local day D (hour-ending, as EIA)"),
    _col("issue_utc", "TIMESTAMPTZ", "the issue at the configured local hour of D-1"),
    _col("horizon_h", "INTEGER"),
    *_FORECAST_VALUES,
    _col("created_at", "TIMESTAMPTZ"),
), ("region", "period_utc"))

FORECAST_SKIPS = Table("forecast_skips", (
    _col("region", "VARCHAR"),
    _col("issue_utc", "TIMESTAMPTZ"),
    _col("reason", "VARCHAR", "why the region has no forecast (or fewer hours) in this issue"),
    _col("created_at", "TIMESTAMPTZ"),
), ("region", "issue_utc"))

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

# The tables named by string (raw datasets, the stream's dead letters, the dashboard's tables).
TABLES: dict[str, Table] = {t.name: t for t in (
    RAW_DEMAND, RAW_WEATHER, RAW_DEMAND_BY_SOURCE, RAW_WEATHER_BY_SOURCE, DEAD_LETTERS,
    DEMAND_FORECASTS, FORECAST_SKIPS, FORECAST_BACKTEST, DAY_AHEAD_FORECASTS)}


def resolve_table(table: Table | str) -> Table:
    if isinstance(table, Table):
        return table
    if table not in TABLES:
        raise KeyError(f"no schema for table {table!r}: pass its storage.Table")
    return TABLES[table]


def _columns_of(conn: duckdb.DuckDBPyConnection, name: str) -> set[str]:
    return {r[0] for r in conn.execute(
        "SELECT column_name FROM duckdb_columns() WHERE table_name = ? "
        "AND database_name = current_database() AND schema_name = current_schema()",
        [name]).fetchall()}


def _rebuild(conn: duckdb.DuckDBPyConnection, table: Table, added: str) -> None:
    """Recreate `table` under its current DDL (a new key column), its rows kept with `added`
    (a `SELECT` list item) filling the new column."""
    with transaction(conn):
        conn.execute(f"ALTER TABLE {table.name} RENAME TO {table.name}_before_upgrade")
        conn.execute(f"CREATE TABLE {table.name} ({table.ddl()})")
        conn.execute(f"INSERT INTO {table.name} BY NAME SELECT *, {added} "
                     f"FROM {table.name}_before_upgrade")
        conn.execute(f"DROP TABLE {table.name}_before_upgrade")


def _upgrade_raw_weather(conn: duckdb.DuckDBPyConnection) -> None:
    """A database from before per-station weather: keep its rows as the region's own series."""
    present = _columns_of(conn, RAW_WEATHER.name)
    if present and "station" not in present:
        _rebuild(conn, RAW_WEATHER, f"'{REGION_MEAN_STATION}' AS station")


def _upgrade_dead_letters(conn: duckdb.DuckDBPyConnection) -> None:
    """Dead letters from before the topic id was kept: '' stands for their (unknown) incarnation,
    so no letter of a later incarnation can replace them."""
    present = _columns_of(conn, DEAD_LETTERS.name)
    if present and "topic_id" not in present:
        _rebuild(conn, DEAD_LETTERS, "'' AS topic_id")


def _ensure_by_source(conn: duckdb.DuckDBPyConnection, raw: Table) -> None:
    """Create the raw table's every-source twin; a database from before it gets its raw rows
    copied in (a streamed row's publish time taken as its ingestion time, the best bound known)."""
    every = TABLES[f"{raw.name}_by_source"]
    if _columns_of(conn, every.name):
        _add_missing_columns(conn, every)
        return
    with transaction(conn):
        conn.execute(f"CREATE TABLE {every.name} ({every.ddl()})")
        conn.execute(f"UPDATE {raw.name} SET published_at = ingested_at "
                     "WHERE source = 'kafka' AND published_at IS NULL")
        listed = ", ".join(every.column_names)
        conn.execute(f"INSERT INTO {every.name} ({listed}) SELECT {listed} FROM {raw.name}")


def _upgrade_demand_forecasts(conn: duckdb.DuckDBPyConnection) -> None:
    """A database from before issue-hour forecasts (one 24 h-ahead row per hour): its table is
    kept as `demand_forecasts_24h_v1`, never dropped; re-materialise demand_forecasts."""
    present = _column_names(conn, DEMAND_FORECASTS.name)
    if present and "horizon_h" not in present:
        conn.execute("ALTER TABLE demand_forecasts RENAME TO demand_forecasts_24h_v1")


def _column_names(conn: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    return {r[0] for r in conn.execute(
        "SELECT column_name FROM duckdb_columns() WHERE table_name = ? "
        "AND database_name = current_database() AND schema_name = current_schema()",
        [table]).fetchall()}


def ensure_table(conn: duckdb.DuckDBPyConnection, table: Table | str) -> None:
    table = resolve_table(table)
    raw = next((r for r in (RAW_DEMAND, RAW_WEATHER)
                if table.name in (r.name, f"{r.name}_by_source")), None)
    if raw is not None and table is not raw:
        table = raw  # the twin is created (and filled) with its raw table
    if table.name == RAW_WEATHER.name:
        _upgrade_raw_weather(conn)
    if table.name == DEMAND_FORECASTS.name:
        _upgrade_demand_forecasts(conn)
    if table.name == DEAD_LETTERS.name:
        _upgrade_dead_letters(conn)
    conn.execute(f"CREATE TABLE IF NOT EXISTS {table.name} ({table.ddl()})")
    _add_missing_columns(conn, table)
    if raw is not None:
        _ensure_by_source(conn, raw)


def _add_missing_columns(conn: duckdb.DuckDBPyConnection, table: Table) -> None:
    """A table created by an older version gains the nullable columns added since."""
    present = _columns_of(conn, table.name)
    for column in table.columns:
        if column.nullable and column.name.strip('"') not in present:
            conn.execute(f"ALTER TABLE {table.name} ADD COLUMN {column.name} {column.sql_type}")


def ensure_tables(conn: duckdb.DuckDBPyConnection,
                  tables: Sequence[Table | str] | None = None) -> None:
    for table in tables or list(TABLES.values()):
        ensure_table(conn, table)


def existing_tables(conn: duckdb.DuckDBPyConnection) -> set[str]:
    """Names of the tables in the connection's current database and schema (reads only)."""
    return {row[0] for row in conn.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = current_schema()").fetchall()}


def demand_regions(conn: duckdb.DuckDBPyConnection) -> list[str]:
    """Every region with demand rows, sorted (never a fixed list: a new balancing area counts
    once it has rows); none before `raw_demand` exists. Reads only: the snapshot too."""
    if RAW_DEMAND.name not in existing_tables(conn):
        return []
    return [r[0] for r in conn.execute(
        f"SELECT DISTINCT region FROM {RAW_DEMAND.name} ORDER BY region").fetchall()]


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
                   start: datetime, end: datetime, time_column: str = "period_utc") -> int:
    """Replace every row of `table` with `start <= time_column < end` by `frame`, atomically.

    Re-running the same window therefore never duplicates; rows outside the window are untouched.
    """
    table = resolve_table(table)
    ensure_table(conn, table)
    _check_window(table, frame, start, end, time_column)
    with transaction(conn):
        conn.execute(f"DELETE FROM {table.name} WHERE {time_column} >= ? AND {time_column} < ?",
                     [start, end])
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


def _check_window(table: Table, frame: pd.DataFrame, start: datetime, end: datetime,
                  time_column: str = "period_utc") -> None:
    if len(frame):
        outside = (frame[time_column] < start) | (frame[time_column] >= end)
        if outside.any():
            raise ValueError(f"{int(outside.sum())} rows for {table.name} fall outside "
                             f"[{start}, {end})")


def _pick(raw: Table, where: str) -> str:
    """SELECT of the one row per key of `raw` that the rule picks among its sources' rows."""
    listed = ", ".join(raw.column_names)
    keys = ", ".join(raw.primary_key)
    return (f"SELECT {listed} FROM {raw.name}_by_source s {where} "
            f"QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY {RESOLVE_ORDER}) = 1")


def _match(keys: Sequence[str], left: str, right: str) -> str:
    return " AND ".join(f"{left}.{k} = {right}.{k}" for k in keys)


def replace_source_window(conn: duckdb.DuckDBPyConnection, table: Table | str,
                          frame: pd.DataFrame, sources: Sequence[str], start: datetime,
                          end: datetime) -> int:
    """Make the rows of `sources` with `start <= period_utc < end` of a raw table's sources
    exactly `frame`, atomically, and re-pick the raw rows of the keys that changed.

    Rows of any other source (streamed rows above all) are never deleted: a bulk pull
    re-materialising a window replaces only what that pull itself wrote before. Rows whose
    values did not change are left as they are (their `ingested_at` is when the value first
    came), so re-running a long window rewrites only what changed.
    """
    raw = resolve_table(table)
    every = TABLES[f"{raw.name}_by_source"]
    ensure_table(conn, raw)
    _check_window(raw, frame, start, end)
    foreign = set(frame["source"]) - set(sources) if len(frame) else set()
    if foreign:
        raise ValueError(f"rows for {raw.name} from {sorted(foreign)}, not from {list(sources)}")
    keys, own = raw.primary_key, every.primary_key
    compared = [c for c in every.column_names if c not in own and c != "ingested_at"]
    listed = ", ".join(every.column_names)
    if not len(frame):  # typed like the table, so the comparisons below bind
        frame = conn.execute(f"SELECT {listed} FROM {every.name} LIMIT 0").df()
    params = {"start": start, "end": end, "sources": list(sources)}
    in_window = ("e.period_utc >= $start AND e.period_utc < $end "
                 "AND list_contains($sources, e.source)")
    gone = f"NOT EXISTS (SELECT 1 FROM _incoming i WHERE {_match(own, 'i', 'e')})"
    conn.register("_incoming", frame)
    try:
        first_load = not conn.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM {every.name} WHERE period_utc >= $start "
            "AND period_utc < $end LIMIT 1)", {"start": start, "end": end}).fetchone()[0]
        if first_load:  # no source holds the window yet (seed, new hours): the pull is the pick
            with transaction(conn):
                conn.execute(f"INSERT INTO {every.name} ({listed}) SELECT {listed} FROM _incoming")
                conn.execute(f"DELETE FROM {raw.name} WHERE period_utc >= ? AND period_utc < ?",
                             [start, end])
                conn.execute(f"INSERT INTO {raw.name} ({', '.join(raw.column_names)}) "
                             f"SELECT {', '.join(raw.column_names)} FROM {every.name} "
                             "WHERE period_utc >= ? AND period_utc < ?", [start, end])
            return len(frame)
        with transaction(conn):
            # The keys whose raw pick may change: new or changed rows, and rows the pull no
            # longer has.
            changed = " OR ".join(f"i.{c} IS DISTINCT FROM e.{c}" for c in compared)
            conn.execute(f"""CREATE OR REPLACE TEMP TABLE _touched AS
                SELECT {', '.join(f'i.{k}' for k in keys)} FROM _incoming i
                LEFT JOIN {every.name} e ON {_match(own, 'i', 'e')}
                WHERE e.source IS NULL OR {changed}
                UNION
                SELECT {', '.join(f'e.{k}' for k in keys)} FROM {every.name} e
                WHERE {in_window} AND {gone}""", params)
            conn.execute(f"DELETE FROM {every.name} e USING _touched t "
                         f"WHERE {_match(keys, 'e', 't')} AND list_contains($sources, e.source)",
                         {"sources": list(sources)})
            conn.execute(f"INSERT INTO {every.name} ({listed}) SELECT {listed} FROM _incoming "
                         f"SEMI JOIN _touched USING ({', '.join(keys)})")
            conn.execute(f"DELETE FROM {raw.name} r USING _touched t "
                         f"WHERE {_match(keys, 'r', 't')}")
            conn.execute(f"INSERT INTO {raw.name} ({', '.join(raw.column_names)}) "
                         + _pick(raw, f"SEMI JOIN _touched USING ({', '.join(keys)})"))
            conn.execute("DROP TABLE _touched")
    finally:
        conn.unregister("_incoming")
    return len(frame)  # the rows the pull holds for the window, written or already there


def upsert_published(conn: duckdb.DuckDBPyConnection, table: Table | str,
                     frame: pd.DataFrame) -> int:
    """Upsert streamed rows (one per key, with `published_at`) into a raw table's sources: a
    stored row is replaced only by one published no earlier. Then re-pick those keys' raw rows."""
    raw = resolve_table(table)
    every = TABLES[f"{raw.name}_by_source"]
    ensure_table(conn, raw)
    if not len(frame):
        return 0
    columns = ", ".join(f'"{c}"' for c in frame.columns)
    updated = ", ".join(f'"{c}" = excluded."{c}"' for c in frame.columns
                        if c not in every.primary_key)
    keys = ", ".join(raw.primary_key)
    conn.register("_incoming", frame)
    try:
        with transaction(conn):
            conn.execute(
                f"INSERT INTO {every.name} ({columns}) SELECT {columns} FROM _incoming "
                f"ON CONFLICT DO UPDATE SET {updated} WHERE {every.name}.published_at IS NULL "
                f"OR excluded.published_at >= {every.name}.published_at")
            conn.execute(
                f"INSERT OR REPLACE INTO {raw.name} ({', '.join(raw.column_names)}) "
                + _pick(raw, f"SEMI JOIN (SELECT DISTINCT {keys} FROM _incoming) i "
                             f"USING ({keys})"))
    finally:
        conn.unregister("_incoming")
    return len(frame)


def replace_table(conn: duckdb.DuckDBPyConnection, table: Table | str,
                  frame: pd.DataFrame) -> int:
    """Replace every row of `table` by `frame` (a fitted statistic: the whole table is one
    fit); inside `transaction`, to replace tables fitted together at once. Returns the rows."""
    table = resolve_table(table)
    ensure_table(conn, table)
    conn.execute(f"DELETE FROM {table.name}")
    if len(frame):
        insert_frame(conn, table.name, frame)
    return len(frame)
