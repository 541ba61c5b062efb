"""The span of the data: where the history starts, and where the replayed history ends.

No Dagster imports: the stream's plausibility rules and the replay clock use this too.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from electricity_assets import settings

HISTORY_START = datetime(2015, 7, 1, 5, tzinfo=UTC)
"""The first EIA-930 hour: the first hourly partition, and no message is about an earlier hour."""


def replay_data_end(data_dir: Path | None = None) -> datetime | None:
    """The last demand hour of the replay folder (None when it holds no demand rows).

    Every process that loads the code location asks (the partitions end there offline); the
    replay cache (`sources.bundled`, `ELECTRICITY_CACHE_DIR`) answers in ~50 ms once a file has
    been parsed."""
    from electricity_assets.datasets import DEMAND
    from electricity_assets.sources.bundled import bundled_coverage

    coverage = bundled_coverage(DEMAND, Path(data_dir or settings.data_dir()))
    return (None if coverage is None else
            pd.Timestamp(coverage[1]).tz_convert("UTC").floor("h").to_pydatetime())
