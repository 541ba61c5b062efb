"""demand_forecasts: every region's 48-hour path per issue hour, from what was known at the issue;
one region's missing input or broken model is that region's alone. Real bundled rows (CAL with
weather, FLA without, ZZZ without a model), a real DuckDB file, a real (sqlite) MLflow store and
`dagster.materialize` of the real asset."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from bench.lib.workspace import build_workspace
from electricity_assets.assets.forecasts import demand_forecasts
from electricity_assets.datasets import WEATHER
from electricity_assets.modeling import champion_cache, horizons, issuing
from electricity_assets.modeling.registry import MlflowConfig
from electricity_assets.resources import ElectricityDuckDB, MLflowResource, SourceResource
from electricity_assets.sources.select import SourceConfig, load_window
from electricity_assets_tests.test_modeling_training import write_sample

ISSUED = datetime(2020, 3, 30, 0, 0, tzinfo=UTC)  # the newest issue: data up to 29 Mar 23:00
WINDOW = ("2020-03-29-21:00", "2020-03-29-23:00")  # partitions: issues 22:00, 23:00, 00:00


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A database as the pipeline has it at ISSUED (raw rows before it only) and horizon
    champions for CAL and FLA trained on hours before the window."""
    root = tmp_path_factory.mktemp("issuing")
    folder = write_sample(root / "data")
    db = root / "issued.duckdb"
    config = MlflowConfig(f"sqlite:///{root / 'mlflow.db'}", str(root / "artifacts"))
    with duckdb.connect(str(db)) as conn:
        build_workspace(conn, folder)
        for table in ("raw_demand", "raw_weather"):
            conn.execute(f"DELETE FROM {table} WHERE period_utc >= ?", [ISSUED])
        report = horizons.train_and_register_horizons(
            conn, ISSUED - timedelta(days=2), config, regions=["CAL", "FLA"])
    assert {r.region for r in report.registrations} == {"CAL", "FLA"}
    return {"root": root, "folder": folder, "db": db, "mlflow": config}


def _outlook(folder: Path):
    def outlook(start: datetime, end: datetime) -> pd.DataFrame:
        return load_window(WEATHER, start, end, SourceConfig("bundled", folder)).rows
    return outlook


def _served(world: dict) -> dict[str, champion_cache.Champion]:
    registry = issuing.MlflowChampions(lambda: world["mlflow"])
    champions, _ = champion_cache.resolve(["CAL", "FLA"], registry, world["root"] / "served")
    return champions


def _issue(db: Path, world: dict, issues=(ISSUED,), **kwargs) -> issuing.IssueBatch:
    return issuing.forecast_issues(
        lambda: duckdb.connect(str(db)), list(issues), kwargs.pop("champions", _served(world)),
        kwargs.pop("model_skips", {}), kwargs.pop("outlook", _outlook(world["folder"])),
        kwargs.pop("simulate_error", True))


def test_each_issue_forecasts_the_48_hours_after_its_anchor(world: dict) -> None:
    issues = [ISSUED - timedelta(hours=2), ISSUED]
    batch = _issue(world["db"], world, issues)
    rows = batch.rows
    assert list(rows.columns) == storage_columns()
    for region, label in (("CAL", issuing.SIMULATED), ("FLA", issuing.NO_WEATHER)):
        for issue in issues:
            mine = rows[(rows["region"] == region) & (rows["issue_utc"] == issue)]
            assert list(mine["horizon_h"]) == list(range(1, 49))
            assert list(mine["period_utc"]) == list(pd.date_range(issue, periods=48, freq="h"))
            assert (mine["data_until_utc"] == issue - timedelta(hours=1)).all()
            assert set(mine["weather_input"]) == {label}
    assert ((rows["p10_mwh"] <= rows["forecast_mwh"])
            & (rows["forecast_mwh"] <= rows["p90_mwh"])).all()
    skipped = batch.skipped.set_index(["region", "issue_utc"])["reason"]
    assert set(skipped.index) == {("ZZZ", i) for i in issues}
    assert "no model registered" in skipped[("ZZZ", ISSUED)]


def storage_columns() -> list[str]:
    from electricity_assets import storage

    return storage.DEMAND_FORECASTS.column_names


def test_future_rows_in_the_database_change_nothing(world: dict, tmp_path: Path) -> None:
    """Rows at or after the issue (a replay ahead of the clock) must not reach its inputs:
    demand 50 % higher and weather 10 C hotter than what really happened."""
    before = _issue(world["db"], world).rows
    db = tmp_path / "with_future.duckdb"
    shutil.copy(world["db"], db)
    folder = world["folder"]
    with duckdb.connect(str(db)) as conn:
        conn.execute(f"""INSERT INTO raw_demand
                (region, period_utc, type, value_mwh, source, ingested_at)
            SELECT region, CAST(period_utc AS TIMESTAMPTZ), type, value_mwh * 1.5, 'future',
                   now()
            FROM read_csv('{folder / "eia930_hourly.csv.gz"}')
            WHERE CAST(period_utc AS TIMESTAMPTZ) >= ? AND value_mwh IS NOT NULL""", [ISSUED])
        future = load_window(WEATHER, ISSUED, ISSUED + timedelta(days=2),
                             SourceConfig("bundled", folder)).rows
        future = future.assign(temperature_c=future["temperature_c"] + 10,
                               ingested_at=pd.Timestamp.now("UTC"))
        conn.register("future_weather", future)
        conn.execute("INSERT INTO raw_weather BY NAME SELECT * FROM future_weather")
    after = _issue(db, world).rows
    columns = ["region", "issue_utc", "horizon_h", "forecast_mwh", "p10_mwh", "p90_mwh"]
    pd.testing.assert_frame_equal(before[columns], after[columns])


def test_a_missing_anchor_hour_skips_that_region_and_issue_with_the_reason(
        world: dict, tmp_path: Path) -> None:
    db = tmp_path / "late.duckdb"
    shutil.copy(world["db"], db)
    with duckdb.connect(str(db)) as conn:  # FLA's hour before the newest issue never came
        conn.execute("DELETE FROM raw_demand WHERE region = 'FLA' AND period_utc = ?",
                     [ISSUED - timedelta(hours=1)])
    batch = _issue(db, world, [ISSUED - timedelta(hours=1), ISSUED])
    fla = batch.rows[batch.rows["region"] == "FLA"]
    assert set(fla["issue_utc"]) == {pd.Timestamp(ISSUED - timedelta(hours=1))}
    reason = batch.skipped.set_index(["region", "issue_utc"])["reason"][("FLA", ISSUED)]
    assert reason.startswith("the anchor hour 2020-03-29 23:00 UTC is missing")
    assert len(batch.rows[(batch.rows["region"] == "CAL")]) == 96  # CAL is not held back


def test_without_a_weather_outlook_a_weather_model_loses_its_hours_with_the_reason(
        world: dict) -> None:
    def outage(start: datetime, end: datetime) -> pd.DataFrame:
        raise ConnectionError("Open-Meteo unreachable")

    batch = _issue(world["db"], world, outlook=outage)
    assert set(batch.rows["region"]) == {"FLA"}  # its model uses no weather
    reason = batch.skipped.set_index("region")["reason"]["CAL"]
    assert "had no weather forecast" in reason and "Open-Meteo unreachable" in reason


def _resources(world: dict, db: Path) -> dict:
    return {"duckdb": ElectricityDuckDB(database=str(db)),
            "mlflow": MLflowResource(tracking_uri=world["mlflow"].tracking_uri,
                                     artifact_root=world["mlflow"].artifact_root),
            "source": SourceResource(mode="bundled", data_dir=str(world["folder"]))}


def _table(db: Path, table: str = "demand_forecasts") -> pd.DataFrame:
    with duckdb.connect(str(db), read_only=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        return conn.execute(f"SELECT * EXCLUDE (created_at) FROM {table} "
                            "ORDER BY ALL").df()


def _materialize(world: dict, db: Path) -> dg.ExecuteInProcessResult:
    from electricity_assets.assets.models import every_region_forecast

    return dg.materialize([demand_forecasts, every_region_forecast],
                          resources=_resources(world, db), tags={
        "dagster/asset_partition_range_start": WINDOW[0],
        "dagster/asset_partition_range_end": WINDOW[1]})


def test_the_asset_replaces_its_issues_and_reports_them(world: dict, tmp_path: Path) -> None:
    db = tmp_path / "asset.duckdb"
    shutil.copy(world["db"], db)
    first = _materialize(world, db)
    rows = _table(db)
    assert len(rows) == 2 * 3 * 48  # CAL and FLA, three issues
    assert set(rows["issue_utc"]) == {pd.Timestamp(ISSUED) - pd.Timedelta(hours=h)
                                      for h in (0, 1, 2)}
    assert _materialize(world, db).success
    pd.testing.assert_frame_equal(_table(db), rows)  # the same issues again: the same rows
    meta = first.asset_materializations_for_node("demand_forecasts")[0].metadata
    assert meta["dagster/row_count"].value == 288
    assert meta["regions"].value == "CAL, FLA" and meta["skipped_regions"].value == "ZZZ"
    assert "no champion for demand-horizons-ZZZ" in meta["skipped"].value
    # Issued 18:00-20:00 Eastern: the posted DF of the hours up to midnight Eastern (7, 6 and
    # 5 of them) comes from the source, for each served region.
    assert meta["rows_with_df_input"].value == 2 * (7 + 6 + 5)
    skipped = _table(db, "forecast_skips")
    assert list(skipped["region"]) == ["ZZZ"] * 3


def test_a_corrupt_champion_stops_its_region_only_and_keeps_its_forecasts(
        world: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The adversarial run's repro: a region's champion overwritten with random bytes failed
    every region's forecasts, and a deleted champion deleted the region's stored forecasts."""
    db = tmp_path / "corrupt.duckdb"
    shutil.copy(world["db"], db)
    monkeypatch.setenv("CHAMPION_INDEX_MAX_AGE_MINUTES", "0")  # always ask the registry
    assert _materialize(world, db).success
    before = _table(db)
    pickles = [_champion_pickle(world["mlflow"], "FLA")]
    saved = {p: p.read_bytes() for p in pickles}
    # A machine that has not copied FLA's champion yet (its copy would serve it unharmed).
    shutil.rmtree(Path(os.environ["ELECTRICITY_HOME"]) / "models" / "demand-horizons-FLA")
    try:
        for p in pickles:
            p.write_bytes(b"\x80\x04 not a pickle at all")
        result = _materialize(world, db)
    finally:
        for p, data in saved.items():
            p.write_bytes(data)
    assert result.success
    after = _table(db)
    meta = result.asset_materializations_for_node("demand_forecasts")[0].metadata
    assert "FLA" in meta["skipped_regions"].value and "CAL" in meta["regions"].value
    reasons = _table(db, "forecast_skips").set_index("region")["reason"]
    assert "could not be loaded" in reasons["FLA"].iloc[0]
    (check,) = result.get_asset_check_evaluations()  # the failing check names the region
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert check.metadata["skipped_regions"].value == "FLA, ZZZ"
    # FLA's stored forecasts are kept; CAL's were re-issued.
    fla = ["region", "issue_utc", "horizon_h", "forecast_mwh"]
    pd.testing.assert_frame_equal(after[after["region"] == "FLA"][fla].reset_index(drop=True),
                                  before[before["region"] == "FLA"][fla].reset_index(drop=True))
    assert len(after[after["region"] == "CAL"]) == 144


def _champion_pickle(config: MlflowConfig, region: str) -> Path:
    """The file MLflow loads the region's champion from."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=config.tracking_uri, registry_uri=config.tracking_uri)
    version = client.get_model_version_by_alias(f"demand-horizons-{region}", "champion")
    source = version.source
    if source.startswith("models:/"):
        source = client.get_logged_model(source.removeprefix("models:/")).artifact_location
    path = Path(source.removeprefix("file://")) / "python_model.pkl"
    assert path.exists(), path
    return path


def test_a_fresh_champion_index_serves_without_the_registry(world: dict, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    home = tmp_path / "home"
    registry = issuing.MlflowChampions(lambda: world["mlflow"])
    champions, skips = champion_cache.load_champions(["CAL", "FLA", "ZZZ"], registry, home)
    assert set(champions) == {"CAL", "FLA"} and "ZZZ" in skips

    class Unreachable:
        def champion_version(self, region: str) -> tuple[str, str]:
            raise AssertionError("the registry was asked although the index is fresh")

        def load(self, region: str, name: str, version: str) -> object:
            raise AssertionError("the registry was asked although the index is fresh")

    unreachable = Unreachable()

    cached, cached_skips = champion_cache.load_champions(["CAL", "FLA", "ZZZ"], unreachable,
                                                         home, timedelta(minutes=10))
    assert {r: c.version for r, c in cached.items()} == {r: c.version
                                                         for r, c in champions.items()}
    assert cached_skips == skips
    frame_rows = _issue(world["db"], world, champions=cached).rows
    assert len(frame_rows) == 96
    # Stale: the registry is asked again (here it fails, so CAL is skipped with that reason).
    stale, stale_skips = champion_cache.load_champions(["CAL"], unreachable, home, timedelta(0))
    assert not stale and "the registry was asked" in stale_skips["CAL"]


def test_the_day_ahead_product_is_the_morning_issue_of_the_day_before(
        world: dict, tmp_path: Path) -> None:
    from electricity_assets.assets.forecasts import day_ahead_forecasts

    db = tmp_path / "day_ahead.duckdb"
    shutil.copy(world["db"], db)
    resources = _resources(world, db)
    # 09:00 local on 28 Mar: FLA (EDT) issues at 13:00 UTC, CAL (PDT) at 16:00 UTC.
    assert dg.materialize([demand_forecasts], resources=resources, tags={
        "dagster/asset_partition_range_start": "2020-03-28-12:00",
        "dagster/asset_partition_range_end": "2020-03-28-15:00"}).success
    result = dg.materialize([day_ahead_forecasts], resources=resources,
                            partition_key="2020-03-29")
    rows = _table(db, "day_ahead_forecasts")
    for region, issue, first_hour in (("CAL", "2020-03-28T16:00Z", "2020-03-29T08:00Z"),
                                      ("FLA", "2020-03-28T13:00Z", "2020-03-29T05:00Z")):
        mine = rows[rows["region"] == region]
        assert len(mine) == 24 and set(mine["issue_utc"]) == {pd.Timestamp(issue)}
        assert mine["period_utc"].min() == pd.Timestamp(first_hour)  # local 01:00 of D
        assert list(mine["horizon_h"]) == list(range(mine["horizon_h"].iloc[0],
                                                      mine["horizon_h"].iloc[0] + 24))
    meta = result.asset_materializations_for_node("day_ahead_forecasts")[0].metadata
    assert "ZZZ" in meta["skipped"].value and "no stored issue" in meta["skipped"].value
    # Scored with DF on the hours of D that have an actual (the database ends at ISSUED).
    scores = meta["scores_vs_df"].value
    assert "| CAL | 16 |" in scores and "| FLA | 19 |" in scores


def test_a_new_champion_is_copied_once_and_then_read_from_the_copy(world: dict,
                                                                   tmp_path: Path) -> None:
    home = tmp_path / "home"
    registry = issuing.MlflowChampions(lambda: world["mlflow"])
    loads: list[str] = []

    class Counting:
        def champion_version(self, region: str) -> tuple[str, str]:
            return registry.champion_version(region)

        def load(self, region: str, name: str, version: str) -> object:
            loads.append(region)
            return registry.load(region, name, version)

    first, _ = champion_cache.resolve(["CAL", "FLA"], Counting(), home)
    again, _ = champion_cache.resolve(["CAL", "FLA"], Counting(), home)
    assert loads == ["CAL", "FLA"]  # the second resolve asked for the aliases only
    assert {r: c.version for r, c in again.items()} == {r: c.version for r, c in first.items()}


def test_a_deleted_champion_skips_its_region_and_keeps_its_stored_forecasts(
        world: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The adversarial run's second repro: with a region's champion gone, re-running the
    forecasts deleted that region's stored forecasts."""
    from mlflow import MlflowClient

    db = tmp_path / "deleted.duckdb"
    shutil.copy(world["db"], db)
    monkeypatch.setenv("CHAMPION_INDEX_MAX_AGE_MINUTES", "0")  # always ask the registry
    assert _materialize(world, db).success
    before = _table(db)
    uri = world["mlflow"].tracking_uri
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    version = client.get_model_version_by_alias("demand-horizons-FLA", "champion").version
    client.delete_registered_model_alias("demand-horizons-FLA", "champion")
    try:
        result = _materialize(world, db)
    finally:
        client.set_registered_model_alias("demand-horizons-FLA", "champion", version)
    assert result.success
    after = _table(db)
    fla = ["region", "issue_utc", "horizon_h", "forecast_mwh"]
    pd.testing.assert_frame_equal(after[after["region"] == "FLA"][fla].reset_index(drop=True),
                                  before[before["region"] == "FLA"][fla].reset_index(drop=True))
    reasons = _table(db, "forecast_skips").set_index("region")["reason"]
    assert "no champion for demand-horizons-FLA" in reasons["FLA"].iloc[0]
    assert len(after[after["region"] == "CAL"]) == 144
