"""next_day_forecasts: the 24 hours after each region's latest observed hour, issued at the data
clock with data known then only; on real bundled rows (CAL with weather, FLA without), a real
DuckDB file and a real (temporary, sqlite) MLflow registry."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from electricity_assets.assets.forecasts import next_day_forecasts as next_day_asset
from electricity_assets.datasets import WEATHER
from electricity_assets.features import model_frame
from electricity_assets.modeling import next_day
from electricity_assets.modeling.registry import MlflowConfig, log_and_register
from electricity_assets.modeling.training import train_region
from electricity_assets.modeling.workspace import build_workspace
from electricity_assets.resources import ElectricityDuckDB, MLflowResource, SourceResource
from electricity_assets.sources.select import SourceConfig, load_window
from electricity_assets_tests.test_modeling_training import write_sample

ISSUED = datetime(2020, 3, 30, 0, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A database as the pipeline has it at ISSUED (raw rows before it only) and champions
    trained on hours before it."""
    root = tmp_path_factory.mktemp("next_day")
    folder = write_sample(root / "data")
    db = root / "issued.duckdb"
    config = MlflowConfig(f"sqlite:///{root / 'mlflow.db'}", str(root / "artifacts"))
    with duckdb.connect(str(db)) as conn:
        start, end = build_workspace(conn, folder)
        frame = model_frame(conn, start, ISSUED)
        for table in ("raw_demand", "raw_weather"):
            conn.execute(f"DELETE FROM {table} WHERE period_utc >= ?", [ISSUED])
    for region in ("CAL", "FLA"):
        log_and_register(train_region(frame[frame["region"] == region]), config)
    return {"root": root, "folder": folder, "db": db, "mlflow": config}


def _outlook(folder: Path):
    def outlook(start: datetime, end: datetime) -> pd.DataFrame:
        return load_window(WEATHER, start, end, SourceConfig("bundled", folder)).rows
    return outlook


def _issue(db: Path, world: dict, **kwargs) -> next_day.NextDayBatch:
    return next_day.next_day_forecasts(
        lambda: duckdb.connect(str(db)), kwargs.pop("issued_at", ISSUED), world["mlflow"],
        kwargs.pop("outlook", _outlook(world["folder"])), kwargs.pop("simulate_error", True))


def test_the_24_hours_after_the_latest_observed_hour_with_their_interval(world: dict) -> None:
    batch = _issue(world["db"], world, issued_at=ISSUED + timedelta(minutes=20))
    rows = batch.rows
    assert batch.issued_at == ISSUED  # the data clock's hour
    assert set(batch.skipped) == {"ZZZ"} and "no champion" in batch.skipped["ZZZ"]
    last = pd.Timestamp(ISSUED - timedelta(hours=1))
    for region, label in (("CAL", next_day.SIMULATED), ("FLA", next_day.NO_WEATHER)):
        mine = rows[rows["region"] == region]
        assert batch.data_until[region] == last
        assert list(mine["period_utc"]) == list(pd.date_range(
            last + pd.Timedelta(hours=1), periods=24, freq="h"))
        assert set(mine["weather_input"]) == {label}
        assert (mine["data_until_utc"] == last).all() and (mine["issued_at"] == ISSUED).all()
    assert ((rows["p10_mwh"] <= rows["forecast_mwh"])
            & (rows["forecast_mwh"] <= rows["p90_mwh"])).all()
    # Sane levels: within the range CAL and FLA reported over the previous two weeks.
    with duckdb.connect(str(world["db"]), read_only=True) as conn:
        span = conn.execute("""SELECT region, min(value_mwh), max(value_mwh) FROM raw_demand
            WHERE type = 'D' AND period_utc >= ? GROUP BY region""",
                            [ISSUED - timedelta(days=14)]).fetchall()
    for region, low, high in span:
        if region in ("CAL", "FLA"):
            mine = rows.loc[rows["region"] == region, "forecast_mwh"]
            assert (mine > 0.8 * low).all() and (mine < 1.2 * high).all()


def test_future_actuals_in_the_database_change_nothing(world: dict, tmp_path: Path) -> None:
    """Rows at or after the issue time (a replay ahead of the clock, a late run) must not
    reach the inputs: demand 50 % higher and weather 10 C hotter than what really happened."""
    before = _issue(world["db"], world).rows
    db = tmp_path / "with_future.duckdb"
    shutil.copy(world["db"], db)
    with duckdb.connect(str(db)) as conn:
        folder = world["folder"]
        conn.execute(f"""INSERT INTO raw_demand
                (region, period_utc, type, value_mwh, source, ingested_at)
            SELECT region, CAST(period_utc AS TIMESTAMPTZ), type, value_mwh * 1.5, 'future',
                   now()
            FROM read_csv('{folder / "eia930_hourly.csv.gz"}')
            WHERE CAST(period_utc AS TIMESTAMPTZ) >= ? AND value_mwh IS NOT NULL""", [ISSUED])
        future_weather = load_window(WEATHER, ISSUED, ISSUED + timedelta(days=2),
                                     SourceConfig("bundled", folder)).rows
        future_weather = future_weather.assign(
            temperature_c=future_weather["temperature_c"] + 10,
            ingested_at=pd.Timestamp.now("UTC"))
        conn.register("future_weather", future_weather)
        conn.execute("INSERT INTO raw_weather BY NAME SELECT * FROM future_weather")
        assert conn.execute("SELECT count(*) FROM raw_demand WHERE period_utc >= ?",
                            [ISSUED]).fetchone()[0] > 100
    after = _issue(db, world).rows
    columns = ["region", "period_utc", "forecast_mwh", "p10_mwh", "p90_mwh"]
    pd.testing.assert_frame_equal(before[columns], after[columns])


def test_a_real_weather_forecast_is_used_as_it_is(world: dict) -> None:
    """api mode: the outlook is the Open-Meteo forecast, no simulated error on top; replay:
    the same rows are observations, so the error is added (and CAL's forecast moves)."""
    live = _issue(world["db"], world, simulate_error=False).rows
    replay = _issue(world["db"], world, simulate_error=True).rows
    cal = live["region"] == "CAL"
    assert set(live.loc[cal, "weather_input"]) == {next_day.FORECAST}
    assert not live.loc[cal, "forecast_mwh"].equals(replay.loc[cal, "forecast_mwh"])
    fla = live["region"] == "FLA"  # no weather in its model: nothing to add an error to
    assert live.loc[fla, "forecast_mwh"].equals(replay.loc[fla, "forecast_mwh"])


def test_without_a_weather_outlook_a_weather_model_is_skipped_with_the_reason(
        world: dict) -> None:
    def outage(start: datetime, end: datetime) -> pd.DataFrame:
        raise ConnectionError("Open-Meteo unreachable")

    batch = _issue(world["db"], world, outlook=outage)
    assert set(batch.rows["region"]) == {"FLA"}  # its model uses no weather
    assert "no weather for its next 24 hours (Open-Meteo unreachable)" == batch.skipped["CAL"]
    empty = _issue(world["db"], world, outlook=lambda s, e: pd.DataFrame())
    assert "the weather outlook has none" in empty.skipped["CAL"]


def test_the_asset_replaces_its_table_per_issue_and_reports_it(world: dict,
                                                               tmp_path: Path) -> None:
    db = tmp_path / "asset.duckdb"
    shutil.copy(world["db"], db)
    resources = {
        "duckdb": ElectricityDuckDB(database=str(db)),
        "mlflow": MLflowResource(tracking_uri=world["mlflow"].tracking_uri,
                                 artifact_root=world["mlflow"].artifact_root),
        "source": SourceResource(mode="bundled", data_dir=str(world["folder"])),
    }

    def issue(at: datetime) -> dg.ExecuteInProcessResult:
        return dg.materialize([next_day_asset], resources=resources, run_config={"ops": {
            "next_day_forecasts": {"config": {"issued_at": at.isoformat()}}}})

    def table() -> pd.DataFrame:
        with duckdb.connect(str(db), read_only=True) as conn:
            conn.execute("SET TimeZone = 'UTC'")
            return conn.execute("SELECT * EXCLUDE (created_at) FROM next_day_forecasts "
                                "ORDER BY region, period_utc").df()

    first = issue(ISSUED)
    rows = table()
    assert len(rows) == 48
    assert issue(ISSUED).success
    pd.testing.assert_frame_equal(table(), rows)  # the same issue again: the same rows
    meta = first.asset_materializations_for_node("next_day_forecasts")[0].metadata
    assert meta["dagster/row_count"].value == 48
    assert meta["issued_at"].value == ISSUED.isoformat()
    assert meta["regions"].value == "CAL, FLA"
    assert "ZZZ" in meta["skipped"].value and "CAL" in meta["preview"].value
    with duckdb.connect(str(db), read_only=True) as conn:
        skipped = conn.execute("SELECT region, reason FROM next_day_skipped").fetchall()
    assert skipped == [("ZZZ", "no champion for demand-ZZZ: materialise trained_models first")]
    # A later issue replaces the table: data ends at the same hour, so the same hours.
    issue(ISSUED + timedelta(hours=3))
    later = table()
    assert len(later) == 48 and set(later["issued_at"]) == {pd.Timestamp(ISSUED + timedelta(
        hours=3))}


def test_new_data_requests_one_reissue_at_a_time() -> None:
    """After an hourly, stream or retraining run the sensor asks for next_day_job once (keyed
    by the run), and not again while one is still waiting: that one will read the new rows."""
    from electricity_assets.jobs import next_day_job
    from electricity_assets.sensors import next_day_after_new_data

    @dg.asset
    def hour() -> None:
        return None

    with dg.instance_for_test() as instance:
        run = dg.materialize([hour], instance=instance)
        context = dg.build_run_status_sensor_context(
            sensor_name="next_day_after_new_data", dagster_instance=instance,
            dagster_run=run.dagster_run, dagster_event=run.get_run_success_event())
        request = next_day_after_new_data(context)
        assert isinstance(request, dg.RunRequest)
        assert request.run_key == f"next-day-after-{run.run_id}"
        instance.add_run(dg.DagsterRun(job_name=next_day_job.name, run_id="waiting",
                                       status=dg.DagsterRunStatus.NOT_STARTED))
        assert isinstance(next_day_after_new_data(context), dg.SkipReason)
