"""Where things live and which source to use, read from environment variables.

Everything defaults to a project-local `.local/` folder so a fresh clone needs no configuration.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DATA_DIR = Path(__file__).resolve().parent / "data"


def local_home() -> Path:
    """Root of all local state (DuckDB file, MLflow store, Dagster home, logs)."""
    return Path(os.environ.get("ELECTRICITY_HOME", PROJECT_ROOT / ".local")).resolve()


def duckdb_path() -> str:
    return os.environ.get("DUCKDB_PATH", str(local_home() / "electricity.duckdb"))


def data_dir() -> Path:
    """Folder the replay source reads (`eia930_hourly.csv.gz`, `weather_hourly.csv.gz`)."""
    return Path(os.environ.get("ELECTRICITY_DATA_DIR", PACKAGE_DATA_DIR)).resolve()


def source_mode() -> str:
    """`api` when forced or when EIA_API_KEY is set, otherwise `bundled` (offline replay)."""
    forced = os.environ.get("ELECTRICITY_SOURCE", "").strip().lower()
    if forced in ("api", "bundled"):
        return forced
    if forced:
        raise ValueError(f"ELECTRICITY_SOURCE={forced!r}: expected 'api' or 'bundled'")
    return "api" if os.environ.get("EIA_API_KEY") else "bundled"


def mlflow_tracking_uri() -> str:
    default = f"sqlite:///{local_home() / 'mlflow' / 'mlflow.db'}"
    return os.environ.get("MLFLOW_TRACKING_URI", default)


def mlflow_artifact_root() -> str:
    return os.environ.get("MLFLOW_ARTIFACT_ROOT", str(local_home() / "mlflow" / "artifacts"))
