"""The two raw datasets as configurations of one ingestion mechanism.

Demand and weather differ only in table, columns and where the rows come from; the asset
factory in `assets/raw.py` and the stream consumer treat them alike through this spec.
"""

from __future__ import annotations

from dataclasses import dataclass

from electricity_assets import storage


@dataclass(frozen=True)
class ReplayFile:
    """One gzipped CSV of the replay folder and the `source` label its rows get."""

    name: str
    source: str
    required: bool = True  # False: a replay folder may lack it (a demand-only extract is valid)


@dataclass(frozen=True)
class Dataset:
    name: str                       # "demand" | "weather"
    raw_table: storage.Table        # the DuckDB table (its primary key starts with region)
    value_columns: tuple[str, ...]  # measured columns
    replay_files: tuple[ReplayFile, ...]  # files inside the replay data folder

    @property
    def table(self) -> str:
        return self.raw_table.name

    @property
    def key_columns(self) -> tuple[str, ...]:
        """The table's primary key (declared once, in `storage`)."""
        return self.raw_table.primary_key

    @property
    def columns(self) -> tuple[str, ...]:
        return self.key_columns + self.value_columns

    @property
    def bundled_file(self) -> str:
        """The main replay file (its coverage is the replay's)."""
        return self.replay_files[0].name

    @property
    def series_columns(self) -> tuple[str, ...]:
        """Key columns that identify one series besides period_utc."""
        return tuple(c for c in self.key_columns if c != "period_utc")


DEMAND = Dataset(
    name="demand",
    raw_table=storage.RAW_DEMAND,
    value_columns=("value_mwh",),
    replay_files=(ReplayFile("eia930_hourly.csv.gz", "bundled"),),
)

# Weather is kept per station (a NOAA station or an Open-Meteo point): the region's weather is
# derived from its stations in `features/weather.py`.
WEATHER = Dataset(
    name="weather",
    raw_table=storage.RAW_WEATHER,
    value_columns=("temperature_c", "dewpoint_c", "relative_humidity", "wind_speed_kmh",
                   "precipitation_mm"),
    replay_files=(
        ReplayFile("weather_hourly.csv.gz", "open_meteo", required=False),
        ReplayFile("weather_stations_hourly.csv.gz", "noaa_lcd", required=False),
    ),
)

DATASETS = {d.name: d for d in (DEMAND, WEATHER)}
