"""The training / forecasting frame: the two feature tables joined on (region, period_utc)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import duckdb
import pandas as pd

from electricity_assets.features import demand, weather
from electricity_assets.features.common import ensure_exists, to_utc, utc_hour


def model_frame(conn: duckdb.DuckDBPyConnection, start: datetime, end: datetime,
                regions: Sequence[str] | None = None) -> pd.DataFrame:
    """`demand_features` LEFT JOIN `weather_features` for start <= period_utc < end.

    Every demand row is kept; regions without weather get NULL weather columns. Optionally
    restricted to `regions`. Sorted by region, period_utc.
    """
    start_ts, end_ts = utc_hour(start, "start"), utc_hour(end, "end")
    ensure_exists(conn, demand.SCHEMA, weather.SCHEMA)
    weather_cols = ", ".join(f"w.{c}" for c in weather.COLUMNS if c not in ("region", "period_utc"))
    params: dict[str, object] = {"start": start_ts, "end": end_ts}
    region_filter = ""
    if regions is not None:
        region_filter = "AND d.region IN (SELECT unnest($regions))"
        params["regions"] = list(regions)
    frame = conn.execute(f"""
        SELECT d.*, {weather_cols}
        FROM {demand.TABLE} d
        LEFT JOIN {weather.TABLE} w USING (region, period_utc)
        WHERE d.period_utc >= $start AND d.period_utc < $end {region_filter}
        ORDER BY d.region, d.period_utc
    """, params).df()
    return to_utc(frame)
