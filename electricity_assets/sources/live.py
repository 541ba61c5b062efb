"""The one entry point the raw assets call in api mode: `fetch_live(dataset, start, end, ...)`.

Demand comes from EIA, weather from Open-Meteo; which fetcher serves a dataset is a table entry
(`FETCHERS`), so both datasets go through the same call, column order and reject format.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd

from electricity_assets.datasets import DEMAND, WEATHER, Dataset
from electricity_assets.regions import get_region, region_codes
from electricity_assets.settings import EIA_BASE_URL
from electricity_assets.sources.eia import EIAClient, empty_rejects
from electricity_assets.sources.http import HttpSettings
from electricity_assets.sources.open_meteo import (
    ARCHIVE_URL,
    FORECAST_URL,
    OpenMeteoClient,
    mean_over_points,
    split_by_source,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LiveConfig:
    """Everything a fetcher may need; each uses its own part."""

    eia_api_key: str | None = None
    eia_base_url: str = EIA_BASE_URL
    archive_url: str = ARCHIVE_URL
    forecast_url: str = FORECAST_URL
    http: HttpSettings = HttpSettings()
    now: datetime | None = None  # "now" for the archive/forecast split; tests pin it


Fetcher = Callable[[datetime, datetime, Sequence[str], LiveConfig],
                   tuple[pd.DataFrame, pd.DataFrame]]


def fetch_demand(start: datetime, end: datetime, regions: Sequence[str],
                 config: LiveConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    with EIAClient(config.eia_api_key, base_url=config.eia_base_url,
                   max_retries=config.http.max_retries,
                   backoff_factor=config.http.backoff_factor,
                   timeout_s=config.http.timeout_s) as client:
        result = client.fetch_region_data(start, end, regions)
    return result.rows, result.rejected


def fetch_weather(start: datetime, end: datetime, regions: Sequence[str],
                  config: LiveConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    now = config.now or datetime.now(UTC)
    frames: list[pd.DataFrame] = []
    with OpenMeteoClient(config.archive_url, config.forecast_url,
                         max_retries=config.http.max_retries,
                         backoff_factor=config.http.backoff_factor,
                         timeout_s=config.http.timeout_s) as client:
        for code in regions:
            points = get_region(code).weather_points
            if not points:
                logger.warning("region %s has no weather points in regions.py: no weather "
                               "fetched for it", code)
                continue
            parts = [client.fetch_region_weather(code, points, s, e, kind)
                     for kind, s, e in split_by_source(start, end, now)]
            frames.append(pd.concat(parts, ignore_index=True) if parts
                          else mean_over_points([], code))
    rows = (pd.concat(frames, ignore_index=True) if frames else mean_over_points([], ""))
    return rows, empty_rejects()


FETCHERS: dict[str, Fetcher] = {DEMAND.name: fetch_demand, WEATHER.name: fetch_weather}


def fetch_live(
    dataset: Dataset,
    start: datetime,
    end: datetime,
    regions: Sequence[str] | None = None,
    *,
    eia_api_key: str | None = None,
    eia_base_url: str = EIA_BASE_URL,
    archive_url: str = ARCHIVE_URL,
    forecast_url: str = FORECAST_URL,
    http: HttpSettings | None = None,
    now: datetime | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows of `dataset` with start <= period_utc < end from the live APIs, plus rejects.

    Returns (rows in `dataset.columns` order, rejected rows as `payload, reason`). `regions`
    defaults to the catalogue codes. Raises a `SourceError` subclass whose message says what
    to do (missing or invalid key, rate limit, outage, malformed body).
    """
    fetcher = FETCHERS.get(dataset.name)
    if fetcher is None:
        raise ValueError(f"no live source for dataset {dataset.name!r}: "
                         f"expected one of {sorted(FETCHERS)}")
    config = LiveConfig(eia_api_key, eia_base_url, archive_url, forecast_url,
                        http or HttpSettings(), now)
    codes = list(regions) if regions else region_codes()
    rows, rejected = fetcher(start, end, codes, config)
    return rows[list(dataset.columns)].reset_index(drop=True), rejected.reset_index(drop=True)
