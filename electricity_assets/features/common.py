"""Small helpers shared by the demand and weather feature builders."""

from __future__ import annotations

from datetime import datetime

import duckdb
import pandas as pd

from electricity_assets import storage


def utc_hour(value: datetime | str, name: str) -> pd.Timestamp:
    """`value` as a tz-aware UTC Timestamp on the hour; naive or off-the-hour input is an error."""
    ts = pd.Timestamp(value)
    if ts.tzinfo is None:
        raise ValueError(f"{name}={value!r} is naive: pass a timezone-aware UTC datetime")
    ts = ts.tz_convert("UTC")
    if ts != ts.floor("h"):
        raise ValueError(f"{name}={value!r} is not on the hour: feature windows are hourly")
    return ts


def to_utc(frame: pd.DataFrame, column: str = "period_utc") -> pd.DataFrame:
    """Make `column` tz-aware UTC whatever the connection's session TimeZone was."""
    if len(frame.columns) and column in frame:
        values = frame[column]
        if getattr(values.dt, "tz", None) is None:
            frame[column] = values.dt.tz_localize("UTC")
        else:
            frame[column] = values.dt.tz_convert("UTC")
    return frame


def ensure_exists(conn: duckdb.DuckDBPyConnection, *tables: storage.Table | str) -> None:
    """Create the `tables` that do not exist yet (a no-op on read-only connections where they
    all exist, whereas DuckDB refuses even an if-not-exists table creation on them)."""
    existing = storage.existing_tables(conn)
    for table in map(storage.resolve_table, tables):
        if table.name not in existing:
            storage.ensure_table(conn, table)
