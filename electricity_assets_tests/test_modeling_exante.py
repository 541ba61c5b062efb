"""Ex-ante scoring and calibration: weather as known at issue time, on real bundled data."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from bench.lib.workspace import build_workspace
from electricity_assets import storage
from electricity_assets.features import (
    FORECAST_PREFIX,
    WEATHER_FEATURE_COLUMNS,
    model_frame,
    with_forecast_weather,
)
from electricity_assets.features.forecast_error import WeatherErrorModel, weather_error
from electricity_assets.modeling import backtest
from electricity_assets.modeling.training import TrainingConfig, model_inputs, train_region
from electricity_assets_tests.test_modeling_training import write_sample

FAST = TrainingConfig(min_train_hours=24 * 21, num_boost_round=300)


@pytest.fixture(scope="module")
def frame(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """CAL (Open-Meteo weather) and FLA (none), 2020-01-25 to 2020-04-02, with forecast weather."""
    root = tmp_path_factory.mktemp("modeling_exante")
    with duckdb.connect(str(root / "ws.duckdb")) as conn:
        start, end = build_workspace(conn, write_sample(root / "data"))
        observed = model_frame(conn, start, end, regions=["CAL", "FLA"])
        return with_forecast_weather(conn, observed)


def test_forecast_weather_columns_carry_the_simulated_error(frame: pd.DataFrame) -> None:
    cal, fla = frame[frame["region"] == "CAL"], frame[frame["region"] == "FLA"]
    error = (cal[FORECAST_PREFIX + "temperature_c"] - cal["temperature_c"]).dropna()
    assert len(error) > 24 * 50 and 1.5 < error.std() < 2.5
    # Lags of a day or more are observations at issue time.
    pd.testing.assert_series_equal(cal[FORECAST_PREFIX + "temp_lag_24h"], cal["temp_lag_24h"],
                                   check_names=False)
    assert fla[[FORECAST_PREFIX + c for c in WEATHER_FEATURE_COLUMNS]].isna().all().all()


def test_error_model_is_seeded_and_per_region() -> None:
    hours = pd.date_range("2020-01-01", periods=2000, freq="h", tz="UTC")
    series = pd.concat([pd.DataFrame({"region": r, "period_utc": hours}) for r in ("A", "B")])
    first, again = weather_error(series), weather_error(series)
    pd.testing.assert_frame_equal(first, again)
    alone = weather_error(series[series["region"] == "B"])
    pd.testing.assert_frame_equal(first[first["region"] == "B"].reset_index(drop=True), alone)
    other = weather_error(series, WeatherErrorModel(seed=1))
    assert not np.allclose(other["temperature_error_c"], first["temperature_error_c"])
    a = first[first["region"] == "A"]
    assert a["temperature_error_c"].autocorr(1) > 0.9  # a forecast errs for hours, not at random
    assert 0.4 < np.corrcoef(a["temperature_error_c"], a["dewpoint_error_c"])[0, 1] < 0.8


def test_interval_is_calibrated_on_weather_as_forecast(frame: pd.DataFrame) -> None:
    """Fitted on observations (same trees either way), a worse weather forecast widens the
    interval."""
    cal = frame[frame["region"] == "CAL"]
    observed = cal.drop(columns=[c for c in cal if c.startswith(FORECAST_PREFIX)])
    bad = cal.assign(**{FORECAST_PREFIX + "temperature_c": cal["temperature_c"] + 8 * np.sign(
        np.sin(np.arange(len(cal)) / 30))})
    on_observed = TrainingConfig(min_train_hours=24 * 21, num_boost_round=300,
                                 fit_on_forecast_weather=False)
    plain, forecast = train_region(observed, on_observed), train_region(bad, on_observed)
    inputs = model_inputs(observed, plain.feature_columns)
    np.testing.assert_array_equal(plain.booster.predict(inputs), forecast.booster.predict(inputs))
    assert (forecast.residual_high - forecast.residual_low
            > plain.residual_high - plain.residual_low)
    assert forecast.metrics["model"]["mdape"] != plain.metrics["model"]["mdape"]


def test_backtest_scores_ex_ante_with_ex_post_beside_it(frame: pd.DataFrame) -> None:
    result = backtest.run_backtest(frame, weeks=1, config=FAST)
    summary = result.summary.set_index("region")
    assert backtest.CSV_COLUMNS[:11] == [
        "region", "hours", "model_mdape", "model_mape", "model_mae", "df_mdape", "df_mape",
        "naive_mdape", "coverage_p10_p90", "window_start", "window_end"]  # today's columns
    assert backtest.CSV_COLUMNS[-1] == "model_mdape_expost"
    # FLA has no weather: ex-ante and ex-post are the same forecast.
    assert summary.loc["FLA", "model_mdape"] == summary.loc["FLA", "model_mdape_expost"]
    cal = result.hourly[result.hourly["region"] == "CAL"]
    assert (cal["forecast_mwh"] != cal["forecast_expost_mwh"]).mean() > 0.9
    assert summary.loc["CAL", "model_mdape"] != summary.loc["CAL", "model_mdape_expost"]


def test_an_older_backtest_table_gains_the_ex_post_column(tmp_path) -> None:
    with duckdb.connect(str(tmp_path / "old.duckdb")) as conn:
        conn.execute("CREATE TABLE forecast_backtest (run_id VARCHAR NOT NULL, region VARCHAR "
                      "NOT NULL, hours INTEGER NOT NULL, model_mdape DOUBLE, created_at "
                      "TIMESTAMPTZ NOT NULL, PRIMARY KEY (run_id, region))")
        storage.ensure_table(conn, "forecast_backtest")
        columns = [r[0] for r in conn.execute("DESCRIBE forecast_backtest").fetchall()]
    assert "model_mdape_expost" in columns and "coverage_p10_p90" in columns


def test_trees_fit_on_the_forecast_weather_when_the_frame_has_it(frame: pd.DataFrame) -> None:
    cal = frame[frame["region"] == "CAL"]
    observed = cal.drop(columns=[c for c in cal if c.startswith(FORECAST_PREFIX)])
    fitted, plain = train_region(cal, FAST), train_region(observed, FAST)
    inputs = model_inputs(observed, plain.feature_columns)
    assert not np.array_equal(fitted.booster.predict(inputs), plain.booster.predict(inputs))


def test_the_ar1_filter_is_the_recursion() -> None:
    """y[t] = x[t] + phi * y[t-1], across block boundaries (numpy blocks replace scipy's
    lfilter, whose import cost every Dagster process ~1.9 s)."""
    import numpy as np

    from electricity_assets.features.forecast_error import AR1_BLOCK, ar1_filter

    x = np.random.default_rng(3).standard_normal(3 * AR1_BLOCK + 17)
    expected = np.empty_like(x)
    previous = 0.0
    for t, value in enumerate(x):
        previous = value + 0.95 * previous
        expected[t] = previous
    np.testing.assert_allclose(ar1_filter(x, 0.95), expected, rtol=0, atol=1e-12)
