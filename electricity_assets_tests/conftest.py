"""Shared fixtures. Every test gets its own ELECTRICITY_HOME, so nothing touches `.local/`."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parent.parent


# Fixtures that start a server: a test using one (directly or through another fixture) is an
# `integration` test, so `./dev test -m "not integration"` leaves it out without anyone marking
# it. Modules that start servers themselves (streamlit, dagster daemon, the stack, Chromium,
# PostgreSQL) say so with a `pytestmark` line; a test that runs another program (a bench, a CLI,
# a second writer process) carries `@pytest.mark.integration` with the reason beside it.
SERVER_FIXTURES = frozenset({"kafka_broker", "postgres"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("ELECTRICITY_HOME", str(home))
    monkeypatch.delenv("DUCKDB_PATH", raising=False)
    monkeypatch.delenv("EIA_API_KEY", raising=False)
    monkeypatch.delenv("ELECTRICITY_SOURCE", raising=False)
    monkeypatch.delenv("ELECTRICITY_DATA_DIR", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for name in ("SERVING_DUCKDB_PATH", "ELECTRICITY_REPLAY_START", "ELECTRICITY_REPLAY_ANCHOR",
                 "ELECTRICITY_REPLAY_SPEED"):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def duckdb_path(isolated_home: Path) -> str:
    return str(isolated_home / "test.duckdb")


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap address of a real Kafka-protocol broker (Tansu on loopback) for the session."""
    from electricity_assets.streaming.broker import start_broker

    log_path = tmp_path_factory.mktemp("kafka") / "broker.log"
    with start_broker(port=0, log_path=log_path) as broker:
        yield broker.address


@pytest.fixture
def kafka_settings(kafka_broker: str, monkeypatch: pytest.MonkeyPatch,
                   request: pytest.FixtureRequest):
    """KafkaSettings on the session broker with topics of this test only (also set in the env)."""
    import re

    from electricity_assets.settings import KafkaSettings

    slug = re.sub(r"[^a-zA-Z0-9]+", "-", request.node.name)[-60:]
    monkeypatch.setenv("KAFKA_BROKER_ADDRESS", kafka_broker)
    monkeypatch.setenv("KAFKA_DEMAND_TOPIC", f"test.demand.{slug}")
    monkeypatch.setenv("KAFKA_WEATHER_TOPIC", f"test.weather.{slug}")
    return KafkaSettings.from_env()


@pytest.fixture
def project_dagster_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A DAGSTER_HOME holding the project's own dagster.yaml, as `./dev` sets it up."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home
