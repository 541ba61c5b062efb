"""One region's failure is that region's alone (issue 19, point 3): twelve real champions in a
real (temporary, sqlite) MLflow store, one of them broken on disk or deleted, the forecast assets
materialised on a real DuckDB file."""

from __future__ import annotations

import pickle
import shutil
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest
from mlflow import MlflowClient

from electricity_assets import settings, storage
from electricity_assets.assets.forecasts import demand_forecasts
from electricity_assets.assets.forecasts import next_day_forecasts as next_day_asset
from electricity_assets.assets.models import demand_forecasts_every_region, next_day_every_region
from electricity_assets.features import model_frame
from electricity_assets.modeling.registry import (
    CHAMPION,
    MlflowConfig,
    load_champion,
    load_champions,
    log_and_register,
    model_name,
)
from electricity_assets.modeling.training import TrainingConfig, train_region
from electricity_assets.modeling.workspace import build_workspace
from electricity_assets.resources import ElectricityDuckDB, MLflowResource, SourceResource

# The bundled history's 12 regions (11 balancing-authority regions and the Lower 48)
REGION_CODES = ["CAL", "CAR", "FLA", "MIDA", "MIDW", "NE", "NW", "SE", "SW", "TEN", "TEX", "US48"]
BROKEN = "MIDA"
WINDOW = ("2020-01-25", "2020-03-20")
FAST = TrainingConfig(validation_weeks=2, num_boost_round=30, refit=False)
DAY = {"dagster/asset_partition_range_start": "2020-03-18-00:00",
       "dagster/asset_partition_range_end": "2020-03-18-23:00"}
ISSUED = datetime(2020, 3, 19, 0, tzinfo=UTC)


def _write_all_regions(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    data = settings.PACKAGE_DATA_DIR
    with duckdb.connect() as conn:
        for name in ("eia930_hourly.csv.gz", "weather_hourly.csv.gz"):
            conn.execute(f"""COPY (SELECT * FROM read_csv('{data / name}', all_varchar = true)
                WHERE period_utc >= '{WINDOW[0]}' AND period_utc < '{WINDOW[1]}'
                ) TO '{folder / name}' (HEADER, COMPRESSION gzip)""")
    return folder


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Every region's data for a few weeks and a champion per region (small, fast models)."""
    root = tmp_path_factory.mktemp("isolation")
    folder = _write_all_regions(root / "data")
    db = root / "world.duckdb"
    config = MlflowConfig(f"sqlite:///{root / 'mlflow.db'}", str(root / "artifacts"))
    with duckdb.connect(str(db)) as conn:
        start, _ = build_workspace(conn, folder)
        frame = model_frame(conn, start, ISSUED)
    for region in REGION_CODES:
        log_and_register(train_region(frame[frame["region"] == region], FAST), config)
    return {"root": root, "folder": folder, "db": db, "mlflow": config}


@pytest.fixture
def copy(world: dict, tmp_path: Path) -> dict:
    """A private copy of the database and the MLflow registry (a test deletes a version); the
    copied registry still points at the fixture's artifacts."""
    root = tmp_path / "copy"
    shutil.copytree(world["root"], root)
    return {**world, "root": root, "folder": root / "data", "db": root / "world.duckdb",
            "mlflow": MlflowConfig(f"sqlite:///{root / 'mlflow.db'}", str(root / "artifacts"))}


def _pickle_of(config: MlflowConfig, region: str) -> Path:
    """The champion's python_model.pkl on disk."""
    client = MlflowClient(config.tracking_uri, config.tracking_uri)
    version = client.get_model_version_by_alias(model_name(region), CHAMPION)
    location = client.get_model_version_download_uri(model_name(region), version.version)
    return Path(location.removeprefix("file://")) / "python_model.pkl"


def _resources(w: dict) -> dict:
    return {"duckdb": ElectricityDuckDB(database=str(w["db"])),
            "mlflow": MLflowResource(tracking_uri=w["mlflow"].tracking_uri,
                                     artifact_root=w["mlflow"].artifact_root),
            "source": SourceResource(mode="bundled", data_dir=str(w["folder"]))}


def _forecast_day(w: dict) -> dg.ExecuteInProcessResult:
    return dg.materialize([demand_forecasts, demand_forecasts_every_region],
                          resources=_resources(w), tags=DAY, raise_on_error=False)


def _issue_next_day(w: dict) -> dg.ExecuteInProcessResult:
    return dg.materialize([next_day_asset, next_day_every_region], resources=_resources(w),
                          run_config={"ops": {"next_day_forecasts": {"config": {
                              "issued_at": ISSUED.isoformat()}}}}, raise_on_error=False)


def _stored(db: Path, table: str) -> pd.DataFrame:
    with duckdb.connect(str(db), read_only=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        return conn.execute(f"SELECT * FROM {table} ORDER BY region, period_utc").df()


def test_load_champions_names_the_region_whose_model_fails_to_load(world: dict) -> None:
    def loader(region: str, config: MlflowConfig):
        if region == BROKEN:
            raise pickle.UnpicklingError("invalid load key, '\\x8f'.")
        return load_champion(region, config)

    models, skipped = load_champions(["CAL", BROKEN, "FLA"], world["mlflow"], loader=loader)
    assert sorted(models) == ["CAL", "FLA"]
    assert list(skipped) == [BROKEN]
    assert "UnpicklingError" in skipped[BROKEN] and "demand-MIDA" in skipped[BROKEN]


def test_a_corrupt_champion_skips_its_region_and_the_other_11_are_forecast(
        copy: dict, caplog: pytest.LogCaptureFixture) -> None:
    pickled = _pickle_of(copy["mlflow"], BROKEN)
    good = pickled.read_bytes()
    pickled.write_bytes(bytes(range(256)) * 40)  # random-looking bytes, as in the issue
    try:
        _corrupt_champion_checks(copy, caplog)
    finally:
        pickled.write_bytes(good)


def _corrupt_champion_checks(copy: dict, caplog: pytest.LogCaptureFixture) -> None:
    result = _forecast_day(copy)
    assert result.success
    rows = _stored(copy["db"], "demand_forecasts")
    assert sorted(rows["region"].unique()) == [r for r in REGION_CODES if r != BROKEN]
    assert (rows.groupby("region").size() == 24).all()
    meta = result.asset_materializations_for_node("demand_forecasts")[0].metadata
    assert "MIDA" in meta["skipped"].value and "UnpicklingError" in meta["skipped"].value
    assert any("MIDA" in r.getMessage() and "UnpicklingError" in r.getMessage()
               for r in caplog.records)
    (check,) = result.get_asset_check_evaluations()
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert check.metadata["skipped_regions"].value == BROKEN
    with duckdb.connect(str(copy["db"]), read_only=True) as conn:
        assert conn.execute("SELECT region FROM demand_forecasts_skipped").fetchall() == [
            (BROKEN,)]

    issued = _issue_next_day(copy)
    assert issued.success
    next_rows = _stored(copy["db"], "next_day_forecasts")
    assert sorted(next_rows["region"].unique()) == [r for r in REGION_CODES if r != BROKEN]
    (check,) = issued.get_asset_check_evaluations()
    assert not check.passed and check.metadata["skipped_regions"].value == BROKEN


def test_a_deleted_champion_keeps_its_stored_forecasts(copy: dict) -> None:
    assert _forecast_day(copy).success and _issue_next_day(copy).success
    before = _stored(copy["db"], "demand_forecasts")
    next_before = _stored(copy["db"], "next_day_forecasts")
    assert sorted(before["region"].unique()) == REGION_CODES
    client = MlflowClient(copy["mlflow"].tracking_uri, copy["mlflow"].tracking_uri)
    version = client.get_model_version_by_alias(model_name(BROKEN), CHAMPION)
    client.delete_model_version(model_name(BROKEN), version.version)

    result = _forecast_day(copy)
    assert result.success
    after = _stored(copy["db"], "demand_forecasts")
    kept = lambda frame: frame[frame["region"] == BROKEN].drop(columns="created_at")  # noqa: E731
    pd.testing.assert_frame_equal(kept(after).reset_index(drop=True),
                                  kept(before).reset_index(drop=True))
    assert len(after) == len(before)
    (check,) = result.get_asset_check_evaluations()
    assert not check.passed and "no champion for demand-MIDA" in check.metadata[
        "reasons"].value

    assert _issue_next_day(copy).success
    next_after = _stored(copy["db"], "next_day_forecasts")
    pd.testing.assert_frame_equal(kept(next_after).reset_index(drop=True),
                                  kept(next_before).reset_index(drop=True))
    with duckdb.connect(str(copy["db"]), read_only=True) as conn:
        assert conn.execute("SELECT region FROM next_day_skipped").fetchall() == [(BROKEN,)]


def test_replace_window_of_some_regions_leaves_the_others(tmp_path: Path) -> None:
    hour = pd.Timestamp("2020-03-18T00:00Z")
    row = {"period_utc": hour, "forecast_mwh": 1.0, "p10_mwh": 0.5, "p90_mwh": 1.5,
           "model_name": "m", "model_version": "1", "issued_at": hour, "created_at": hour}
    with duckdb.connect(str(tmp_path / "w.duckdb")) as conn:
        storage.replace_window(conn, storage.DEMAND_FORECASTS, pd.DataFrame(
            [{**row, "region": "CAL"}, {**row, "region": "MIDA"}]), hour, hour + pd.Timedelta("1h"))
        storage.replace_window(conn, storage.DEMAND_FORECASTS, pd.DataFrame(
            [{**row, "region": "CAL", "forecast_mwh": 2.0}]), hour, hour + pd.Timedelta("1h"),
            regions=["CAL"])
        assert conn.execute("SELECT region, forecast_mwh FROM demand_forecasts ORDER BY 1"
                            ).fetchall() == [("CAL", 2.0), ("MIDA", 1.0)]
