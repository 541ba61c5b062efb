"""Shared fixtures. Every test gets its own ELECTRICITY_HOME, so nothing touches `.local/`."""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


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
    return home


@pytest.fixture
def duckdb_path(isolated_home: Path) -> str:
    return str(isolated_home / "test.duckdb")
