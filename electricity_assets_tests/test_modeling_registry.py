"""MLflow registry decisions, the trained_models / demand_forecasts assets and the benchmark CLI,
on a few weeks of real bundled data and a real (temporary, sqlite) MLflow store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from bench.lib.workspace import build_workspace
from electricity_assets.assets.forecasts import demand_forecasts
from electricity_assets.assets.models import model_asset_checks, trained_models
from electricity_assets.features import WEATHER_FEATURE_COLUMNS, model_frame
from electricity_assets.modeling.metrics import compare
from electricity_assets.modeling.registry import (
    CHALLENGER,
    CHAMPION,
    MlflowConfig,
    load_champion,
    load_version,
    log_and_register,
)
from electricity_assets.modeling.training import TrainingConfig, model_inputs, train_region
from electricity_assets.resources import ElectricityDuckDB, MLflowResource, SourceResource
from electricity_assets_tests.test_modeling_training import write_sample

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("modeling_registry")
    folder = write_sample(root / "data")
    db = root / "ws.duckdb"
    with duckdb.connect(str(db)) as conn:
        start, end = build_workspace(conn, folder)
        frame = model_frame(conn, start, end)
    return {"root": root, "folder": folder, "db": str(db), "frame": frame,
            "mlflow": MlflowConfig(f"sqlite:///{root / 'mlflow.db'}", str(root / "artifacts"))}


# The sample has ~7 weeks of features: two validation weeks leave enough to train on. Versions
# trained on the same hours without the refit: their trees never saw the validation weeks, so
# every validation hour is after both models' training data and counts.
SHORT = TrainingConfig(validation_weeks=2)
NO_REFIT = TrainingConfig(validation_weeks=2, refit=False)


def test_champion_only_moves_when_the_new_version_wins(workspace: dict) -> None:
    config: MlflowConfig = workspace["mlflow"]
    rows = workspace["frame"][workspace["frame"]["region"] == "FLA"]
    first = log_and_register(train_region(rows, NO_REFIT), config)
    assert (first.version, first.alias, first.previous_version) == ("1", CHAMPION, None)
    # Two boosting rounds: barely better than the starting constant, must not take over.
    weak_config = TrainingConfig(validation_weeks=2, num_boost_round=2, refit=False)
    weak = log_and_register(train_region(rows, weak_config), config)
    assert (weak.version, weak.alias, weak.previous_version) == ("2", CHALLENGER, "1")
    assert weak.previous_mdape == pytest.approx(first.mdape)  # champion re-scored, same hours
    assert weak.mdape > weak.previous_mdape
    assert load_champion("FLA", config)[0] == "1"

    client = MlflowClient(config.tracking_uri, config.tracking_uri)
    assert str(client.get_model_version_by_alias("demand-FLA", CHALLENGER).version) == "2"
    run = client.get_run(first.run_id)
    for key in ("val_model_mdape", "val_model_mae", "val_model_rmse", "val_model_mape",
                "val_df_mdape", "val_naive_mdape", "val_model_coverage_p10_p90"):
        assert key in run.data.metrics
    assert run.data.params["region"] == "FLA"
    # FLA in this sample has no weather: the card says so rather than showing a share.
    assert run.data.metrics["weather_inputs"] == 0 and run.data.metrics["weather_gain_pct"] == 0
    assert "feature_importance.png" in {a.path for a in client.list_artifacts(first.run_id)}
    info = mlflow.models.Model.load(mlflow.artifacts.download_artifacts(
        client.get_model_version_download_uri("demand-FLA", "1"), tracking_uri=config.tracking_uri))
    assert info.signature is not None and "lag_24h" in info.signature.inputs.input_names()
    assert "EIA_API_KEY" not in str(run.data.params)


def _own_store(tmp_path: Path) -> MlflowConfig:
    return MlflowConfig(f"sqlite:///{tmp_path / 'mlflow.db'}", str(tmp_path / "artifacts"))


def test_a_clearly_better_version_takes_the_champion_alias(workspace: dict,
                                                            tmp_path: Path) -> None:
    config = _own_store(tmp_path)
    rows = workspace["frame"][workspace["frame"]["region"] == "CAL"]
    # Learnt on demand inflated by 30 %: on the real validation hours it is ~30 % off.
    inflated = rows.assign(demand_mwh=rows["demand_mwh"] * 1.3)
    weak = log_and_register(train_region(inflated, NO_REFIT), config)
    assert weak.alias == CHAMPION  # the first version, however weak
    model = train_region(rows, NO_REFIT)
    better = log_and_register(model, config)
    assert better.previous_mdape > 20 > 5 > better.mdape  # the champion re-scored on real hours
    # CAL has weather: the share of the trees' gain that weather features carry is logged.
    metrics = MlflowClient(config.tracking_uri, config.tracking_uri).get_run(
        better.run_id).data.metrics
    weather = [c for c in model.feature_columns if c in WEATHER_FEATURE_COLUMNS]
    assert metrics["weather_inputs"] == len(weather) > 10
    assert 0 < metrics["weather_gain_pct"] < 100
    assert (better.version, better.alias, better.previous_version) == ("2", CHAMPION, "1")
    assert load_champion("CAL", config)[0] == "2"


def test_champion_and_new_version_are_scored_on_exactly_the_same_hours(
        workspace: dict, tmp_path: Path) -> None:
    """The same model registered twice must tie with itself, also when EIA's DF is missing for
    some validation hours (hours the new version's figure leaves out)."""
    config = _own_store(tmp_path)
    rows = workspace["frame"][workspace["frame"]["region"] == "FLA"]
    last = rows.loc[rows["demand_mwh"].notna(), "period_utc"].max()
    gap = rows["period_utc"].between(last - pd.Timedelta(days=3), last - pd.Timedelta(days=2))
    model = train_region(rows.assign(df_mwh=rows["df_mwh"].mask(gap)), NO_REFIT)
    assert model.metrics["model"]["hours"] < len(model.validation)  # some hours left out
    first = log_and_register(model, config)
    again = log_and_register(model, config)
    assert again.previous_mdape == again.mdape == first.mdape
    assert again.alias == CHALLENGER  # a tie does not take over


def test_a_refitted_champion_is_scored_only_after_its_training_data(
        workspace: dict, tmp_path: Path) -> None:
    """The champion, refitted through a week before the new version's data end, saw the first
    of the new version's two validation weeks: only the last week is compared."""
    config = _own_store(tmp_path)
    rows = workspace["frame"][workspace["frame"]["region"] == "CAL"]
    last = rows.loc[rows["demand_mwh"].notna(), "period_utc"].max()
    week_ago = last - pd.Timedelta(weeks=1)
    old = train_region(rows[rows["period_utc"] <= week_ago], SHORT)
    assert old.fit_end == old.validation_end  # refitted on its validation weeks
    first = log_and_register(old, config)
    new = train_region(rows, SHORT)
    assert new.train_end < old.fit_end  # the windows overlap
    second = log_and_register(new, config)
    after = new.validation[new.validation["period_utc"] >= pd.Timestamp(old.fit_end)]
    assert second.compared_hours == len(after) == 168
    champion = load_version(config, "demand-CAL", first.version)
    inputs = model_inputs(new.validation_features.loc[after.index], new.feature_columns)
    champion_mdape = compare(after.assign(
        forecast_mwh=champion.predict(inputs)["forecast_mwh"].to_numpy()))["model"]["mdape"]
    assert second.previous_mdape == pytest.approx(champion_mdape)
    assert second.mdape == pytest.approx(compare(after)["model"]["mdape"])
    # The champion's model again: no validation hour after its own data, so no claim to it.
    again = log_and_register(new if second.alias == CHAMPION else old, config)
    assert (again.compared_hours, again.alias) == (0, CHALLENGER)
    assert "no validation hour" in again.decision


def test_two_stores_in_one_process_never_see_each_other(
        workspace: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each registry call is bound to its own store: MLflow's process-wide URI (here pointing at a
    third store) is neither read nor changed, and a champion of one store is not the other's."""
    elsewhere = tmp_path / "global" / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{elsewhere}")
    mlflow.set_tracking_uri(f"sqlite:///{elsewhere}")
    try:
        a, b = _own_store(tmp_path / "a"), _own_store(tmp_path / "b")
        rows = workspace["frame"][workspace["frame"]["region"] == "FLA"]
        model = train_region(rows, NO_REFIT)
        inflated = train_region(rows.assign(demand_mwh=rows["demand_mwh"] * 1.3), NO_REFIT)
        assert log_and_register(model, a).version == "1"
        assert log_and_register(inflated, b).version == "1"  # b's first: a's v1 is not its own
        # Judged against a's champion (the same model: a tie), not b's (~30 % off: it would win).
        again = log_and_register(model, a)
        assert (again.alias, again.previous_mdape) == (CHALLENGER, again.mdape)
        assert mlflow.get_tracking_uri() == f"sqlite:///{elsewhere}"
        assert os.environ["MLFLOW_TRACKING_URI"] == f"sqlite:///{elsewhere}"
        assert not elsewhere.exists()  # nothing was logged to, or even opened in, the global store
        inputs = model_inputs(model.validation_features, model.feature_columns)
        forecast = {name: load_champion("FLA", store)[1].predict(inputs)["forecast_mwh"]
                    for name, store in (("a", a), ("b", b))}
        assert (forecast["b"] / forecast["a"]).median() > 1.2  # each store serves its own model
    finally:
        mlflow.set_tracking_uri(None)


def _asset_resources(workspace: dict, store: str) -> dict:
    """DuckDB of the workspace and an MLflow store of this test's own (named `store`)."""
    root = workspace["root"]
    return {
        "duckdb": ElectricityDuckDB(database=workspace["db"]),
        "mlflow": MLflowResource(tracking_uri=f"sqlite:///{root / f'{store}_mlflow.db'}",
                                 artifact_root=str(root / f"{store}_artifacts")),
        "source": SourceResource(mode="bundled", data_dir=str(workspace["folder"])),
    }


def test_assets_train_every_region_and_forecast_with_the_champion(workspace: dict) -> None:
    resources = _asset_resources(workspace, "assets")
    trained, forecasts = trained_models, demand_forecasts
    # Week of 2020-03-29 (Sunday): its cut-off, 2020-04-05, lies after the sample's last hour.
    result = dg.materialize([trained, *model_asset_checks], resources=resources,
                            partition_key="2020-03-29")
    assert result.success
    (check,) = result.get_asset_check_evaluations()
    assert check.metadata["models"].value == 2
    assert check.metadata["without_champion"].value == "none"
    metadata = result.asset_materializations_for_node("trained_models")[0].metadata
    assert metadata["regions_trained"].value == 2  # CAL and FLA
    assert "ZZZ" in metadata["regions_failed"].value  # too little data: that region only
    assert "demand-CAL" in metadata["mlflow_runs"].value
    # Issue 18: the multi-horizon family is trained in the same run, its metadata beside.
    assert metadata["horizons_regions_trained"].value == 2
    assert "demand-horizons-CAL" in metadata["horizons_mlflow_runs"].value
    assert "ZZZ" in metadata["horizons_regions_failed"].value

    tags = {"dagster/asset_partition_range_start": "2020-03-30-00:00",
            "dagster/asset_partition_range_end": "2020-03-30-23:00"}
    for _ in range(2):  # idempotent per window
        assert dg.materialize([forecasts], resources=resources, tags=tags).success
    with duckdb.connect(workspace["db"], read_only=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        rows = conn.execute("SELECT * FROM demand_forecasts ORDER BY ALL").df()
    # The issues of the window's hours whose anchor hour is in the sample (it ends 2020-03-30
    # 23:00; the last issue, at 2020-03-31 00:00, has all 48 hours too: weather from the source).
    issues = rows.groupby("region")["issue_utc"].nunique().to_dict()
    assert issues == {"CAL": 24, "FLA": 24}
    assert (rows.groupby(["region", "issue_utc"]).size() == 48).all()
    assert set(rows["model_name"]) == {"demand-horizons-CAL", "demand-horizons-FLA"}
    assert set(rows["model_version"]) == {"1"}
    assert (rows["period_utc"] - rows["issue_utc"]
            == pd.to_timedelta(rows["horizon_h"] - 1, unit="h")).all()
    assert (rows["p10_mwh"] <= rows["forecast_mwh"]).all()
    assert (rows["forecast_mwh"] <= rows["p90_mwh"]).all()
    assert rows["issue_utc"].min() == pd.Timestamp("2020-03-30T01:00Z")


def test_a_week_partition_trains_only_on_data_before_its_end(workspace: dict) -> None:
    resources = _asset_resources(workspace, "weekly")
    trained = trained_models
    result = dg.materialize([trained], resources=resources, partition_key="2020-03-15",
                            run_config={"ops": {"trained_models": {"config": {
                                "regions": ["CAL"]}}}})
    metadata = result.asset_materializations_for_node("trained_models")[0].metadata
    assert metadata["data_end"].value == "2020-03-22T00:00:00+00:00"  # the week's end
    uri = resources["mlflow"].tracking_uri
    client = MlflowClient(uri, uri)
    version = client.get_model_version_by_alias("demand-CAL", CHAMPION)
    validation_end = client.get_run(version.run_id).data.params["validation_end"]
    assert pd.Timestamp(validation_end) <= pd.Timestamp("2020-03-22T00:00Z")


@pytest.mark.integration  # the benchmark program, in a process of its own
def test_benchmark_runs_on_a_foreign_folder_without_touching_the_user_state(
        workspace: dict, tmp_path: Path) -> None:
    user_home = tmp_path / "user_home"
    out = tmp_path / "bt.csv"
    scratch = tmp_path / "scratch"  # the benchmark's temporary workspace lands here
    scratch.mkdir()
    env = {**os.environ, "ELECTRICITY_HOME": str(user_home), "TMPDIR": str(scratch)}
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "forecast_accuracy.py"), "--data-dir",
         str(workspace["folder"]), "--weeks", "1", "--csv", str(out)],
        env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "ZZZ: FAILED" in done.stdout
    table = pd.read_csv(out)
    assert list(table.columns) == ["region", "hours", "model_mdape", "model_mape", "model_mae",
                                   "df_mdape", "df_mape", "naive_mdape", "coverage_p10_p90",
                                   "window_start", "window_end",  # rows of several --end windows
                                   "model_mdape_expost"]  # issue 9: ex-ante first, ex-post added
    assert list(table["region"]) == ["CAL", "FLA"]
    assert table["window_end"].nunique() == 1
    assert (table["hours"] == 168).all()
    assert not user_home.exists()
    (workspace_dir,) = scratch.glob("electricity-backtest-*")
    assert (workspace_dir / "electricity.duckdb").exists()
