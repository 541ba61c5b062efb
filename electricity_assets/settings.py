"""Every environment variable the project reads, with its default, in one place.

Everything defaults to a project-local `.local/` folder so a fresh clone needs no configuration.
Functions, not module constants: a value is read when it is needed (tests and the stack set the
environment after import). Kafka's settings are in `streaming/settings.py` (KafkaSettings), the
Dagster resources that carry these values in `resources.py`.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DATA_DIR = Path(__file__).resolve().parent / "data"

EIA_BASE_URL = "https://api.eia.gov/v2"
OPEN_METEO_ARCHIVE_URL = "https://archive-api.open-meteo.com/v1/archive"
OPEN_METEO_FORECAST_URL = "https://api.open-meteo.com/v1/forecast"
DEFAULT_MLFLOW_UI_URL = "http://127.0.0.1:5000"

# Environment of every Dagster process the project starts (dagster dev, run workers, the seed's
# runs, benches). Batched asset-event writes: a ranged run hands its per-partition
# materialisations to the event log in batches (instance_storage.py writes each in one
# transaction). One planned event per asset for a ranged run instead of one per hourly partition,
# so a long backfill starts at once (Dagster's trade-off: a failed ranged run does not mark each
# partition failed). A value already in the environment wins.
DAGSTER_PROCESS_ENV = {
    "DAGSTER_EVENT_BATCH_SIZE": "2000",
    "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "1",
}


def env(name: str, default: str = "") -> str:
    """The variable's value, stripped; `default` when unset or empty."""
    return os.environ.get(name, "").strip() or default


def local_home() -> Path:
    """Root of all local state (DuckDB file, MLflow store, Dagster home, logs)."""
    return Path(env("ELECTRICITY_HOME", str(PROJECT_ROOT / ".local"))).resolve()


def dagster_home() -> Path:
    return Path(env("DAGSTER_HOME", str(local_home() / "dagster_home")))


def dagster_process_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """`base` (default: this process's environment) completed with DAGSTER_PROCESS_ENV."""
    return {**DAGSTER_PROCESS_ENV, **(os.environ if base is None else base)}


def dagster_postgres_url() -> str:
    """Dagster storage on PostgreSQL when set (postgresql://user:password@host:port/db)."""
    return env("DAGSTER_POSTGRES_URL")


def local_postgres_port() -> int:
    """Port of the PostgreSQL server `electricity-stack --postgres` starts for itself."""
    return int(env("ELECTRICITY_POSTGRES_PORT", "15432"))


def duckdb_path() -> str:
    return env("DUCKDB_PATH", str(local_home() / "electricity.duckdb"))


def serving_duckdb_path() -> Path:
    """The dashboard's snapshot: SERVING_DUCKDB_PATH, default next to the live DuckDB file."""
    return Path(env("SERVING_DUCKDB_PATH")
                or Path(duckdb_path()).with_name("serving.duckdb"))


def data_dir() -> Path:
    """Folder the replay source reads (`eia930_hourly.csv.gz`, `weather_hourly.csv.gz`)."""
    return Path(env("ELECTRICITY_DATA_DIR", str(PACKAGE_DATA_DIR))).resolve()


def eia_api_key_set() -> bool:
    return bool(env("EIA_API_KEY"))


def source_mode() -> str:
    """`api` when forced or when EIA_API_KEY is set, otherwise `bundled` (offline replay)."""
    forced = env("ELECTRICITY_SOURCE").lower()
    if forced in ("api", "bundled"):
        return forced
    if forced:
        raise ValueError(f"ELECTRICITY_SOURCE={forced!r}: expected 'api' or 'bundled'")
    return "api" if eia_api_key_set() else "bundled"


def mlflow_tracking_uri() -> str:
    return env("MLFLOW_TRACKING_URI", f"sqlite:///{local_home() / 'mlflow' / 'mlflow.db'}")


def mlflow_artifact_root() -> str:
    return env("MLFLOW_ARTIFACT_ROOT", str(local_home() / "mlflow" / "artifacts"))


def mlflow_ui_url() -> str:
    return env("MLFLOW_UI_URL", DEFAULT_MLFLOW_UI_URL)


def schedule_every_minutes() -> int:
    """Hourly schedule cadence: a divisor of 60 (fast replays tick more often)."""
    text = env("ELECTRICITY_SCHEDULE_EVERY_MINUTES", "60")
    if not text.isdigit() or not (1 <= int(text) <= 60) or 60 % int(text):
        raise ValueError(f"ELECTRICITY_SCHEDULE_EVERY_MINUTES={text!r}: expected a divisor of 60 "
                         "(1, 2, 5, 10, 15, 30 or 60)")
    return int(text)


def retrain_cron() -> str:
    return env("ELECTRICITY_RETRAIN_CRON", "0 3 * * 0")


def freshness_max_lag_hours(mode: str) -> float:
    """Allowed lag of a region's newest hour in source `mode`: 3 h offline, 6 h live (EIA
    publishes within ~2 h)."""
    text = env("ELECTRICITY_FRESHNESS_MAX_LAG_HOURS")
    return float(text) if text else {"bundled": 3.0, "api": 6.0}[mode]


def seed_feature_days() -> int:
    return int(env("ELECTRICITY_SEED_FEATURE_DAYS", "400"))


def seed_forecast_days() -> int:
    return int(env("ELECTRICITY_SEED_FORECAST_DAYS", "7"))


def champion_index_max_age() -> timedelta:
    """How long a run serves the champions named by the cached index before asking MLflow
    again (`modeling.champion_cache`); 0 = always ask."""
    return timedelta(minutes=float(env("CHAMPION_INDEX_MAX_AGE_MINUTES", "60")))


def replay_start_text() -> str:
    return env("ELECTRICITY_REPLAY_START")


def replay_anchor_text() -> str:
    return env("ELECTRICITY_REPLAY_ANCHOR")


def replay_speed_text() -> str:
    return env("ELECTRICITY_REPLAY_SPEED")
