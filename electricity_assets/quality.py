"""Data-quality queries over the raw tables, shared by materialisation metadata and asset checks.

Raw data is never cleaned here: implausible rows are counted and shown, and stay in the table.
"""

from __future__ import annotations

import re
from datetime import datetime

import duckdb
import pandas as pd

from electricity_assets.datasets import Dataset
from electricity_assets.regions import station_regions
from electricity_assets.storage import REGION_MEAN_STATION

# Why these rules: EIA-930 has reporting glitches (MIDA 53 MWh against a median of 88,747, TEN
# zeros, negative and 20x DF spikes). A value below 20% or above 300% of its series' median, a
# negative value, or a zero demand is not physical for a whole region; weather bounds are
# beyond any recorded US extreme. A weather station the region catalogue does not list is kept
# (filed under the region its file names) and flagged: no other region's weather uses it.
WEATHER_BOUNDS: dict[str, tuple[int, int]] = {
    "temperature_c": (-60, 60), "dewpoint_c": (-70, 40), "relative_humidity": (0, 100),
    "wind_speed_kmh": (0, 250), "precipitation_mm": (0, 300)}
"""Physical bounds of a weather reading (inclusive): a value outside is flagged by the raw
check and ignored by the weather features."""
_WEATHER_LABELS = {"temperature_c": ("temperature", "C"), "dewpoint_c": ("dew point", "C"),
                   "relative_humidity": ("humidity", "%"), "wind_speed_kmh": ("wind speed", "km/h"),
                   "precipitation_mm": ("precipitation", "mm")}

IMPLAUSIBLE_RULES: dict[str, dict[str, str]] = {
    "demand": {
        "negative value": "value_mwh < 0",
        "zero demand": "type = 'D' AND value_mwh = 0",
        "below 20% of series median": "value_mwh > 0 AND value_mwh < 0.2 * series_median",
        "above 300% of series median": "value_mwh > 3 * series_median",
    },
    "weather": {
        "station not in the region catalogue": "NOT is_catalogue_station",
        **{f"{what} outside {low}..{high} {unit}": f"{column} NOT BETWEEN {low} AND {high}"
           for column, (low, high) in WEATHER_BOUNDS.items()
           for what, unit in [_WEATHER_LABELS[column]]},
    },
}


def _series_columns(dataset: Dataset) -> list[str]:
    """Key columns that identify a series besides period_utc (region, and type or station)."""
    return list(dataset.series_columns)


def _catalogue_station_sql() -> str:
    """SQL list of every station the catalogue knows (its rows make up regions' weather)."""
    known = [*station_regions(), REGION_MEAN_STATION]
    return "(" + ", ".join("'" + s.replace("'", "''") + "'" for s in known) + ")"


def _window_sql(start: datetime | None, end: datetime | None) -> tuple[str, list]:
    if start is None or end is None:
        return "TRUE", []
    return "period_utc >= ? AND period_utc < ?", [start, end]


def duplicate_keys(conn: duckdb.DuckDBPyConnection, dataset: Dataset) -> pd.DataFrame:
    keys = ", ".join(dataset.key_columns)
    return conn.execute(
        f"SELECT {keys}, count(*) AS copies FROM {dataset.table} "
        f"GROUP BY {keys} HAVING count(*) > 1 ORDER BY copies DESC LIMIT 20"
    ).df()


def missing_hours(conn: duckdb.DuckDBPyConnection, dataset: Dataset,
                  start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
    """Per series: hours between its first and last row in the window that have no row."""
    series = ", ".join(_series_columns(dataset))
    where, params = _window_sql(start, end)
    return conn.execute(
        f"""
        SELECT {series},
               min(period_utc) AS first_hour, max(period_utc) AS last_hour,
               count(*) AS present_hours,
               CAST(date_diff('hour', min(period_utc), max(period_utc)) + 1 AS BIGINT)
                   AS expected_hours,
               expected_hours - present_hours AS missing_hours,
               count(*) FILTER (WHERE {' OR '.join(f'{c} IS NULL' for c in dataset.value_columns)})
                   AS rows_with_nulls
        FROM {dataset.table} WHERE {where}
        GROUP BY ALL ORDER BY ALL
        """,
        params,
    ).df()


def implausible_rows(conn: duckdb.DuckDBPyConnection, dataset: Dataset,
                     start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
    """Every raw row breaking a rule in IMPLAUSIBLE_RULES, with the rule's name as `reason`."""
    series = ", ".join(_series_columns(dataset))
    where, params = _window_sql(start, end)
    rules = IMPLAUSIBLE_RULES[dataset.name]
    reason = "CASE " + " ".join(f"WHEN {sql} THEN '{name}'" for name, sql in rules.items()) + " END"
    medians = (
        f"(SELECT {series}, median(value_mwh) AS series_median FROM {dataset.table} "
        f"GROUP BY ALL) USING ({series})"
        if dataset.name == "demand" else None
    )
    source = (f"{dataset.table} JOIN {medians}" if medians else
              f"(SELECT *, station IN {_catalogue_station_sql()} AS is_catalogue_station "
              f"FROM {dataset.table})")
    cols = ", ".join(dataset.columns)
    return conn.execute(
        f"SELECT {cols}, {reason} AS reason FROM {source} "
        f"WHERE ({where}) AND ({' OR '.join(f'({sql})' for sql in rules.values())}) "
        "ORDER BY period_utc",
        params,
    ).df()


def rows_by_source(conn: duckdb.DuckDBPyConnection, dataset: Dataset, start: datetime,
                   end: datetime) -> pd.DataFrame:
    """Per source, in the window: rows stored (`<table>_by_source`) and rows in use (the raw
    table: the ones the latest-published rule picked)."""
    return conn.execute(f"""
        WITH stored AS (SELECT source, count(*) AS rows_stored FROM {dataset.table}_by_source
                        WHERE period_utc >= $start AND period_utc < $end GROUP BY source),
             used AS (SELECT source, count(*) AS rows_in_use FROM {dataset.table}
                      WHERE period_utc >= $start AND period_utc < $end GROUP BY source)
        SELECT source, coalesce(rows_stored, 0) AS rows_stored,
               coalesce(rows_in_use, 0) AS rows_in_use
        FROM stored FULL JOIN used USING (source) ORDER BY source
    """, {"start": start, "end": end}).df()


def markdown_table(frame: pd.DataFrame, max_rows: int = 20) -> str:
    """A small markdown rendering for Dagster metadata (no tabulate dependency)."""
    if frame.empty:
        return "_no rows_"
    shown = frame.head(max_rows)
    header = "| " + " | ".join(map(markdown_cell, shown.columns)) + " |"
    rule = "|" + "---|" * len(shown.columns)
    body = ["| " + " | ".join(markdown_cell(v) for v in row) + " |"
            for row in shown.itertuples(index=False)]
    more = [f"\n_{len(frame) - max_rows} more rows_"] if len(frame) > max_rows else []
    return "\n".join([header, rule, *body, *more])


# Characters that would end a cell, start markup or a link, or open an HTML tag.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#!|~&])")


def markdown_cell(value: object) -> str:
    """One value as the text of a markdown table cell: numbers and times formatted, any text
    (a station id, a reason, a file's region code) escaped so it renders as itself."""
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d %H:%MZ")
    text = " ".join(str(value).split())  # a newline would end the table row
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)
