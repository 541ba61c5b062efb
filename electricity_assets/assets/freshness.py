"""Freshness checks: red when any region's newest hour is older than expected.

"Now" is the data clock: the replay clock offline, the wall clock against the live APIs. The
allowed lag is ELECTRICITY_FRESHNESS_MAX_LAG_HOURS (default 3 h offline, 6 h live: EIA-930 is
usually published within an hour or two). Regions come from the data, so a region that stops
reporting stays listed and turns the check red.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import dagster as dg
import duckdb
import pandas as pd

from electricity_assets import quality, settings
from electricity_assets.datasets import DEMAND, WEATHER, Dataset
from electricity_assets.resources import ElectricityDuckDB, SourceResource


def max_lag(mode: str) -> timedelta:
    return timedelta(hours=settings.freshness_max_lag_hours(mode))


def latest_hours(conn: duckdb.DuckDBPyConnection, dataset: Dataset) -> pd.DataFrame:
    """Newest period_utc per region (actual demand only, not the operators' forecasts)."""
    where = "WHERE type = 'D'" if "type" in dataset.key_columns else ""
    return conn.execute(
        f"SELECT region, max(period_utc) AS latest_hour FROM {dataset.table} {where} "
        "GROUP BY region ORDER BY region").df()


def assess_freshness(latest: pd.DataFrame, now: datetime, allowed: timedelta) -> pd.DataFrame:
    """Adds lag_hours and stale to `latest` (region, latest_hour)."""
    frame = latest.copy()
    lag = pd.Timestamp(now) - frame["latest_hour"]
    frame["lag_hours"] = (lag.dt.total_seconds() / 3600).round(1)
    frame["stale"] = lag > allowed
    return frame


def build_freshness_check(dataset: Dataset) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=dataset.table, name="freshness",
                    description=f"Every region's newest {dataset.name} hour is recent enough "
                                "against the data clock (replay clock offline).")
    def _freshness(duckdb: ElectricityDuckDB, source: SourceResource) -> dg.AssetCheckResult:
        now = source.clock().now()
        allowed = max_lag(source.mode)
        with duckdb.get_connection() as conn:
            frame = assess_freshness(latest_hours(conn, dataset), now, allowed)
        stale = frame[frame["stale"]]
        return dg.AssetCheckResult(
            passed=bool(len(frame)) and stale.empty,
            severity=dg.AssetCheckSeverity.ERROR,
            description=(f"{len(stale)} of {len(frame)} regions older than "
                         f"{allowed.total_seconds() / 3600:g} h" if len(frame)
                         else f"{dataset.table} is empty"),
            metadata={
                "data_clock_utc": dg.MetadataValue.text(now.isoformat()),
                "max_lag_hours": dg.MetadataValue.float(allowed.total_seconds() / 3600),
                "stale_regions": dg.MetadataValue.text(", ".join(stale["region"]) or "none"),
                "worst_lag_hours": dg.MetadataValue.float(
                    float(frame["lag_hours"].max()) if len(frame) else float("nan")),
                "latest_hours": dg.MetadataValue.md(quality.markdown_table(frame)),
            })

    return _freshness


freshness_checks = [build_freshness_check(d) for d in (DEMAND, WEATHER)]
