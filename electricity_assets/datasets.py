"""The two raw datasets as configurations of one ingestion mechanism.

Demand and weather differ only in table, columns and where the rows come from; the asset
factory in `assets/raw.py` and the stream consumer treat them alike through this spec.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Dataset:
    name: str                       # "demand" | "weather"
    table: str                      # DuckDB table
    key_columns: tuple[str, ...]    # primary key, always starting with region, period_utc
    value_columns: tuple[str, ...]  # measured columns
    bundled_file: str               # file name inside the replay data folder
    replay_required: bool = True    # False: a replay folder may lack this file (no weather)

    @property
    def columns(self) -> tuple[str, ...]:
        return self.key_columns + self.value_columns


DEMAND = Dataset(
    name="demand",
    table="raw_demand",
    key_columns=("region", "period_utc", "type"),
    value_columns=("value_mwh",),
    bundled_file="eia930_hourly.csv.gz",
)

WEATHER = Dataset(
    name="weather",
    table="raw_weather",
    key_columns=("region", "period_utc"),
    value_columns=("temperature_c", "relative_humidity", "wind_speed_kmh", "precipitation_mm"),
    bundled_file="weather_hourly.csv.gz",
    replay_required=False,  # models work without weather; a demand-only extract is valid
)

DATASETS = {d.name: d for d in (DEMAND, WEATHER)}
