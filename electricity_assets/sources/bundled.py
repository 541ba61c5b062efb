"""Offline replay of real history from gzipped CSV files (the default source).

The folder (package `data/` or `ELECTRICITY_DATA_DIR`) holds `eia930_hourly.csv.gz` and
`weather_hourly.csv.gz` in the schema described in the README; any region codes they contain
are replayed, including ones the bundle lacks.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd

from electricity_assets.datasets import Dataset


class BundledDataError(RuntimeError):
    pass


def bundled_file(dataset: Dataset, data_dir: Path) -> Path:
    path = Path(data_dir) / dataset.bundled_file
    if not path.exists():
        raise BundledDataError(
            f"{path} not found: ELECTRICITY_DATA_DIR must hold {dataset.bundled_file}"
        )
    return path


def read_bundled(dataset: Dataset, start: datetime, end: datetime, data_dir: Path) -> pd.DataFrame:
    """Rows of `dataset` with start <= period_utc < end, in the dataset's column order."""
    path = bundled_file(dataset, data_dir)
    select = ", ".join(
        "period_utc::TIMESTAMPTZ AS period_utc" if c == "period_utc"
        else f"{c}::DOUBLE AS {c}" if c in dataset.value_columns
        else c
        for c in dataset.columns
    )
    # A private in-memory connection: reading the CSV never touches the project database.
    with duckdb.connect() as conn:
        conn.execute("SET TimeZone = 'UTC'")
        try:
            return conn.execute(
                f"SELECT {select} FROM read_csv(?, header = true, all_varchar = true) "
                "WHERE period_utc::TIMESTAMPTZ >= ? AND period_utc::TIMESTAMPTZ < ? "
                "ORDER BY ALL",
                [str(path), start, end],
            ).df()
        except duckdb.Error as exc:
            raise BundledDataError(f"cannot read {path}: {exc}") from exc


def bundled_coverage(dataset: Dataset, data_dir: Path) -> tuple[datetime, datetime] | None:
    """First and last period_utc in the replay file (None when empty)."""
    path = bundled_file(dataset, data_dir)
    with duckdb.connect() as conn:
        conn.execute("SET TimeZone = 'UTC'")
        first, last = conn.execute(
            "SELECT min(period_utc::TIMESTAMPTZ), max(period_utc::TIMESTAMPTZ) "
            "FROM read_csv(?, header = true, all_varchar = true)", [str(path)]
        ).fetchone()
    return None if first is None else (first, last)
