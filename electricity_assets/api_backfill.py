"""What to do first in api mode, where nothing is seeded: the exact backfill to launch in the UI.

Offline, the stack seeds the bundled history; with live APIs (EIA_API_KEY set) the history has to
be pulled by a backfill, which the user starts and watches. The stack, the seed command and the
dashboard all print this one text. No Dagster imports: the dashboard uses it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd

from electricity_assets import settings

PARTITION_FORMAT = "%Y-%m-%d-%H:%M"  # partitions.hourly_partitions.fmt


def history_days() -> int:
    """How much history the first backfill pulls (the offline seed's feature window)."""
    return settings.seed_feature_days()


def backfill_range(now: datetime, days: int | None = None) -> tuple[str, str]:
    """First and last hourly partition key of the first backfill: `days` up to the last
    complete hour at `now`."""
    last = pd.Timestamp(now).tz_convert("UTC").floor("h") - timedelta(hours=1)
    first = last - timedelta(days=days or history_days()) + timedelta(hours=1)
    return first.strftime(PARTITION_FORMAT), last.strftime(PARTITION_FORMAT)


def backfill_hint(now: datetime, dagster_url: str = "the Dagster UI") -> str:
    first, last = backfill_range(now)
    return (
        "No data yet: api mode (EIA_API_KEY set) seeds nothing. Backfill the history in "
        f"{dagster_url}: Assets -> tick raw_demand, raw_weather, weather_station_offsets, "
        "weather_normalisation, demand_features and weather_features -> Materialize selected "
        "-> Partition range "
        f"{first} ... {last} -> Launch (one run per asset range); then materialise "
        "trained_models for its newest complete week and demand_forecasts for the last 7 days. "
        "The same from a shell in the repository (`./dev dagster` sets DAGSTER_HOME): "
        "`./dev dagster asset materialize -m electricity_assets.definitions "
        "--select raw_demand,raw_weather,weather_station_offsets,weather_normalisation,"
        "demand_features,weather_features --partition-range "
        f'"{first}...{last}"`. The hourly schedule keeps it current from then on.'
    )
