"""The Streamlit app's logic through AppTest, on a tmp DuckDB seeded with real bundled data."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from electricity_assets import serving
from electricity_assets_tests.dashboard_seed import seeded_database

APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")


@pytest.fixture
def app(tmp_path_factory: pytest.TempPathFactory, isolated_home: Path) -> AppTest:
    live = isolated_home / "electricity.duckdb"
    shutil.copy(seeded_database(tmp_path_factory.mktemp("seed")), live)
    serving.publish_snapshot()
    at = AppTest.from_file(APP, default_timeout=90)
    at.run()
    assert not at.exception, at.exception
    return at


def _texts(at: AppTest) -> str:
    parts = [e.value for kind in ("title", "subheader", "info", "warning", "caption", "markdown")
             for e in at.get(kind)]
    return "\n".join(str(p) for p in parts)


def test_default_view_shows_real_region_chart_metrics_and_operations(app: AppTest) -> None:
    region = app.selectbox(key="region")
    assert region.value == "CAL" and "US48 - United States Lower 48" in region.options
    assert len(region.options) == 12
    assert len(app.get("plotly_chart")) == 2  # demand chart + CAL weather scatter
    metrics = app.table[0].value
    assert list(metrics.index) == ["model", "EIA day-ahead (DF)", "seasonal naive (t-168 h)"]
    assert (metrics["hours"] > 300).all()
    # The operators' day-ahead forecast beats last week's load on real CAL data.
    assert metrics.loc["EIA day-ahead (DF)", "MdAPE %"] < metrics.loc["seasonal naive (t-168 h)",
                                                                      "MdAPE %"]
    labels = {m.label: m.value for m in app.metric}
    assert labels["Dead letters"] == "1"
    assert labels["Snapshot published (UTC)"] != "live file"
    text = _texts(app)
    assert "Weather data by Open-Meteo.com (CC BY 4.0)" in text
    assert "NOAA NCEI Local Climatological Data" in text
    assert "Ruggles & Farnham" in text and "public domain" in text
    assert "No champion model for CAL yet" in text  # model card degrades without MLflow


def test_switching_region_and_range_recomputes(app: AppTest) -> None:
    before = app.table[0].value
    app.selectbox(key="region").set_value("TEN").run()
    assert not app.exception
    assert len(app.get("plotly_chart")) == 2  # TEN's weather: its three NOAA stations
    app.selectbox(key="region").set_value("SE").run()
    # SE has no station in the bundle: the panel says so instead of plotting.
    assert len(app.get("plotly_chart")) == 1
    assert "No weather for SE" in _texts(app)
    app.selectbox(key="region").set_value("TEN").run()
    after = app.table[0].value
    assert not after.equals(before)
    app.date_input(key="dates").set_value((date(2020, 3, 25), date(2020, 3, 27))).run()
    assert not app.exception
    # Three local days; TEN's DF has gaps, so at most 72 scored hours.
    assert 48 < app.table[0].value.loc["EIA day-ahead (DF)", "hours"] <= 72
