"""One configuration surface: every variable the code reads is documented once, in
`settings.ENVIRONMENT`, read by `Settings.from_env()`, and the README lists it; secrets never
reach a repr or a resource's config."""

from __future__ import annotations

import re
from pathlib import Path

import dagster as dg
import pytest

from electricity_assets import settings
from electricity_assets.resources import build_resources
from electricity_assets.settings import ENVIRONMENT, Settings

REPO = Path(__file__).resolve().parent.parent
# A quoted name of one of the project's variable families, wherever the code reads it
# (settings.env, os.environ, EnvVar, a helper's argument).
VARIABLE = re.compile(r"[\"'](?:ELECTRICITY|KAFKA|MLFLOW|DAGSTER|DUCKDB|SERVING|EIA|CHAMPION)_"
                      r"[A-Z_]+[\"']")
DOCUMENTED = {v.name for v in ENVIRONMENT}


def _names_in_code() -> set[str]:
    sources = [*(REPO / "electricity_assets").rglob("*.py"), *(REPO / "dashboard").rglob("*.py")]
    return {m.group(0)[1:-1] for path in sources for m in VARIABLE.finditer(path.read_text())}


def test_every_variable_the_code_reads_is_documented_once() -> None:
    assert len(DOCUMENTED) == len(ENVIRONMENT)  # no variable documented twice
    assert _names_in_code() - DOCUMENTED == set()  # read but not documented
    assert DOCUMENTED - _names_in_code() == set()  # documented but read nowhere


def test_the_readme_lists_every_variable() -> None:
    docs = "\n".join(p.read_text() for p in [REPO / "README.md", *(REPO / "docs").glob("*.md")])
    assert {name for name in DOCUMENTED if f"`{name}`" not in docs} == set()


def test_settings_read_every_variable_and_keep_secrets_out_of_the_repr(
        isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EIA_API_KEY", "eia-s3cret")
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", "postgresql://u:pg-s3cret@db:5432/dagster")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "kafka-s3cret")
    monkeypatch.setenv("KAFKA_DEMAND_TOPIC", "grid.demand")
    monkeypatch.setenv("ELECTRICITY_SCHEDULE_EVERY_MINUTES", "5")
    config = Settings.from_env()
    assert config.home == isolated_home.resolve()
    assert config.duckdb_path == str(isolated_home.resolve() / "electricity.duckdb")
    assert config.source_mode == "api"  # a key is set
    assert config.freshness_max_lag_hours == 6.0  # live allowance
    assert config.schedule_every_minutes == 5
    assert config.kafka.topics["demand"] == "grid.demand"
    assert (config.eia_api_key, config.kafka.sasl_password) == ("eia-s3cret", "kafka-s3cret")
    assert "s3cret" not in repr(config) and "s3cret" not in str(config)
    # The resources built from it pass the secrets as EnvVars: the UI shows the variable's name.
    resources = build_resources(config)
    assert resources["source"].eia_api_key == dg.EnvVar("EIA_API_KEY")
    assert resources["kafka"].sasl_password == dg.EnvVar("KAFKA_SASL_PASSWORD")
    assert "s3cret" not in repr(resources)


def test_defaults_need_no_environment(isolated_home: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ENVIRONMENT:
        if variable.name != "ELECTRICITY_HOME":
            monkeypatch.delenv(variable.name, raising=False)
    config = Settings.from_env()
    assert (config.source_mode, config.freshness_max_lag_hours) == ("bundled", 3.0)
    assert config.mlflow_tracking_uri == f"sqlite:///{isolated_home.resolve()}/mlflow/mlflow.db"
    assert config.mlflow_ui_url == settings.DEFAULT_MLFLOW_UI_URL
    assert config.data_dir == settings.PACKAGE_DATA_DIR
    assert config.cache_dir == settings.PROJECT_ROOT / ".cache"
    assert config.dagster_process_env == settings.DAGSTER_PROCESS_ENV
    # The documented literal defaults are the values read.
    documented = {v.name: v.default for v in ENVIRONMENT}
    for name, value in {"ELECTRICITY_SCHEDULE_EVERY_MINUTES": config.schedule_every_minutes,
                        "ELECTRICITY_RETRAIN_CRON": config.retrain_cron,
                        "ELECTRICITY_SEED_FEATURE_DAYS": config.seed_feature_days,
                        "ELECTRICITY_SEED_FORECAST_DAYS": config.seed_forecast_days,
                        "ELECTRICITY_POSTGRES_PORT": config.postgres_port,
                        "CHAMPION_INDEX_MAX_AGE_MINUTES":
                            int(config.champion_index_max_age.total_seconds() / 60),
                        "KAFKA_TOPIC_PARTITIONS": config.kafka.topic_partitions,
                        "KAFKA_MAX_BATCH_MESSAGES": config.kafka.max_batch_messages,
                        "KAFKA_DEMAND_TOPIC": config.kafka.topics["demand"],
                        "KAFKA_WEATHER_TOPIC": config.kafka.topics["weather"]}.items():
        assert documented[name] == f"`{value}`", name


def test_the_markdown_table_has_a_row_per_variable() -> None:
    rows = settings.markdown_table().splitlines()[2:]
    assert [row.split("`")[1] for row in rows] == [v.name for v in ENVIRONMENT]
