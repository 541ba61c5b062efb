"""Every environment variable the project reads, with its default, in one place.

`ENVIRONMENT` documents each variable (name, default, meaning): the README's configuration table
is checked against it (`python -m electricity_assets.settings` prints it as markdown).
`Settings.from_env()` reads them all into one frozen object; the functions below read one
variable each, when it is needed (tests and the stack set the environment after import).
Everything defaults to a project-local `.local/` folder so a fresh clone needs no configuration.
The Kafka part is `KafkaSettings` below (`Settings.kafka`); the Dagster resources
that carry these values are built from a `Settings` in `resources.build_resources`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from electricity_assets.streaming.errors import KafkaConfigError

if TYPE_CHECKING:
    from electricity_assets.datasets import Dataset

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


def cache_dir() -> Path:
    """Derived files that are safe to delete (the parsed replay files); shared by every process
    and every ELECTRICITY_HOME of this checkout."""
    return Path(env("ELECTRICITY_CACHE_DIR", str(PROJECT_ROOT / ".cache"))).resolve()


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


# Kafka: topics per dataset name (`datasets.DEMAND.name`, `datasets.WEATHER.name`).
DEFAULT_TOPICS = {"demand": "electricity.demand.v1", "weather": "electricity.weather.v1"}
_TOPIC_ENV = {"demand": "KAFKA_DEMAND_TOPIC", "weather": "KAFKA_WEATHER_TOPIC"}
DEFAULT_BROKER_PORT = 19092
DEFAULT_BROKER_ADDRESS = f"127.0.0.1:{DEFAULT_BROKER_PORT}"


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap_servers: str = DEFAULT_BROKER_ADDRESS
    topics: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_TOPICS))
    topic_partitions: int = 3
    max_batch_messages: int = 50_000
    security_protocol: str | None = None
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_ca_location: str | None = None

    @classmethod
    def from_env(cls) -> KafkaSettings:
        return cls(
            bootstrap_servers=env("KAFKA_BROKER_ADDRESS") or local_broker_address(),
            topics={name: env(var, DEFAULT_TOPICS[name]) for name, var in _TOPIC_ENV.items()},
            topic_partitions=_positive_int("KAFKA_TOPIC_PARTITIONS", 3),
            max_batch_messages=_positive_int("KAFKA_MAX_BATCH_MESSAGES", 50_000),
            security_protocol=env("KAFKA_SECURITY_PROTOCOL") or None,
            sasl_mechanism=env("KAFKA_SASL_MECHANISM") or None,
            sasl_username=env("KAFKA_SASL_USERNAME") or None,
            sasl_password=env("KAFKA_SASL_PASSWORD") or None,
            ssl_ca_location=env("KAFKA_SSL_CA_LOCATION") or None,
        )

    def topic(self, dataset: Dataset) -> str:
        return self.topics[dataset.name]

    def client_config(self) -> dict[str, Any]:
        """librdkafka settings shared by producer, consumer and admin client (holds the secret)."""
        conf: dict[str, Any] = {"bootstrap.servers": self.bootstrap_servers}
        optional = {
            "security.protocol": self.security_protocol,
            "sasl.mechanism": self.sasl_mechanism,
            "sasl.username": self.sasl_username,
            "sasl.password": self.sasl_password,
            "ssl.ca.location": self.ssl_ca_location,
        }
        conf.update({k: v for k, v in optional.items() if v})
        return conf


def local_broker_port() -> int:
    """KAFKA_BROKER_PORT, the port of the broker the stack starts (and every client's default)."""
    return _positive_int("KAFKA_BROKER_PORT", DEFAULT_BROKER_PORT)


def local_broker_address() -> str:
    return f"127.0.0.1:{local_broker_port()}"


def _positive_int(var: str, default: int) -> int:
    raw = env(var)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise KafkaConfigError(f"{var}={raw!r}: expected a positive integer")
    return value


@dataclass(frozen=True)
class Variable:
    name: str
    default: str  # as documented (a description where the default is computed)
    meaning: str
    secret: bool = False  # never logged, shown, or stored: Dagster gets it as an EnvVar


ENVIRONMENT: tuple[Variable, ...] = (
    Variable("ELECTRICITY_HOME", "`<repo>/.local`",
             "root of local state: DuckDB file, MLflow store, Dagster home, logs"),
    Variable("DAGSTER_HOME", "`$ELECTRICITY_HOME/dagster_home`",
             "Dagster instance; `./dev` copies `dagster.yaml` into it"),
    Variable("DUCKDB_PATH", "`$ELECTRICITY_HOME/electricity.duckdb`",
             "the DuckDB database the assets write"),
    Variable("SERVING_DUCKDB_PATH", "`serving.duckdb` next to `DUCKDB_PATH`",
             "the dashboard's read-only snapshot"),
    Variable("ELECTRICITY_DATA_DIR", "the package's `electricity_assets/data/`",
             "replay folder: `eia930_hourly.csv.gz`, optionally `weather_hourly.csv.gz` and "
             "`weather_stations_hourly.csv.gz`; any regions it holds are replayed"),
    Variable("ELECTRICITY_CACHE_DIR", "`<repo>/.cache`",
             "derived files, safe to delete: each large replay file parsed and checked once, as "
             "Parquet named by the file's content (re-made when the file or the rules change)"),
    Variable("ELECTRICITY_SOURCE", "`api` if `EIA_API_KEY` is set, else `bundled`",
             "force `bundled` (offline replay) or `api` (live EIA v2 + Open-Meteo)"),
    Variable("EIA_API_KEY", "unset",
             "EIA Open Data key (free: https://www.eia.gov/opendata/register.php); passed to "
             "Dagster as an `EnvVar`, redacted from every log and error", secret=True),
    Variable("MLFLOW_TRACKING_URI", "`sqlite:///$ELECTRICITY_HOME/mlflow/mlflow.db`",
             "any MLflow tracking server or database (also the model registry)"),
    Variable("MLFLOW_ARTIFACT_ROOT", "`$ELECTRICITY_HOME/mlflow/artifacts`",
             "where new experiments keep artifacts"),
    Variable("MLFLOW_UI_URL", f"the stack's MLflow UI (`--mlflow-port`), else "
             f"`{DEFAULT_MLFLOW_UI_URL}`", "base of the MLflow run links in asset metadata"),
    Variable("CHAMPION_INDEX_MAX_AGE_MINUTES", "`60`",
             "how long a run serves the champions named by "
             "`$ELECTRICITY_HOME/models/champions.json` before asking MLflow again "
             "(0 = always ask)"),
    Variable("ELECTRICITY_REPLAY_START", "7 days before the last bundled demand hour",
             "offline data clock: the replayed \"now\" at the anchor"),
    Variable("ELECTRICITY_REPLAY_ANCHOR", "first start of the stack",
             "wall-clock time that maps to `ELECTRICITY_REPLAY_START`"),
    Variable("ELECTRICITY_REPLAY_SPEED", "`1`", "data hours per wall-clock hour"),
    Variable("ELECTRICITY_SCHEDULE_EVERY_MINUTES", "`60`",
             "hourly schedule cadence (1, 2, 5, 10, 15, 30 or 60) for fast replays"),
    Variable("ELECTRICITY_RETRAIN_CRON", "`0 3 * * 0`", "when `retrain_schedule` ticks"),
    Variable("ELECTRICITY_FRESHNESS_MAX_LAG_HOURS", "3 offline, 6 live",
             "freshness check threshold per region"),
    Variable("ELECTRICITY_SEED_FEATURE_DAYS", "`400`",
             "first-run seed: days of features before the replay start"),
    Variable("ELECTRICITY_SEED_FORECAST_DAYS", "`7`",
             "first-run seed: days of forecasts before the replay start"),
    Variable("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS",
             "on (the instance storage that `dagster.yaml` selects turns it on; the stack also "
             "sets `1`); `0` turns it off",
             "Dagster: one planned event per asset for a ranged run instead of one per hour, so "
             "long backfills and stream runs start at once"),
    Variable("DAGSTER_EVENT_BATCH_SIZE", "`2000` (set by the stack for its Dagster processes)",
             "Dagster: hand a ranged run's per-partition events to the event log in batches of "
             "this size; the project's sqlite storage writes each batch in one transaction"),
    Variable("DAGSTER_POSTGRES_URL", "unset: sqlite under `$DAGSTER_HOME`",
             "Dagster storage on PostgreSQL (`postgresql+psycopg2://user:password@host:port/db`);"
             " set by `--postgres` for its local server", secret=True),
    Variable("ELECTRICITY_POSTGRES_PORT", "`15432`",
             "port of the local PostgreSQL that `electricity-stack --postgres` starts"),
    Variable("KAFKA_BROKER_ADDRESS", "unset: the stack starts Tansu on "
             "127.0.0.1:`KAFKA_BROKER_PORT`", "any Kafka/Redpanda bootstrap address"),
    Variable("KAFKA_BROKER_PORT", "`19092`",
             "port of the local Tansu broker; with `KAFKA_BROKER_ADDRESS` unset every client "
             "(sensor, runs, `electricity-replay`, `electricity-live`) uses it"),
    Variable("KAFKA_DEMAND_TOPIC", "`electricity.demand.v1`", "demand topic (created if missing)"),
    Variable("KAFKA_WEATHER_TOPIC", "`electricity.weather.v1`",
             "weather topic (created if missing)"),
    Variable("KAFKA_TOPIC_PARTITIONS", "`3`", "partitions of topics the project creates"),
    Variable("KAFKA_MAX_BATCH_MESSAGES", "`50000`", "messages per sensor-requested run"),
    Variable("KAFKA_SECURITY_PROTOCOL", "unset",
             "secured clusters: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"),
    Variable("KAFKA_SASL_MECHANISM", "unset",
             "secured clusters: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"),
    Variable("KAFKA_SASL_USERNAME", "unset", "secured clusters: SASL user"),
    Variable("KAFKA_SASL_PASSWORD", "unset", "secured clusters: SASL password; never logged",
             secret=True),
    Variable("KAFKA_SSL_CA_LOCATION", "unset", "secured clusters: CA certificate file"),
)


def markdown_table() -> str:
    """ENVIRONMENT as the README's configuration table."""
    rows = [f"| `{v.name}` | {v.default} | {v.meaning} |" for v in ENVIRONMENT]
    return "\n".join(["| Variable | Default | Meaning |", "|---|---|---|", *rows])


@dataclass(frozen=True)
class Settings:
    """Every variable of ENVIRONMENT, read and validated at once; secrets stay out of the repr."""

    home: Path
    dagster_home: Path
    duckdb_path: str
    serving_duckdb_path: Path
    data_dir: Path
    cache_dir: Path
    source_mode: str
    eia_api_key: str | None = field(repr=False)
    mlflow_tracking_uri: str
    mlflow_artifact_root: str
    mlflow_ui_url: str
    champion_index_max_age: timedelta
    replay_start: str
    replay_anchor: str
    replay_speed: str
    schedule_every_minutes: int
    retrain_cron: str
    freshness_max_lag_hours: float
    seed_feature_days: int
    seed_forecast_days: int
    dagster_process_env: dict[str, str]  # DAGSTER_EMIT_..., DAGSTER_EVENT_BATCH_SIZE
    dagster_postgres_url: str = field(repr=False)  # holds a password
    postgres_port: int
    kafka: KafkaSettings  # every KAFKA_* variable (the password kept out of its repr)

    @classmethod
    def from_env(cls) -> Settings:
        mode, process_env = source_mode(), dagster_process_env()
        return cls(
            home=local_home(), dagster_home=dagster_home(), duckdb_path=duckdb_path(),
            serving_duckdb_path=serving_duckdb_path(), data_dir=data_dir(), cache_dir=cache_dir(),
            source_mode=mode,
            eia_api_key=env("EIA_API_KEY") or None,
            mlflow_tracking_uri=mlflow_tracking_uri(),
            mlflow_artifact_root=mlflow_artifact_root(), mlflow_ui_url=mlflow_ui_url(),
            champion_index_max_age=champion_index_max_age(),
            replay_start=replay_start_text(), replay_anchor=replay_anchor_text(),
            replay_speed=replay_speed_text(), schedule_every_minutes=schedule_every_minutes(),
            retrain_cron=retrain_cron(), freshness_max_lag_hours=freshness_max_lag_hours(mode),
            seed_feature_days=seed_feature_days(), seed_forecast_days=seed_forecast_days(),
            dagster_process_env={k: process_env[k] for k in DAGSTER_PROCESS_ENV},
            dagster_postgres_url=dagster_postgres_url(), postgres_port=local_postgres_port(),
            kafka=KafkaSettings.from_env(),
        )


if __name__ == "__main__":
    print(markdown_table())
