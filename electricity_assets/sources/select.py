"""Source selection: one call returns a window of either dataset, from the replay or the APIs."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pandas as pd

from electricity_assets import settings
from electricity_assets.datasets import Dataset
from electricity_assets.plausibility import split_implausible
from electricity_assets.sources.bundled import read_replay

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceConfig:
    mode: str                     # bundled | api
    data_dir: Path
    eia_api_key: str | None = field(default=None, repr=False)
    eia_base_url: str = settings.EIA_BASE_URL
    open_meteo_archive_url: str = settings.OPEN_METEO_ARCHIVE_URL
    open_meteo_forecast_url: str = settings.OPEN_METEO_FORECAST_URL


@dataclass
class SourceWindow:
    rows: pd.DataFrame            # dataset.columns + source, period_utc tz-aware UTC
    rejected: pd.DataFrame        # rows the source refused, with a `reason` column
    sources: tuple[str, ...]      # the `source` labels this load stands for (rows or not)

    @property
    def source(self) -> str:
        """The `source` labels of the rows, e.g. 'noaa_lcd, open_meteo' (for logs and metadata)."""
        return ", ".join(sorted(self.rows["source"].unique())) or "none"


def load_window(dataset: Dataset, start: datetime, end: datetime,
                config: SourceConfig) -> SourceWindow:
    """Rows of `dataset` with start <= period_utc < end from the configured source.

    Values that cannot be readings are rejected by the same rule as streamed messages
    (`plausibility.split_implausible`); everything else is kept as published.
    """
    window = _load_window(dataset, start, end, config)
    rows, implausible = split_implausible(dataset, window.rows)
    if len(implausible):
        logger.warning("%s: %d %s rows rejected, e.g. %s", window.source, len(implausible),
                       dataset.name, implausible["reason"].iloc[0])
        rejected = pd.concat([r for r in (window.rejected, implausible) if len(r)],
                             ignore_index=True)
        return SourceWindow(rows, rejected, window.sources)
    return window


def _load_window(dataset: Dataset, start: datetime, end: datetime,
                 config: SourceConfig) -> SourceWindow:
    if config.mode == "bundled":
        missing = [f.name for f in dataset.replay_files if not (config.data_dir / f.name).exists()]
        if missing:
            logger.warning("%s has no %s: those %s rows are not replayed", config.data_dir,
                           ", ".join(missing), dataset.name)
        replay = read_replay(dataset, start, end, config.data_dir)
        return SourceWindow(replay.rows, replay.rejected,
                            tuple(f.source for f in dataset.replay_files))
    if config.mode == "api":
        from electricity_assets.sources.live import fetch_live

        rows, rejected = fetch_live(
            dataset, start, end, None,
            eia_api_key=config.eia_api_key,
            eia_base_url=config.eia_base_url,
            archive_url=config.open_meteo_archive_url,
            forecast_url=config.open_meteo_forecast_url,
        )
        label = "eia_api" if dataset.name == "demand" else "open_meteo"
        return SourceWindow(rows[list(dataset.columns)].assign(source=label), rejected, (label,))
    raise ValueError(f"unknown source mode {config.mode!r}: expected 'bundled' or 'api'")
