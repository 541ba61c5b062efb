"""Training, metrics and backtest on a few weeks of real bundled data (no MLflow here)."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from bench.lib.global_model import backtest_global
from bench.lib.workspace import build_workspace
from electricity_assets import settings
from electricity_assets.features import WEATHER_FEATURE_COLUMNS, model_frame
from electricity_assets.modeling import backtest
from electricity_assets.modeling.metrics import error_metrics, interval_coverage
from electricity_assets.modeling.training import (
    InsufficientDataError,
    TrainingConfig,
    predict_frame,
    train_region,
)

WINDOW = ("2020-01-25", "2020-04-02")


def write_sample(folder: Path, window: tuple[str, str] = WINDOW) -> Path:
    """CAL (with weather), FLA (without) and ZZZ (10 days of TEN, renamed: too little data).

    Cut from the bundled files once per process (0.65 s) and copied for each caller."""
    if window not in _SAMPLES:
        cut = Path(tempfile.mkdtemp(prefix="sample-"))
        atexit.register(shutil.rmtree, cut, True)
        _SAMPLES[window] = _cut_sample(cut, window)
    shutil.copytree(_SAMPLES[window], folder, dirs_exist_ok=True)
    return folder


_SAMPLES: dict[tuple[str, str], Path] = {}


def _cut_sample(folder: Path, window: tuple[str, str]) -> Path:
    eia = settings.PACKAGE_DATA_DIR / "eia930_hourly.csv.gz"
    weather = settings.PACKAGE_DATA_DIR / "weather_hourly.csv.gz"
    with duckdb.connect() as conn:
        conn.execute(f"""COPY (
            SELECT period_utc, region, type, value_mwh FROM read_csv('{eia}', all_varchar = true)
            WHERE region IN ('CAL', 'FLA') AND period_utc >= '{window[0]}'
                  AND period_utc < '{window[1]}'
            UNION ALL
            SELECT period_utc, 'ZZZ', type, value_mwh FROM read_csv('{eia}', all_varchar = true)
            WHERE region = 'TEN' AND period_utc >= '2020-03-20' AND period_utc < '{window[1]}'
        ) TO '{folder / "eia930_hourly.csv.gz"}' (HEADER, COMPRESSION gzip)""")
        conn.execute(f"""COPY (
            SELECT * FROM read_csv('{weather}', all_varchar = true)
            WHERE region = 'CAL' AND period_utc >= '{window[0]}' AND period_utc < '{window[1]}'
        ) TO '{folder / "weather_hourly.csv.gz"}' (HEADER, COMPRESSION gzip)""")
    return folder


@pytest.fixture(scope="module")
def frame(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    root = tmp_path_factory.mktemp("modeling_training")
    folder = write_sample(root / "data")
    with duckdb.connect(str(root / "ws.duckdb")) as conn:
        start, end = build_workspace(conn, folder)
        return model_frame(conn, start, end)


def test_error_metrics_hand_checked() -> None:
    actual = np.array([100.0, 200.0, 0.0, np.nan, 50.0])
    predicted = np.array([110.0, 190.0, 5.0, 10.0, np.nan])
    m = error_metrics(actual, predicted)  # zero and missing actuals/forecasts are excluded
    assert m == {"mae": 10.0, "rmse": 10.0, "mape": 7.5, "mdape": 7.5, "hours": 2}
    assert interval_coverage([10, 20, 30, 40], [9, 21, 25, np.nan], [11, 25, 30, 50]) == (
        pytest.approx(200 / 3))


def test_time_ordered_split_and_baselines_on_the_same_hours(frame: pd.DataFrame) -> None:
    model = train_region(frame[frame["region"] == "CAL"])
    # That no tree learns from these weeks is test_modeling_leakage's job.
    validation = model.validation
    assert validation["period_utc"].max() - validation["period_utc"].min() == pd.Timedelta(
        weeks=model.config.validation_weeks) - pd.Timedelta(hours=1)
    assert model.validation_end == frame.loc[frame["region"] == "CAL"].dropna(
        subset=["demand_mwh"])["period_utc"].max() + pd.Timedelta(hours=1)
    hours = {who: m["hours"] for who, m in model.metrics.items()}
    assert hours["model"] == hours["df"] == hours["naive"] > 24 * 10
    assert model.metrics["model"]["mdape"] < model.metrics["naive"]["mdape"]
    assert 50 <= model.metrics["model"]["coverage_p10_p90"] <= 100
    assert model.residual_low < 0 < model.residual_high
    assert "temperature_c" in model.feature_columns  # CAL has weather


def test_region_without_weather_gets_a_model_without_weather_features(
        frame: pd.DataFrame) -> None:
    model = train_region(frame[frame["region"] == "FLA"])
    assert not set(model.feature_columns) & set(WEATHER_FEATURE_COLUMNS)
    assert np.isfinite(model.metrics["model"]["mdape"])


def test_forecast_ignores_the_target_and_eia_forecast(frame: pd.DataFrame) -> None:
    rows = frame[frame["region"] == "CAL"]
    model = train_region(rows)
    args = (model.booster, model.feature_columns, model.residual_low, model.residual_high)
    tampered = rows.assign(demand_mwh=rows["demand_mwh"] * 3, df_mwh=1.0)
    pd.testing.assert_frame_equal(predict_frame(*args, rows, model.spread_typical),
                                  predict_frame(*args, tampered, model.spread_typical))
    out = predict_frame(*args, rows, model.spread_typical).dropna()
    assert (out["p10_mwh"] <= out["forecast_mwh"]).all()
    assert (out["forecast_mwh"] <= out["p90_mwh"]).all()


def test_interval_width_follows_the_weekly_spread_of_demand(frame: pd.DataFrame) -> None:
    """The conformal offsets are in units of last week's relative spread: hours whose demand
    swung twice as much get a band twice as wide (relative to the level); an hour without a
    known spread gets the validation weeks' typical one."""
    rows = frame[frame["region"] == "CAL"]
    model = train_region(rows)
    assert model.spread_typical is not None and 0 < model.spread_typical < 1
    args = (model.booster, model.feature_columns, model.residual_low, model.residual_high)
    sample = rows.dropna(subset=["lag_24h", "roll168_std", "roll168_mean"]).tail(48)
    factor = np.tile([1.0, 2.0], len(sample) // 2)  # every other hour swung twice as much
    swinging = sample.assign(roll168_std=sample["roll168_std"] * factor)
    unknown = sample.assign(roll168_std=np.nan)

    def relative_width(part: pd.DataFrame) -> np.ndarray:
        out = predict_frame(*args, part, model.spread_typical)
        return ((out["p90_mwh"] - out["p10_mwh"]) / part["lag_24h"]).to_numpy()

    np.testing.assert_allclose(relative_width(swinging), factor * relative_width(sample),
                               rtol=1e-9)
    np.testing.assert_allclose(relative_width(unknown), (model.residual_high - model.residual_low)
                               * model.spread_typical, rtol=1e-9)
    # Within the validation weeks the band still holds ~80 % of hours (split-conformal).
    assert 75 <= model.metrics["model"]["coverage_p10_p90"] <= 85
    # Off: plain ratio offsets, the same width for every hour.
    plain = train_region(rows, TrainingConfig(interval_spread=False))
    assert plain.spread_typical is None
    width = predict_frame(plain.booster, plain.feature_columns, plain.residual_low,
                          plain.residual_high, swinging)
    np.testing.assert_allclose(((width["p90_mwh"] - width["p10_mwh"]) / swinging["lag_24h"]),
                               plain.residual_high - plain.residual_low, rtol=1e-9)


def test_registered_model_keeps_its_interval_and_older_pickles_keep_theirs(
        frame: pd.DataFrame) -> None:
    """The pyfunc predicts the spread-scaled band; a version pickled before the spread existed
    (no attribute) still reads its offsets as plain ratio units."""
    import pickle

    from electricity_assets.modeling.pyfunc import DemandForecaster

    rows = frame[frame["region"] == "CAL"].tail(24 * 7)
    model = train_region(frame[frame["region"] == "CAL"])
    args = (model.booster, model.feature_columns, model.residual_low, model.residual_high)
    forecaster = pickle.loads(pickle.dumps(DemandForecaster.from_region_model(model)))
    pd.testing.assert_frame_equal(forecaster.predict(None, rows).set_axis(rows.index),
                                  predict_frame(*args, rows, model.spread_typical))
    old_state = {k: v for k, v in forecaster.__getstate__().items() if k != "spread_typical"}
    old = DemandForecaster.__new__(DemandForecaster)
    old.__dict__.update(old_state)
    pd.testing.assert_frame_equal(old.predict(None, rows).set_axis(rows.index),
                                  predict_frame(*args, rows))


def test_too_little_data_fails_that_region_only(frame: pd.DataFrame,
                                                duckdb_path: str) -> None:
    with pytest.raises(InsufficientDataError, match="region ZZZ: .* training"):
        train_region(frame[frame["region"] == "ZZZ"])
    result = backtest.run_backtest(frame[frame["region"] != "FLA"], weeks=1,
                                   config=TrainingConfig(min_train_hours=24 * 21))
    assert list(result.summary["region"]) == ["CAL"]
    assert "ZZZ" in result.failed
    row = result.summary.iloc[0]
    assert row["hours"] == 7 * 24
    assert np.isfinite(row[["model_mdape", "df_mdape", "naive_mdape", "coverage_p10_p90"]]
                       .astype(float)).all()
    assert (result.hourly["period_utc"] >= row["window_start"]).all()
    with duckdb.connect(duckdb_path) as conn:
        backtest.write_backtest(conn, result)
        backtest.write_backtest(conn, result)  # idempotent per run_id
        stored = conn.execute("SELECT region, hours, model_mdape FROM forecast_backtest").fetchall()
    assert stored == [("CAL", 168, pytest.approx(row["model_mdape"]))]
    assert "CAL" in backtest.format_table(result.summary, result.failed)


def test_global_model_backtests_every_region_it_was_trained_on(frame: pd.DataFrame) -> None:
    result = backtest_global(frame[frame["region"] != "ZZZ"], weeks=1,
                                      config=TrainingConfig(min_train_hours=24 * 21))
    assert list(result.summary["region"]) == ["CAL", "FLA"]
    assert (result.summary["hours"] == 168).all()
    assert result.summary["model_mdape"].between(0, 20).all()


def test_backtest_window_can_end_in_the_past_without_seeing_later_data(
        frame: pd.DataFrame) -> None:
    end = pd.Timestamp("2020-03-27", tz="UTC")
    cal = frame[frame["region"] == "CAL"]
    config = TrainingConfig(min_train_hours=24 * 21)
    past = backtest.run_backtest(cal, weeks=1, config=config, end=end)
    row = past.summary.iloc[0]
    assert row["window_start"] == end - pd.Timedelta(weeks=1)
    assert row["window_end"] == end
    assert past.hourly["period_utc"].between(end - pd.Timedelta(weeks=1), end,
                                             inclusive="left").all()
    # Data after the window changes nothing: the same window on a frame that stops there.
    alone = backtest.run_backtest(cal[cal["period_utc"] < end], weeks=1, config=config)
    assert alone.summary.iloc[0]["model_mdape"] == pytest.approx(row["model_mdape"])
    table = backtest.format_windows([past.summary, alone.summary])
    assert "[2020-03-20, 2020-03-27)" in table
    assert "mean of windows" in table


def test_both_backtests_refit_every_refit_weeks_up_to_the_end() -> None:
    start = pd.Timestamp("2020-03-01", tz="UTC")
    end = start + pd.Timedelta(weeks=3)
    assert list(backtest.fold_windows(start, end, 3, 2)) == [
        (start, start + pd.Timedelta(weeks=2)), (start + pd.Timedelta(weeks=2), end)]
    assert list(backtest.fold_windows(start, end, 3, 1))[-1] == (start + pd.Timedelta(weeks=2), end)


@pytest.mark.integration  # spawns worker processes
def test_regions_backtested_in_worker_processes_score_as_in_one(frame: pd.DataFrame) -> None:
    two = frame[frame["region"] != "ZZZ"]
    config = TrainingConfig(min_train_hours=24 * 21)
    alone = backtest.run_backtest(two, weeks=2, config=config)  # two weekly refits
    pooled = backtest.run_backtest(two, weeks=2, config=config, workers=2)
    pd.testing.assert_frame_equal(
        pooled.summary.drop(columns="run_id", errors="ignore").reset_index(drop=True),
        alone.summary.drop(columns="run_id", errors="ignore").reset_index(drop=True))
