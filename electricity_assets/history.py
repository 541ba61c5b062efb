"""The span of the data: where the history starts, and where the replayed history ends.

No Dagster imports: the stream's plausibility rules and the replay clock use this too.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from electricity_assets import settings

logger = logging.getLogger(__name__)

HISTORY_START = datetime(2015, 7, 1, 5, tzinfo=UTC)
"""The first EIA-930 hour: the first hourly partition, and no message is about an earlier hour."""

CACHE_FILE = "replay_data_end.json"


def _fingerprint(paths: list[Path]) -> dict[str, list[int]]:
    return {str(p): [p.stat().st_size, p.stat().st_mtime_ns] for p in paths}


def replay_data_end(data_dir: Path | None = None, home: Path | None = None) -> datetime | None:
    """The last demand hour of the replay folder (None when it holds no demand rows).

    Cached in ELECTRICITY_HOME under the files' size and mtime: reading the compressed CSV takes
    about a second, and every process that loads the code location asks (the partitions end
    there offline)."""
    from electricity_assets.datasets import DEMAND
    from electricity_assets.sources.bundled import bundled_coverage

    data_dir = Path(data_dir or settings.data_dir())
    paths = [data_dir / f.name for f in DEMAND.replay_files if (data_dir / f.name).exists()]
    cache = (home or settings.local_home()) / CACHE_FILE
    key = _fingerprint(paths)
    try:
        saved = json.loads(cache.read_text())
        if saved.get("files") == key:
            return pd.Timestamp(saved["last"]).to_pydatetime() if saved["last"] else None
    except (OSError, ValueError, KeyError, AttributeError):
        pass  # no cache yet, or unreadable: read the files
    coverage = bundled_coverage(DEMAND, data_dir)
    last = (None if coverage is None else
            pd.Timestamp(coverage[1]).tz_convert("UTC").floor("h").to_pydatetime())
    if not cache.parent.is_dir():  # loading the code location never creates the state folder
        return last
    try:
        tmp = cache.with_suffix(".tmp")
        tmp.write_text(json.dumps({"files": key, "last": last.isoformat() if last else None}))
        os.replace(tmp, cache)
    except OSError as exc:
        logger.warning("could not cache the replay data end in %s: %s", cache, exc)
    return last
