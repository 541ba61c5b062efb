"""The forecast_backtest asset on real bundled data: it runs modeling.backtest and the dashboard
reads what it stored."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from bench.lib.workspace import build_workspace
from dashboard import queries
from electricity_assets import serving
from electricity_assets.assets.backtest import forecast_backtest
from electricity_assets.features import model_frame, with_forecast_weather
from electricity_assets.modeling import backtest
from electricity_assets.resources import ElectricityDuckDB
from electricity_assets_tests.test_modeling_training import write_sample


@pytest.fixture(scope="module")
def workspace_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("backtest_asset")
    db = root / "ws.duckdb"
    with duckdb.connect(str(db)) as conn:
        build_workspace(conn, write_sample(root / "data"))
    return db


def test_backtest_asset_stores_what_modeling_backtest_computes(
        workspace_db: Path, isolated_home: Path) -> None:
    live = isolated_home / "electricity.duckdb"
    shutil.copy(workspace_db, live)
    # One process and one refit per region: the pool and the weekly refits have tests of their own.
    config = {"ops": {"forecast_backtest": {"config": {"weeks": 2, "refit_weeks": 2,
                                                       "history_days": 0, "workers": 1}}}}
    result = dg.materialize([forecast_backtest], run_config=config,
                            resources={"duckdb": ElectricityDuckDB(database=str(live))})
    assert result.success
    meta = result.asset_materializations_for_node("forecast_backtest")[0].metadata
    with duckdb.connect(str(live)) as conn:
        stored = conn.execute("SELECT * FROM forecast_backtest ORDER BY region").df()
        # Ex-ante: the asset scores with weather as a day-ahead forecast would have it.
        frame = with_forecast_weather(conn, model_frame(
            conn, pd.Timestamp("2015-07-01", tz="UTC"), pd.Timestamp("2030-01-01", tz="UTC")))
    # CAL and FLA scored; ZZZ (10 days of data) is too short and reported, not stored.
    assert stored["region"].tolist() == ["CAL", "FLA"]
    assert "ZZZ" in meta["regions_failed"].value
    assert stored["run_id"].nunique() == 1 and meta["run_id"].value == stored["run_id"][0]
    assert (stored["hours"] > 300).all() and (stored["window_end"] - stored["window_start"]
                                              <= pd.Timedelta(weeks=2)).all()
    # The same numbers as calling modeling.backtest directly (LightGBM is deterministic here).
    direct = backtest.run_backtest(frame[frame["region"] != "ZZZ"], weeks=2,
                                   refit_weeks=2).summary
    assert stored["model_mdape"].to_numpy() == pytest.approx(direct["model_mdape"].to_numpy())
    assert stored["df_mdape"].to_numpy() == pytest.approx(direct["df_mdape"].to_numpy())
    # A second materialisation adds a run; the dashboard shows each region's newest.
    assert dg.materialize([forecast_backtest], run_config=config,
                          resources={"duckdb": ElectricityDuckDB(database=str(live))}).success
    serving.publish_snapshot()
    with serving.read_connection() as conn:
        runs = conn.execute("SELECT count(DISTINCT run_id) FROM forecast_backtest").fetchall()
        latest = queries.latest_backtests(conn)
    assert runs == [(2,)] and latest["region"].tolist() == ["CAL", "FLA"]
    assert latest["created_at"].min() > stored["created_at"].max()
