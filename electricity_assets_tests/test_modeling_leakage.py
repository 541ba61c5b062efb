"""Guards against leakage in training and backtest, on a few weeks of real bundled data.

Each test changes data a model must not have learned from (validation targets, the targets or the
weather of the hours a backtest scores) and asserts that what the model learned does not move.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from bench.lib.workspace import build_workspace
from electricity_assets import settings
from electricity_assets.features import WEATHER_FEATURE_COLUMNS, model_frame
from electricity_assets.features.weather import Z_COLUMNS
from electricity_assets.modeling import backtest
from electricity_assets.modeling.training import TrainingConfig, model_inputs, train_region
from electricity_assets_tests.test_modeling_training import write_sample

FAST = TrainingConfig(min_train_hours=24 * 21, num_boost_round=300)
FORECAST_COLUMNS = ["forecast_mwh", "p10_mwh", "p90_mwh"]


@pytest.fixture(scope="module")
def cal(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """CAL's model frame, 2020-01-25 to 2020-04-02 (weather included)."""
    root = tmp_path_factory.mktemp("modeling_leakage")
    with duckdb.connect(str(root / "ws.duckdb")) as conn:
        start, end = build_workspace(conn, write_sample(root / "data"))
        frame = model_frame(conn, start, end, regions=["CAL"])
    return frame.reset_index(drop=True)


def _validation_mask(rows: pd.DataFrame, config: TrainingConfig) -> pd.Series:
    last = rows.loc[rows["demand_mwh"].notna(), "period_utc"].max()
    return rows["period_utc"] > last - pd.Timedelta(weeks=config.validation_weeks)


def test_trees_are_fitted_on_training_weeks_only(cal: pd.DataFrame) -> None:
    """Tripling the validation targets moves early stopping and the interval, never a tree of
    the early-stopped model that scores the validation hours (the refit, deployed afterwards,
    is meant to learn them)."""
    validation = _validation_mask(cal, FAST)
    tampered = cal.assign(demand_mwh=cal["demand_mwh"].where(~validation, cal["demand_mwh"] * 3))
    model, other = train_region(cal, FAST), train_region(tampered, FAST)
    inputs = model_inputs(cal, model.feature_columns)
    scoring, other_scoring = model.validation_booster, other.validation_booster
    shared = min(scoring.current_iteration(), other_scoring.current_iteration())
    assert shared >= 10  # early stopping kept enough trees to compare
    for trees in range(1, shared + 1):
        np.testing.assert_array_equal(scoring.predict(inputs, num_iteration=trees),
                                      other_scoring.predict(inputs, num_iteration=trees))
    assert other.residual_high > model.residual_high + 1  # the validation targets are used
    # The refit learns the validation weeks: the deployed forecasts move with them.
    deployed = model.booster.predict(inputs)
    assert np.abs(other.booster.predict(inputs) - deployed).max() > 0.1
    validation_only = model.validation_booster.predict(inputs, num_iteration=scoring.best_iteration)
    assert model.fit_end == model.validation_end > model.train_end
    assert not np.allclose(deployed, validation_only)


def test_conformal_interval_comes_from_validation_residuals(cal: pd.DataFrame) -> None:
    """Validation demand 15 % above anything the training weeks show: an interval fitted on
    validation residuals still covers 80 % of those hours; one fitted on training residuals
    would miss nearly all of them."""
    validation = _validation_mask(cal, FAST)
    shifted = cal.assign(demand_mwh=cal["demand_mwh"].where(~validation,
                                                             cal["demand_mwh"] * 1.15))
    model = train_region(shifted, FAST)
    assert 78 <= model.metrics["model"]["coverage_p10_p90"] <= 82
    assert model.residual_low > 0  # every plausible validation hour lies above the forecast


@pytest.mark.parametrize("tampered_week", [0, 1])
def test_backtest_forecasts_never_depend_on_the_targets_they_score(
        cal: pd.DataFrame, tampered_week: int) -> None:
    """A fold's week with targets tripled (no model could learn that from history) leaves that
    fold's forecasts, P10 and P90 exactly as they were; only later folds may learn from it."""
    reference = backtest.run_backtest(cal, weeks=2, config=FAST).hourly
    origins = sorted(reference["origin"].unique())
    scored = reference["origin"] == origins[tampered_week]
    week = cal["period_utc"].isin(reference.loc[scored, "period_utc"])
    tampered = cal.assign(demand_mwh=cal["demand_mwh"].where(~week, cal["demand_mwh"] * 3))
    result = backtest.run_backtest(tampered, weeks=2, config=FAST).hourly
    assert (result.loc[scored, "demand_mwh"] > reference.loc[scored, "demand_mwh"] * 2).all()
    upto = reference["origin"] <= origins[tampered_week]
    pd.testing.assert_frame_equal(result.loc[upto, FORECAST_COLUMNS],
                                  reference.loc[upto, FORECAST_COLUMNS])


def _write_cal(folder: Path, warm_from: str | None = None) -> Path:
    """CAL demand and weather 2020-01-01 to 2020-04-02; from `warm_from` on, 25 C warmer."""
    folder.mkdir(parents=True)
    eia = settings.PACKAGE_DATA_DIR / "eia930_hourly.csv.gz"
    weather = settings.PACKAGE_DATA_DIR / "weather_hourly.csv.gz"
    shift = (f"CASE WHEN period_utc >= '{warm_from}' THEN 25 ELSE 0 END" if warm_from else "0")
    with duckdb.connect() as conn:
        conn.execute(f"""COPY (
            SELECT period_utc, region, type, value_mwh FROM read_csv('{eia}', all_varchar = true)
            WHERE region = 'CAL' AND period_utc >= '2020-01-01' AND period_utc < '2020-04-02'
        ) TO '{folder / "eia930_hourly.csv.gz"}' (HEADER, COMPRESSION gzip)""")
        conn.execute(f"""COPY (
            SELECT region, period_utc, CAST(temperature_c AS DOUBLE) + {shift} AS temperature_c,
                   relative_humidity, wind_speed_kmh, precipitation_mm
            FROM read_csv('{weather}', all_varchar = true)
            WHERE region = 'CAL' AND period_utc >= '2020-01-01' AND period_utc < '2020-04-02'
        ) TO '{folder / "weather_hourly.csv.gz"}' (HEADER, COMPRESSION gzip)""")
    return folder


def _frame(folder: Path) -> pd.DataFrame:
    with duckdb.connect(str(folder / "ws.duckdb")) as conn:
        start, end = build_workspace(conn, folder)  # stores statistics at its default cut-off
        return model_frame(conn, start, end)


def test_backtest_weather_z_scores_never_fitted_on_scored_hours(tmp_path: Path) -> None:
    """An 11-week window (longer than the stored statistics' 8-week hold-out): the z-scores the
    first fold sees are the same whatever the weather of the hours it scores."""
    weeks = 11
    real = _frame(_write_cal(tmp_path / "real"))
    origin, history, rows = next(backtest.folds(real, weeks, 1))
    warm = _frame(_write_cal(tmp_path / "warm", f"{origin:%Y-%m-%dT%H:%M:%S}"))
    warm_origin, warm_history, warm_rows = next(backtest.folds(warm, weeks, 1))
    assert warm_origin == origin
    z_columns = list(Z_COLUMNS.values())
    assert set(z_columns) <= set(WEATHER_FEATURE_COLUMNS)
    assert history["temperature_z"].notna().any()  # statistics exist before the origin
    pd.testing.assert_frame_equal(history[z_columns], warm_history[z_columns])
    # The scored hours are normalised with those same statistics: 25 C warmer, same z shift.
    shift = (warm_rows["temperature_z"] - rows["temperature_z"]).dropna()
    assert len(shift) > 24 * 6
    std = history["temperature_c"].std()
    assert shift.to_numpy() == pytest.approx(np.full(len(shift), 25 / std))
