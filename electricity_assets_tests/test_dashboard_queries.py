"""The dashboard's read side on a tmp DuckDB seeded with real bundled data (see dashboard_seed)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from dashboard import queries
from electricity_assets import serving
from electricity_assets.modeling import metrics
from electricity_assets_tests.dashboard_seed import FORECAST_START, SEED_END, seeded_database

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def seeded_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return seeded_database(tmp_path_factory.mktemp("seed"))


@pytest.fixture
def live_db(seeded_file: Path, isolated_home: Path) -> Path:
    """A private copy of the seeded database as this test's live DuckDB file."""
    live = isolated_home / "electricity.duckdb"
    shutil.copy(seeded_file, live)
    return live


def test_regions_come_from_the_data(live_db: Path) -> None:
    codes = queries.load_overview().regions
    # The bundle has 12 codes; CENT and NY are in the catalogue but not in the data.
    assert len(codes) == 12 and {"CAL", "US48", "TEN"} <= set(codes)
    assert "CENT" not in codes and "NY" not in codes


def test_demand_series_joins_actual_df_model_and_naive(live_db: Path) -> None:
    start, end = datetime(2020, 3, 20, tzinfo=UTC), datetime(2020, 3, 22, tzinfo=UTC)
    series = queries.load_window("CAL", start, end).series
    assert len(series) == 48
    assert series["period_utc"].min() == pd.Timestamp(start)
    with duckdb.connect(str(live_db), read_only=True) as conn:
        raw = conn.execute(
            "SELECT period_utc, type, value_mwh FROM raw_demand WHERE region = 'CAL' "
            "AND period_utc IN (?, ?)",
            [datetime(2020, 3, 21, 12, tzinfo=UTC), datetime(2020, 3, 14, 12, tzinfo=UTC)]).df()
    row = series.set_index("period_utc").loc[pd.Timestamp("2020-03-21T12:00Z")]
    by_key = raw.set_index(["period_utc", "type"])["value_mwh"]
    assert row["actual_mwh"] == by_key[(pd.Timestamp("2020-03-21T12:00Z"), "D")]
    assert row["eia_df_mwh"] == by_key[(pd.Timestamp("2020-03-21T12:00Z"), "DF")]
    assert row["naive_mwh"] == by_key[(pd.Timestamp("2020-03-14T12:00Z"), "D")]
    assert row["p10_mwh"] < row["forecast_mwh"] < row["p90_mwh"]


def test_error_metrics_skip_zero_actuals_and_missing_forecasts() -> None:
    series = pd.DataFrame({
        "actual_mwh": [100.0, 200.0, 0.0, 400.0],
        "forecast_mwh": [110.0, 180.0, 50.0, np.nan],
        "eia_df_mwh": [100.0, 200.0, 10.0, 300.0],
        "naive_mwh": [np.nan] * 4,
    })
    table = queries.error_metrics(series, common_hours=False).set_index("forecast")
    model = table.loc["model"]
    assert model["hours"] == 2
    assert model["MdAPE %"] == pytest.approx(10.0) and model["MAPE %"] == pytest.approx(10.0)
    assert model["MAE MWh"] == pytest.approx(15.0)
    df = table.loc["EIA day-ahead (DF)"]
    assert df["hours"] == 3 and df["MAE MWh"] == pytest.approx(100 / 3)
    assert table.loc["seasonal naive (t-168 h)", "hours"] == 0
    # Like for like: by default every forecast is scored on the model's hours only.
    common = queries.error_metrics(series).set_index("forecast")
    assert common.loc["EIA day-ahead (DF)", "hours"] == 2
    assert common.loc["EIA day-ahead (DF)", "MAE MWh"] == pytest.approx(0.0)


def test_df_error_on_real_data_equals_the_one_computed_from_the_raw_rows(live_db: Path) -> None:
    series = queries.load_window("CAL", FORECAST_START, SEED_END).series
    df = queries.error_metrics(series).set_index("forecast").loc["EIA day-ahead (DF)"]
    # The same figures straight from the stored rows, on the hours the model covers.
    with duckdb.connect(str(live_db), read_only=True) as conn:
        hours, mdape, mape, mae = conn.execute("""
            WITH d AS (SELECT period_utc, value_mwh FROM raw_demand
                       WHERE region = 'CAL' AND type = 'D' AND value_mwh > 0),
                 e AS (SELECT period_utc, value_mwh FROM raw_demand
                       WHERE region = 'CAL' AND type = 'DF')
            SELECT count(*), median(abs(e.value_mwh - d.value_mwh) / d.value_mwh * 100),
                   avg(abs(e.value_mwh - d.value_mwh) / d.value_mwh * 100),
                   avg(abs(e.value_mwh - d.value_mwh))
            FROM d JOIN e USING (period_utc)
            JOIN demand_forecasts f ON f.region = 'CAL' AND f.period_utc = d.period_utc
                 AND f.horizon_h = 24
            WHERE d.period_utc >= ? AND d.period_utc < ? AND f.forecast_mwh IS NOT NULL
        """, [FORECAST_START, SEED_END]).fetchone()
    assert hours > 300
    assert (df["hours"], df["MdAPE %"], df["MAPE %"], df["MAE MWh"]) == (
        hours, pytest.approx(mdape), pytest.approx(mape), pytest.approx(mae))


def test_dashboard_figures_are_modeling_metrics_on_the_same_hours(live_db: Path) -> None:
    """The region page and the overview score with `modeling.metrics`, the rule training, the
    registry and the backtests use: on the same hours they show the same figures."""
    series = queries.load_window("CAL", FORECAST_START, SEED_END).series
    hours = series[series["actual_mwh"] > 0].dropna(
        subset=["forecast_mwh", "eia_df_mwh", "naive_mwh"])
    expected = metrics.compare(hours.rename(columns={"actual_mwh": "demand_mwh",
                                                     "eia_df_mwh": "df_mwh"}))
    table = queries.error_metrics(hours).set_index("forecast")
    for who, label in (("model", "model"), ("df", "EIA day-ahead (DF)"),
                       ("naive", "seasonal naive (t-168 h)")):
        row = table.loc[label]
        assert row["hours"] == expected[who]["hours"] > 300
        assert (row["MdAPE %"], row["MAPE %"], row["MAE MWh"]) == (
            expected[who]["mdape"], expected[who]["mape"], expected[who]["mae"])

    with serving.read_connection() as conn:
        overview = queries.overview_table(conn).set_index("region").loc["CAL"]
    window = queries.load_window("CAL", overview["window_start"].to_pydatetime(),
                                 overview["window_end"].to_pydatetime()).series
    scored = window[(window["actual_mwh"] > 0) & window["forecast_mwh"].notna()]
    assert overview["model_hours"] == len(scored) > 150
    for who, column in (("model", "forecast_mwh"), ("df", "eia_df_mwh"), ("naive", "naive_mwh")):
        assert overview[f"{who}_mdape"] == metrics.error_metrics(
            scored["actual_mwh"], scored[column])["mdape"]
    assert overview["coverage_p10_p90"] == metrics.interval_coverage(
        scored["actual_mwh"], scored["p10_mwh"], scored["p90_mwh"])


def test_freshness_is_judged_against_the_given_clock(live_db: Path) -> None:
    overview = queries.load_overview(now=datetime(2020, 4, 2, 5, tzinfo=UTC))
    fresh = overview.freshness
    cal = fresh[(fresh.region == "CAL") & (fresh.dataset == "demand")].iloc[0]
    assert cal["latest_hour"] == pd.Timestamp("2020-04-01T23:00Z")
    assert cal["lag_hours"] == 6.0
    assert set(fresh[fresh.dataset == "weather"].region) == {
        "CAL", "CAR", "CENT", "MIDA", "MIDW", "NW", "TEN", "TEX"}  # where stations lie
    assert overview.dead_letters == 1


def test_reads_prefer_the_published_snapshot(live_db: Path) -> None:
    published = serving.publish_snapshot()
    assert published["rows"]["raw_demand"] > 0 and serving.serving_path().exists()
    # Once published, the live file can change (or be locked) without the dashboard seeing it.
    with duckdb.connect(str(live_db)) as conn:
        conn.execute("DELETE FROM raw_demand WHERE region = 'CAL'")
        overview = queries.load_overview()
        assert "CAL" in overview.regions and overview.published_at is not None
    serving.publish_snapshot()
    assert "CAL" not in queries.load_overview().regions


def test_champion_card_degrades_without_a_registry(live_db: Path, isolated_home: Path) -> None:
    serving.publish_snapshot()
    card = queries.load_region_span("CAL").card
    assert not card.available and "No champion model for CAL" in card.message
    assert not (isolated_home / "mlflow").exists()  # publishing must not create a registry


WRITER = textwrap.dedent("""
    import sys
    from datetime import UTC, datetime, timedelta
    from electricity_assets.datasets import DEMAND
    from electricity_assets.resources import ElectricityDuckDB
    from electricity_assets.settings import PACKAGE_DATA_DIR
    from electricity_assets.sources.bundled import read_bundled
    from electricity_assets.storage import replace_window
    import pandas as pd

    resource = ElectricityDuckDB(database=sys.argv[1])
    start, hours = datetime(2020, 3, 1, tzinfo=UTC), 3
    rows = read_bundled(DEMAND, start, start + timedelta(days=8), PACKAGE_DATA_DIR)
    rows = rows.assign(source="bundled", ingested_at=pd.Timestamp.now(tz="UTC"))
    print("ready", flush=True)
    for step in range(8 * 24 // hours):  # an 8-day backfill, one window per connection
        lo = start + timedelta(hours=step * hours)
        hi = lo + timedelta(hours=hours)
        window = rows[(rows.period_utc >= lo) & (rows.period_utc < hi)]
        with resource.get_connection() as conn:
            replace_window(conn, "raw_demand", window, lo, hi)
    print("writer done", flush=True)
""")


@pytest.mark.integration  # a backfill writer in a second process
def test_dashboard_reads_while_a_backfill_writes(live_db: Path) -> None:
    """Reader + snapshot publisher in this process, a backfill writer in another: none fails."""
    serving.publish_snapshot()
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(live_db)], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
    reads = publishes = 0
    deadline = time.monotonic() + 120
    while writer.poll() is None and time.monotonic() < deadline:
        view = queries.load_window("TEX", FORECAST_START, SEED_END)
        assert len(view.series) > 300 and len(view.weather) > 300
        reads += 1
        if reads % 5 == 0:  # what the run-status sensor does after each run
            serving.publish_snapshot()
            publishes += 1
    out, err = writer.communicate(timeout=60)
    assert writer.returncode == 0, err[-2000:]
    assert "writer done" in out
    print(f"{reads} reads, {publishes} snapshots during the backfill")
    assert reads >= 5 and publishes >= 1


def test_champion_card_reads_version_metrics_and_importance_from_mlflow(
        live_db: Path, isolated_home: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mlflow
    from mlflow import MlflowClient

    from electricity_assets import settings

    uri = settings.mlflow_tracking_uri()
    (isolated_home / "mlflow").mkdir()
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment(
        "card", artifact_location=(isolated_home / "artifacts").as_uri())
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run(experiment_id=experiment) as run:
        mlflow.log_metrics({"val_model_mdape": 2.5, "val_df_mdape": 1.9})
        fig, ax = plt.subplots()
        ax.barh(["lag_24h", "local_hour"], [70, 30])
        mlflow.log_figure(fig, "feature_importance.png")
        plt.close(fig)
    client.create_registered_model("demand-CAL")
    version = client.create_model_version("demand-CAL", f"{run.info.artifact_uri}/model",
                                          run_id=run.info.run_id)
    client.set_registered_model_alias("demand-CAL", "champion", version.version)

    # Cards are read from MLflow when the snapshot is published, not while a page loads.
    assert serving.publish_snapshot()["rows"]["model_cards"] == 1
    card = queries.load_region_span("CAL").card
    assert card.available and card.version == "1" and card.run_id == run.info.run_id
    assert card.metrics == {"val_df_mdape": 1.9, "val_model_mdape": 2.5}
    assert card.importance_png is not None and card.importance_png[:4] == b"\x89PNG"
    assert not queries.load_region_span("TEX").card.available  # no model: a message, no error


def _recent_by_pandas(region: str, start, end) -> pd.DataFrame:
    """The same scores the slow way: the region page's hourly series and error_metrics."""
    series = queries.load_window(region, start.to_pydatetime(), end.to_pydatetime()).series
    return queries.error_metrics(series).set_index("forecast")


def test_overview_scores_match_the_region_pages_metrics(live_db: Path) -> None:
    with serving.read_connection() as conn:
        table = queries.overview_table(conn, now=datetime(2020, 4, 2, 3, tzinfo=UTC))
    assert len(table) == 12 and table["region"].is_unique
    for region in ("CAL", "TEN", "US48"):
        row = table.set_index("region").loc[region]
        # The seed's forecasts run to 2020-04-01 23:00: the 7 days end right after it.
        assert row["window_end"] == pd.Timestamp("2020-04-02T00:00Z")
        assert row["window_start"] == pd.Timestamp("2020-03-26T00:00Z")
        expected = _recent_by_pandas(region, row["window_start"], row["window_end"])
        assert row["model_hours"] == expected.loc["model", "hours"] > 150
        assert row["model_mdape"] == pytest.approx(expected.loc["model", "MdAPE %"])
        assert row["df_mdape"] == pytest.approx(expected.loc["EIA day-ahead (DF)", "MdAPE %"])
        assert row["naive_mdape"] == pytest.approx(
            expected.loc["seasonal naive (t-168 h)", "MdAPE %"])
        best = min(("model", "model_mdape"), ("EIA DF", "df_mdape"),
                   ("seasonal naive", "naive_mdape"), key=lambda w: row[w[1]])[0]
        assert row["winner"] == best
        assert row["demand_lag_hours"] == 4.0
    # The fixture's P10/P90 (+-4 %) of a naive forecast cover far fewer hours than 80 %.
    assert table["coverage_p10_p90"].between(0, 100).all()


def test_overview_without_forecasts_scores_df_and_naive_only(live_db: Path) -> None:
    with duckdb.connect(str(live_db)) as conn:
        conn.execute("DROP TABLE demand_forecasts")
        conn.execute("DROP TABLE forecast_backtest")
    with serving.read_connection() as conn:
        table = queries.overview_table(conn)
        assert queries.recent_series(conn)["forecast_mwh"].isna().all()
        assert queries.forecast_horizon(conn, "CAL").empty
    assert (table["model_hours"] == 0).all() and table["model_mdape"].isna().all()
    assert table["df_mdape"].notna().all() and table["bt_model_mdape"].isna().all()
    assert table["bt_winner"].isna().all()
    assert table["winner"].isin(["EIA DF", "seasonal naive"]).all()
    # Without forecasts the window is the last 7 days of actuals.
    assert (table["window_end"] == pd.Timestamp("2020-04-02T00:00Z")).all()


def test_latest_backtest_is_each_regions_newest_run(live_db: Path) -> None:
    with duckdb.connect(str(live_db)) as conn:
        conn.execute("""INSERT INTO forecast_backtest (run_id, region, hours, model_mdape,
                        df_mdape, naive_mdape, coverage_p10_p90, created_at)
            VALUES ('newer', 'CAL', 504, 1.1, 1.6, 2.9, 80.5, now() + INTERVAL 1 DAY),
                   ('empty', 'TEX', 0, NULL, NULL, NULL, NULL, now() + INTERVAL 1 DAY)""")
    with serving.read_connection() as conn:
        latest = queries.latest_backtests(conn).set_index("region")
        table = queries.overview_table(conn).set_index("region")
    assert latest.loc["CAL", "run_id"] == "newer" and latest.loc["CAL", "hours"] == 504
    assert latest.loc["TEX", "run_id"] == "test-fixture-run"  # a run with no hours is skipped
    assert table.loc["CAL", "bt_model_mdape"] == 1.1 and table.loc["CAL", "bt_winner"] == "model"
    assert table.loc["TEX", "bt_winner"] == "EIA DF"


def test_small_multiples_and_horizon_are_the_newest_hours(live_db: Path) -> None:
    with serving.read_connection() as conn:
        recent = queries.recent_series(conn, days=3)
        horizon = queries.forecast_horizon(conn, "CAL")
    assert recent.groupby("region").size().eq(72).all() and recent["region"].nunique() == 12
    assert recent["period_utc"].max() == pd.Timestamp("2020-04-01T23:00Z")
    assert len(horizon) == 24 and horizon["period_utc"].is_monotonic_increasing
    # The 24 h-ahead slice of the newest issue (2020-04-02 00:00) reaches a day past the data.
    assert horizon["period_utc"].iloc[-1] == pd.Timestamp("2020-04-02T23:00Z")
    assert (horizon["p10_mwh"] < horizon["forecast_mwh"]).all()
    assert (horizon["forecast_mwh"] < horizon["p90_mwh"]).all()
    assert horizon["actual_mwh"].isna().all()  # none of those hours has happened yet


def test_long_ranges_are_drawn_from_daily_means_computed_in_duckdb(live_db: Path) -> None:
    start, end = datetime(2020, 2, 16, 8, tzinfo=UTC), datetime(2020, 4, 1, 7, tzinfo=UTC)
    view = queries.load_window("CAL", start, end, "America/Los_Angeles", max_hourly_points=500)
    assert view.daily and len(view.series) > 1000 and len(view.chart) == 45
    local = view.series.set_index(view.series["period_utc"].dt.tz_convert("America/Los_Angeles"))
    by_day = local["actual_mwh"].groupby(local.index.date).mean()
    chart = view.chart.set_index(view.chart["period_utc"].dt.tz_convert("America/Los_Angeles"))
    assert chart["actual_mwh"].to_numpy() == pytest.approx(by_day.to_numpy())
    assert chart.index[0].hour == 0  # each point sits at local midnight
    short = queries.load_window("CAL", FORECAST_START, SEED_END, "America/Los_Angeles")
    assert not short.daily and short.chart is short.series


def test_validation_metrics_get_readable_labels_with_units() -> None:
    metrics = {"val_model_mdape": 2.5, "val_df_mdape": 1.9, "val_naive_mdape": 4.0,
               "val_model_mae": 700.0, "val_model_coverage_p10_p90": 78.4, "val_hours": 336.0,
               "best_iteration": 412.0}
    table = queries.validation_table(metrics)
    assert list(table.columns) == ["model", "EIA day-ahead (DF)", "seasonal naive (t-168 h)"]
    assert table.loc["median APE (%)", "EIA day-ahead (DF)"] == 1.9
    assert table.loc["MAE (MWh)", "model"] == 700.0
    assert np.isnan(table.loc["MAE (MWh)", "EIA day-ahead (DF)"])  # not logged: blank, not 0
    facts = queries.validation_facts(metrics)
    assert facts["P10-P90 coverage on validation (%, nominal 80)"] == "78.4"
    assert facts["validation hours"] == "336"
    assert "weather inputs" not in facts  # an older run without the figures
    with_weather = queries.validation_facts({**metrics, "weather_inputs": 42.0,
                                             "weather_gain_pct": 31.25})
    assert with_weather["weather inputs"] == "42 features, 31.2 % of the trees' gain"
    without = queries.validation_facts({**metrics, "weather_inputs": 0.0,
                                        "weather_gain_pct": 0.0})
    assert without["weather inputs"] == "none (no weather for this region)"
    assert not any(k.startswith("val_") for k in facts) and "val_" not in str(table.index)


def test_overview_scores_a_partial_forecast_on_the_models_hours_only(live_db: Path) -> None:
    """While forecasts cover only part of the 7 days, DF and naive are scored on those hours."""
    with duckdb.connect(str(live_db)) as conn:
        conn.execute("DELETE FROM demand_forecasts WHERE region = 'CAL' "
                     "AND period_utc < '2020-03-31T00:00Z' AND horizon_h = 24")
    with serving.read_connection() as conn:
        row = queries.overview_table(conn).set_index("region").loc["CAL"]
    assert row["model_hours"] == 48
    expected = _recent_by_pandas("CAL", row["window_start"], row["window_end"])
    assert expected.loc["EIA day-ahead (DF)", "hours"] == 48
    assert row["df_mdape"] == pytest.approx(expected.loc["EIA day-ahead (DF)", "MdAPE %"])
    assert row["naive_mdape"] == pytest.approx(expected.loc["seasonal naive (t-168 h)", "MdAPE %"])


def test_csv_downloads_carry_the_pages_numbers(live_db: Path) -> None:
    import io

    view = queries.load_window("CAL", datetime(2020, 3, 30, 7, tzinfo=UTC),
                               datetime(2020, 3, 31, 7, tzinfo=UTC), "America/Los_Angeles")
    hourly = pd.read_csv(io.StringIO(queries.forecasts_csv(view.series,
                                                           "America/Los_Angeles")))
    assert len(hourly) == 24 and hourly["hour_ending_local"].iloc[0] == "2020-03-30 00:00"
    assert {"actual_mwh", "eia_df_mwh", "naive_mwh", "forecast_mwh", "p10_mwh",
            "p90_mwh"} <= set(hourly.columns)
    assert hourly["forecast_mwh"].to_numpy() == pytest.approx(
        view.series["forecast_mwh"].to_numpy())
    metrics = queries.error_metrics(view.series)
    table = pd.read_csv(io.StringIO(queries.metrics_csv(metrics, view.backtest)))
    assert table["scope"].tolist() == ["selected range"] * 3 + ["backtest"]
    assert table.loc[0, "MdAPE %"] == pytest.approx(metrics.loc[0, "MdAPE %"])
    assert table.loc[3, "model_mdape"] == 3.1  # the fixture backtest row


def test_weather_panel_names_the_stations_and_says_when_they_are_borrowed() -> None:
    assert "Dallas-Fort Worth Intl" in queries.weather_provenance("TEX")
    assert "no station of its own" not in queries.weather_provenance("TEX")
    se = queries.weather_provenance("SE")
    assert "no station of its own" in se and "Greenville-Spartanburg" in se
