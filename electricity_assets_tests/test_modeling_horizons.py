"""Multi-horizon forecasts (issue 18): the issue frame holds only what was known at each issue,
horizon semantics, P10/P90 per horizon bucket, the MLflow family and its champion rule, and
`forecast_issue` skipping a region with its reason. Real bundled rows (CAL with weather, FLA
without), real DuckDB files and a real (temporary, sqlite) MLflow store."""

from __future__ import annotations

import shutil
from contextlib import nullcontext
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from bench.lib.workspace import build_workspace
from electricity_assets.features import issue as issue_features
from electricity_assets.features import weather
from electricity_assets.modeling import horizons, issuing
from electricity_assets.modeling.champion_cache import Champion
from electricity_assets.modeling.registry import CHALLENGER, CHAMPION, MlflowConfig
from electricity_assets.sources.http import SourceError
from electricity_assets_tests.test_modeling_training import write_sample

CUTOFF = datetime(2020, 3, 28, tzinfo=UTC)
ISSUES = [datetime(2020, 3, 10, 7, tzinfo=UTC), datetime(2020, 3, 19, 18, tzinfo=UTC),
          datetime(2020, 3, 27, 0, tzinfo=UTC)]
FORECAST_WEATHER = ["temperature_c", "dewpoint_c", "cdh", "hdh", "temp_roll24_c", "temp_delta_c",
                    "cdh_delta", "hdh_delta", "temp_trend_c", "temp_max24_c", "temp_min24_c",
                    "temp_roll24_delta_c", "heat_index_c"]
KNOWN = [*(c for c in issue_features.FEATURE_COLUMNS if c != "horizon_h"), "persistence_mwh",
         "naive_mwh", "data_until_utc"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("horizons")
    folder = write_sample(root / "data")
    db = root / "full.duckdb"
    with duckdb.connect(str(db)) as conn:
        build_workspace(conn, folder)
        frame = horizons.horizon_training_frame(conn, CUTOFF, horizons.HorizonConfig(),
                                                ["CAL", "FLA"])
    return {"root": root, "db": db, "frame": frame}


@pytest.fixture(scope="module")
def models(world: dict) -> dict[str, horizons.HorizonModel]:
    frame = world["frame"]
    return {r: horizons.train_horizon_model(frame[frame["region"] == r]) for r in ("CAL", "FLA")}


def _copy(world: dict, name: str) -> Path:
    path = world["root"] / f"{name}.duckdb"
    shutil.copy(world["db"], path)
    return path


def _frame(db: Path, issues, **kwargs) -> pd.DataFrame:
    with duckdb.connect(str(db)) as conn:
        return horizons.issue_frame(conn, issues, ["CAL", "FLA"], **kwargs)


def df_posted_at(period_utc: pd.Series) -> pd.Series:
    """When EIA's DF of each hour-ending UTC hour counts as posted: 11:00 Eastern on the
    Eastern day it covers (10:00 plus an hour's margin), written out here independently of the
    SQL that applies it."""
    eastern = (period_utc - pd.Timedelta(hours=1)).dt.tz_convert("America/New_York")
    return (eastern.dt.normalize() + pd.Timedelta(hours=11)).dt.tz_convert("UTC")


def _delete_unposted(conn: duckdb.DuckDBPyConnection, issue: datetime) -> None:
    """Make the database what it was at `issue`: no demand from the issue on, and only the DF
    rows EIA had posted by then (the rest of the day's DF from 11:00 Eastern)."""
    conn.execute("DELETE FROM raw_demand WHERE period_utc >= ? AND type = 'D'", [issue])
    dfs = conn.execute("SELECT DISTINCT period_utc FROM raw_demand WHERE type = 'DF'").df()
    hours = pd.to_datetime(dfs["period_utc"], utc=True)
    unposted = hours[df_posted_at(hours) > pd.Timestamp(issue)]
    conn.execute("DELETE FROM raw_demand WHERE type = 'DF' AND period_utc IN "
                 "(SELECT unnest(?))", [list(unposted)])


def test_features_equal_those_of_a_database_truncated_at_each_issue(world: dict) -> None:
    # Vectorised over three issues on the full database (rows after each issue present) ...
    full = _frame(world["db"], ISSUES).set_index(["region", "issue_utc", "horizon_h"])
    assert len(full) == 3 * 2 * 48
    for issue in ISSUES:
        # ... against a database that ends at the issue (weather from the issue on stays: it
        # stands in for the weather forecast, exactly as offline serving uses it; so does the
        # DF EIA had posted).
        truncated = _copy(world, f"truncated_{issue:%Y%m%d%H}")
        with duckdb.connect(str(truncated)) as conn:
            _delete_unposted(conn, issue)
        alone = _frame(truncated, [issue]).set_index(["region", "issue_utc", "horizon_h"])
        assert alone["demand_mwh"].isna().all()  # the targets are not in it
        mine = full.xs(pd.Timestamp(issue), level="issue_utc")
        pd.testing.assert_frame_equal(mine[KNOWN],
                                      alone.xs(pd.Timestamp(issue), level="issue_utc")[KNOWN])
        assert mine["demand_mwh"].notna().all()


def test_df_is_an_input_only_once_eia_has_posted_it(world: dict) -> None:
    # 2020-03-19 (EDT): 10:00 Eastern is 14:00 UTC; 11:00 Eastern is 15:00 UTC.
    before, after = pd.Timestamp("2020-03-19T14:00Z"), pd.Timestamp("2020-03-19T15:00Z")
    frame = _frame(world["db"], [before, after]).query("region == 'CAL'")
    same_day = [c for c in issue_features.DF_FEATURES if not c.startswith("df_day_before")]
    assert frame.loc[frame["issue_utc"] == before, same_day].isna().all().all()
    # The DF of the hour a day before t: yesterday's (Eastern) is posted at both issues, today's
    # only at the later one.
    for issue, hours in ((before, 15), (after, 38)):
        rows = frame[frame["issue_utc"] == issue]
        day_before = (df_posted_at(rows["period_utc"] - pd.Timedelta(hours=24)) <= issue
                      ).to_numpy()
        assert day_before.sum() == hours and day_before[:hours].all()
        assert rows.loc[day_before, "df_day_before_ratio"].notna().all()
        assert rows.loc[~day_before, "df_day_before_ratio"].isna().all()
    later = frame[frame["issue_utc"] == after]
    posted = df_posted_at(later["period_utc"]) <= after
    # Hours up to midnight Eastern (hour-ending 04:00 UTC) have their DF; the next day's not.
    assert posted.sum() == 14 and posted.iloc[:14].all()
    assert later.loc[posted.to_numpy(), "df_ratio"].notna().all()
    assert later.loc[~posted.to_numpy(), "df_ratio"].isna().all()
    assert later["df_anchor_ratio"].notna().all()
    with duckdb.connect(str(world["db"])) as conn:
        df, anchor = (conn.execute(
            "SELECT value_mwh FROM raw_demand WHERE region = 'CAL' AND type = ? "
            "AND period_utc = ?", [kind, hour]).fetchone()[0]
            for kind, hour in (("DF", after + pd.Timedelta(hours=5)),
                               ("D", after - pd.Timedelta(hours=1))))
    assert later.set_index("horizon_h").loc[6, "df_ratio"] == pytest.approx(df / anchor)


def test_weather_after_the_issue_moves_only_the_forecast_columns(world: dict) -> None:
    issue = ISSUES[1]
    hotter = _copy(world, "hotter")
    with duckdb.connect(str(hotter)) as conn:
        conn.execute("UPDATE raw_weather SET temperature_c = temperature_c + 8 "
                     "WHERE period_utc >= ?", [issue])
    before = _frame(world["db"], [issue])
    after = _frame(hotter, [issue])
    cal = (before["region"] == "CAL").to_numpy()
    observed = [c for c in issue_features.WEATHER_FEATURES if c not in FORECAST_WEATHER]
    pd.testing.assert_frame_equal(before[observed], after[observed])
    assert (after.loc[cal, "temperature_c"] - before.loc[cal, "temperature_c"]).round(6).eq(
        8).all()


def test_horizon_semantics_and_the_baselines_by_hand(world: dict) -> None:
    issue = pd.Timestamp(ISSUES[0])
    frame = _frame(world["db"], [issue], exante=False)
    cal = frame[frame["region"] == "CAL"].set_index("horizon_h")
    assert list(cal.index) == list(range(1, 49))
    assert (cal["period_utc"] == [issue + pd.Timedelta(hours=h - 1) for h in cal.index]).all()
    assert (cal["data_until_utc"] == issue - pd.Timedelta(hours=1)).all()
    with duckdb.connect(str(world["db"])) as conn:
        demand = conn.execute("SELECT period_utc, value_mwh FROM raw_demand WHERE region = 'CAL' "
                              "AND type = 'D'").df()
        region_weather = weather.region_weather(conn, issue - pd.Timedelta(days=4),
                                                issue + pd.Timedelta(days=3))
    d = demand.set_index(pd.to_datetime(demand["period_utc"], utc=True))["value_mwh"]
    temp = region_weather.query("region == 'CAL'").set_index("period_utc")["temperature_c"]
    last, hour = issue - pd.Timedelta(hours=1), pd.Timedelta(hours=1)
    for h in (1, 24, 25, 48):
        t = issue + pd.Timedelta(hours=h - 1)
        k = 1 if h <= 24 else 2  # whole days back to the newest known hour
        day = pd.Timedelta(hours=24 * k)
        assert cal.loc[h, "persistence_mwh"] == pytest.approx(d[t - day] * d[last] / d[last - day])
        assert cal.loc[h, "naive_mwh"] == d[t - pd.Timedelta(hours=168)]
        assert cal.loc[h, "demand_mwh"] == d[t]
        # Ex-post the weather columns are the region's observations: at t, over the 24 h up to
        # t, and at the anchor against its own profile hour (what persistence carries forward).
        assert cal.loc[h, "temperature_c"] == pytest.approx(temp[t])
        assert cal.loc[h, "temp_max24_c"] == pytest.approx(temp[t - 23 * hour:t].max())
        assert cal.loc[h, "temp_min24_c"] == pytest.approx(temp[t - 23 * hour:t].min())
        assert cal.loc[h, "temp_trend_c"] == pytest.approx(temp[t] - temp[last])
        assert cal.loc[h, "temp_anchor_delta_c"] == pytest.approx(temp[last] - temp[last - day])
    # The short horizons' interval unit: profile persistence's mean absolute log error 1 h
    # ahead over the week up to the anchor, log d(s) d(s - 25 h) / (d(s - 1 h) d(s - 24 h)).
    week = [last - hour * i for i in range(168)]
    err = [abs(np.log(d[s] * d[s - 25 * hour] / (d[s - hour] * d[s - 24 * hour]))) for s in week]
    np.testing.assert_allclose(cal["last168_persistence_err"], np.mean(err))
    # Ex-post weather at t is the observation; ex-ante it carries an error growing with the lead.
    exante = _frame(world["db"], [issue]).query("region == 'CAL'").set_index("horizon_h")
    error = (exante["temperature_c"] - cal["temperature_c"]).abs()
    assert error.loc[1] < error.loc[24:48].mean()


def test_a_late_anchor_moves_the_profile_day(world: dict) -> None:
    issue = pd.Timestamp(ISSUES[0])
    late = _copy(world, "late")
    with duckdb.connect(str(late)) as conn:
        conn.execute("DELETE FROM raw_demand WHERE region = 'CAL' AND period_utc >= ?",
                     [issue - pd.Timedelta(hours=3)])
    cal = _frame(late, [issue]).query("region == 'CAL'").set_index("horizon_h")
    assert (cal["data_until_utc"] == issue - pd.Timedelta(hours=4)).all()
    assert cal.loc[21, "lead_h"] == 24 and cal.loc[22, "lead_h"] == 25
    # t - 24 h is after the newest known hour from horizon 22 on: two days back then.
    assert cal.loc[21, "persistence_ratio"] != cal.loc[22, "persistence_ratio"]


def test_interval_per_horizon_bucket(models: dict) -> None:
    model = models["CAL"]
    offsets = model.predictor.offsets
    assert sorted(offsets) == [0, 1, 2, 3]
    validation = model.validation
    assert ((validation["p10_mwh"] <= validation["forecast_mwh"])
            & (validation["forecast_mwh"] <= validation["p90_mwh"])).all()
    buckets = horizons.bucket_of(validation["horizon_h"])
    for b, (low, high) in offsets.items():
        rows = validation[buckets == b]
        inside = ((rows["demand_mwh"] >= rows["p10_mwh"])
                  & (rows["demand_mwh"] <= rows["p90_mwh"])).mean()
        assert 0.75 <= inside <= 0.85, (b, inside)  # calibrated on these rows, per bucket
        assert low < 0 < high
    # Each bucket has its own band (one shared band would cover 1 h and 48 h alike).
    assert len(set(offsets.values())) == 4
    # Validation rows are issued after every training target.
    assert validation["issue_utc"].min() >= pd.Timestamp(model.train_end)


def test_interval_per_horizon_widens_within_a_bucket(models: dict) -> None:
    """One band per bucket covered 96 % of hours 1 h ahead and 66 % 6 h ahead: each horizon
    now has its own offsets (its residuals and its neighbours' in the bucket)."""
    model = models["CAL"]
    per_horizon = model.predictor.horizon_offsets
    assert len(per_horizon) >= 40  # horizons with too few residuals keep their bucket's band
    width = {h: high - low for h, (low, high) in per_horizon.items()}
    # The error grows within a bucket, most of all 1-6 h ahead.
    assert [width[h] for h in range(1, 7)] == sorted(width[h] for h in range(1, 7))
    validation = model.validation
    inside = ((validation["demand_mwh"] >= validation["p10_mwh"])
              & (validation["demand_mwh"] <= validation["p90_mwh"]))
    for h in (2, 5, 14, 23, 26, 47):
        share = inside[validation["horizon_h"] == h].mean()
        assert 0.6 <= share <= 0.95, (h, share)


def test_registry_family_and_champion_rule(models: dict, tmp_path: Path) -> None:
    config = MlflowConfig(f"sqlite:///{tmp_path / 'mlflow.db'}", str(tmp_path / "artifacts"))
    first = horizons.log_and_register_horizon(models["CAL"], config)
    assert (first.model_name, first.alias, first.version) == ("demand-horizons-CAL", CHAMPION,
                                                              "1")
    # The same data again: no validation row after v1's training data, so no proof: challenger.
    second = horizons.log_and_register_horizon(models["CAL"], config)
    assert second.alias == CHALLENGER and second.compared_hours == 0
    version, predictor = horizons.load_horizon_champion("CAL", config)
    assert version == "1"
    rows = models["CAL"].validation_features
    np.testing.assert_allclose(horizons.predict_horizons(predictor, rows)["forecast_mwh"],
                               horizons.predict_horizons(models["CAL"], rows)["forecast_mwh"])
    with pytest.raises(LookupError, match="demand-horizons-FLA"):
        horizons.load_horizon_champion("FLA", config)


def test_regions_train_in_parallel_processes_to_the_same_trees(world: dict, models: dict,
                                                               tmp_path: Path) -> None:
    """`register_horizons(workers=2)` (what trained_models does on 2 cores) trains each region
    in a spawned process: the registered trees are those of training in this process."""
    config = MlflowConfig(f"sqlite:///{tmp_path / 'mlflow.db'}", str(tmp_path / "artifacts"))
    frame = world["frame"]
    report = horizons.register_horizons(frame[frame["region"].isin(["CAL", "FLA"])], config,
                                        workers=2)
    assert sorted(r.region for r in report.registrations) == ["CAL", "FLA"]
    for region in ("CAL", "FLA"):
        _, predictor = horizons.load_horizon_champion(region, config)
        assert predictor.model_texts == models[region].predictor.model_texts
        assert report.metrics[region] == models[region].metrics


def test_forecast_issue_skips_a_missing_anchor_with_its_reason(world: dict, models: dict) -> None:
    issue = CUTOFF
    db = _copy(world, "serving")
    with duckdb.connect(str(db)) as conn:
        # FLA's hour before the issue never arrived; CAL's did.
        conn.execute("DELETE FROM raw_demand WHERE region = 'FLA' AND period_utc = ?",
                     [issue - timedelta(hours=1)])
        served = {r: Champion(horizons.horizon_model_name(r), "3", m.predictor)
                  for r, m in models.items()}

        def outlook(start: datetime, end: datetime) -> pd.DataFrame:
            return conn.execute("SELECT * FROM raw_weather WHERE period_utc >= ? AND "
                                "period_utc < ?", [start, end]).df()

        batch = issuing.forecast_issues(lambda: nullcontext(conn), [issue], served, {}, outlook,
                                        simulate_error=True)
    assert list(batch.rows.columns) == issuing.COLUMNS
    skipped = dict(zip(batch.skipped["region"], batch.skipped["reason"], strict=True))
    assert set(skipped) == {"FLA", "ZZZ"}
    assert "anchor hour 2020-03-27 23:00 UTC is missing" in skipped["FLA"]
    assert "no model" in skipped["ZZZ"]
    cal = batch.rows
    assert list(cal["horizon_h"]) == list(range(1, 49))
    assert (cal["period_utc"] == [pd.Timestamp(issue) + pd.Timedelta(hours=h - 1)
                                  for h in range(1, 49)]).all()
    assert (cal["data_until_utc"] == pd.Timestamp(issue) - pd.Timedelta(hours=1)).all()
    assert set(cal["model_name"]) == {"demand-horizons-CAL"} and set(cal["model_version"]) == {"3"}
    assert ((cal["p10_mwh"] <= cal["forecast_mwh"]) & (cal["forecast_mwh"] <= cal["p90_mwh"])).all()


def test_serving_takes_the_posted_df_of_the_hours_ahead_from_the_source(world: dict,
                                                                       models: dict) -> None:
    issue = datetime(2020, 3, 27, 18, tzinfo=UTC)  # 14:00 Eastern: the day's DF is posted
    db = _copy(world, "serving_df")
    with duckdb.connect(str(db)) as conn:
        posted = conn.execute("SELECT * FROM raw_demand WHERE type = 'DF' AND period_utc >= ?",
                              [issue]).df()
        # The live database holds no hour from the issue on; the source has the DF ahead.
        conn.execute("DELETE FROM raw_demand WHERE period_utc >= ?", [issue])
        served = {r: Champion(horizons.horizon_model_name(r), "3", m.predictor)
                  for r, m in models.items()}

        def outlook(start: datetime, end: datetime) -> pd.DataFrame:
            return conn.execute("SELECT * FROM raw_weather WHERE period_utc >= ? AND "
                                "period_utc < ?", [start, end]).df()

        def issue_with(df_outlook) -> issuing.IssueBatch:
            return issuing.forecast_issues(lambda: nullcontext(conn), [issue], served, {},
                                           outlook, simulate_error=True, df_outlook=df_outlook)

        with_df = issue_with(lambda start, end: posted[(posted["period_utc"] >= start)
                                                       & (posted["period_utc"] < end)])
        without = issue_with(None)

        def outage(start: datetime, end: datetime) -> pd.DataFrame:
            raise SourceError("EIA API: HTTP 503")

        down = issue_with(outage)
    # What the backtest scores (the issue frame of the full database) is what is served.
    full = _frame(world["db"], [issue])
    expected = pd.concat([models[r].predictor.predict(full[full["region"] == r])
                          for r in ("CAL", "FLA")])
    got = with_df.rows.sort_values(["region", "horizon_h"])
    np.testing.assert_allclose(got["forecast_mwh"], expected["forecast_mwh"], rtol=1e-9)
    # DF up to midnight Eastern (hour-ending 04:00 UTC): 11 hours per region.
    assert with_df.df_input_rows == 2 * 11 and without.df_input_rows == 0
    moved = (got["forecast_mwh"].to_numpy()
             != without.rows.sort_values(["region", "horizon_h"])["forecast_mwh"].to_numpy())
    assert moved[:11].any()
    # The source down: the forecasts without DF, and the reason reported.
    assert down.df_input_rows == 0 and "HTTP 503" in down.df_outlook_error
    pd.testing.assert_frame_equal(down.rows.drop(columns="created_at"),
                                  without.rows.drop(columns="created_at"))
    assert with_df.df_outlook_error is None


def test_day_ahead_slice_is_local_day_d_issued_the_morning_before() -> None:
    issue, hours = horizons.day_ahead_slice("CAL", date(2020, 3, 9), 9)
    assert issue == pd.Timestamp("2020-03-08T16:00Z")  # 09:00 PDT: DST began that night
    assert list(hours) == list(pd.date_range("2020-03-09T08:00Z", periods=24, freq="h"))
    issue, hours = horizons.day_ahead_slice("CAL", date(2020, 3, 8), 9)
    assert issue == pd.Timestamp("2020-03-07T17:00Z")  # 09:00 PST
    assert len(hours) == 23  # hour-ending 01:00 .. 24:00 of a 23-hour local day
    assert hours[0] == pd.Timestamp("2020-03-08T09:00Z") and hours[-1] == pd.Timestamp(
        "2020-03-09T07:00Z")
    horizon = (hours - issue) / pd.Timedelta(hours=1) + 1
    assert horizon.min() >= 1 and horizon.max() <= horizons.HORIZON_HOURS


@pytest.mark.integration  # the benchmark program, in a process of its own
def test_benchmark_by_horizon_writes_the_issue_csv(world: dict, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from electricity_assets_tests.conftest import REPO

    out = tmp_path / "horizons.csv"
    env = {**os.environ, "ELECTRICITY_HOME": str(tmp_path / "home"), "TMPDIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "forecast_accuracy.py"), "--data-dir",
         str(world["root"] / "data"), "--weeks", "1", "--end", "2020-03-29",
         "--horizons", "1,24", "--day-ahead", "--csv", str(out)],
        env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(out)
    assert list(table.columns) == ["region", "horizon_h", "hours", "model_mdape",
                                   "model_mdape_expost", "df_mdape", "naive_mdape",
                                   "persistence_mdape", "coverage_p10_p90", "window_start",
                                   "window_end"]
    assert list(table["region"]) == ["CAL"] * 3 + ["FLA"] * 3
    assert list(table["horizon_h"]) == ["1", "24", "day-ahead"] * 2
    hourly = table[table["horizon_h"] != "day-ahead"]
    assert (hourly["hours"] <= 168).all() and (hourly["hours"] > 100).all()
    assert (table.loc[table["horizon_h"] == "day-ahead", "hours"] <= 7 * 24).all()
    assert pd.to_datetime(table["window_end"]).max() <= pd.Timestamp("2020-03-29T00:00Z")
    assert "ZZZ: FAILED" in done.stdout
    # The docs' tables come from that CSV: per-horizon means and counts, per-region means.
    tables = subprocess.run([sys.executable, str(REPO / "bench" / "horizon_tables.py"),
                             str(out)], capture_output=True, text=True, timeout=120)
    assert tables.returncode == 0, tables.stderr
    one = table[table["horizon_h"] == "1"]
    below = int((one["model_mdape"] < one["df_mdape"]).sum())
    assert (f"| 1 | {one['model_mdape'].mean():.2f} | {one['model_mdape_expost'].mean():.2f} | "
            f"{one['df_mdape'].mean():.2f} |") in tables.stdout
    assert f"| {below}/2 |" in tables.stdout
    cal = table[(table["region"] == "CAL") & (table["horizon_h"] == "24")].iloc[0]
    lines = tables.stdout.splitlines()
    (head,) = [line for line in lines if line.startswith("| region |")]
    (cal_row,) = [line for line in lines if line.startswith("| CAL |")]
    column = head.split(" | ").index("24 model")
    assert cal_row.split(" | ")[column].strip("*") == f"{cal['model_mdape']:.2f}"


def test_each_horizon_band_follows_its_own_error_scale() -> None:
    """Residuals whose size grows 1 -> 6 h ahead: pooling a horizon with its neighbours must not
    hand 1 h ahead the larger errors of 2-3 h (the pooled band covered 89-94 % of hours 1 h ahead
    in the 4-window backtest). Each horizon's P10-P90 covers ~80 % of its own residuals."""
    from electricity_assets.modeling.horizon_model import horizon_offsets

    rng = np.random.default_rng(7)
    rows, size = [], {h: 0.5 * h for h in range(1, 7)}  # error scale per horizon (spread units)
    for h in range(1, 7):
        noise = rng.normal(0.0, size[h], 400)
        rows.append(pd.DataFrame({
            "horizon_h": h, "anchor_mwh": 1000.0, "persistence_mwh": 1000.0,
            "profile_ratio": 1.0, "last168_std_ratio": 0.1, "last168_mean_ratio": 1.0,
            # demand / level - forecast ratio = noise x spread (0.1)
            "demand_mwh": 1000.0 * (1.0 + 0.1 * noise)}))
    valid = pd.concat(rows, ignore_index=True)
    forecasts = pd.DataFrame({"forecast_mwh": np.full(len(valid), 1000.0)})
    offsets = horizon_offsets(valid, forecasts, (0.1, 0.9), spread_typical=0.1)
    residual = (valid["demand_mwh"] / 1000.0 - 1.0) / 0.1
    for h in range(1, 7):
        low, high = offsets[h]
        own = residual[valid["horizon_h"] == h]
        inside = ((own >= low) & (own <= high)).mean()
        assert 0.75 <= inside <= 0.85, (h, inside)


def test_short_horizon_bands_follow_the_recent_persistence_error() -> None:
    """A few hours ahead the error follows how erratic the day-on-day ratio has been lately, not
    the week's daily swing: with `last168_persistence_err` as the unit, a calm and a volatile week
    of the same spread each get ~80 % inside P10-P90; the spread unit gives the calm one too wide a
    band and the volatile one too narrow."""
    from electricity_assets.modeling.horizon_model import HorizonPredictor, horizon_offsets

    rng = np.random.default_rng(11)
    rows = []
    for error in (0.005, 0.015):  # calm, volatile
        for h in range(1, 7):
            rows.append(pd.DataFrame({
                "horizon_h": h, "anchor_mwh": 1000.0, "persistence_mwh": 1000.0,
                "profile_ratio": 1.0, "last168_std_ratio": 0.1, "last168_mean_ratio": 1.0,
                "last168_persistence_err": error,
                "demand_mwh": 1000.0 * (1.0 + rng.normal(0.0, error * h ** 0.5, 300))}))
    valid = pd.concat(rows, ignore_index=True)
    forecasts = pd.DataFrame({"forecast_mwh": np.full(len(valid), 1000.0)})
    calm = (valid["last168_persistence_err"] == 0.005).to_numpy()

    def inside(error_typical: float | None) -> tuple[float, float]:
        offsets = horizon_offsets(valid, forecasts, (0.1, 0.9), 0.1, error_typical)
        predictor = HorizonPredictor("X", {0: ""}, [], {0: (0.0, 0.0)}, 0.1,
                                     horizon_offsets=offsets, error_typical=error_typical)
        band = predictor.forecast_from(valid, np.ones(len(valid)))
        ok = ((valid["demand_mwh"] >= band["p10_mwh"])
              & (valid["demand_mwh"] <= band["p90_mwh"])).to_numpy()
        return ok[calm].mean(), ok[~calm].mean()

    for share in inside(0.01):
        assert 0.75 <= share <= 0.85, share
    calm_share, volatile_share = inside(None)  # versions registered before: the weekly spread
    assert calm_share > 0.9 and volatile_share < 0.7


def test_the_band_comes_from_the_newest_validation_weeks(world: dict) -> None:
    """Early stopping uses every validation week; P10/P90 only the newest `calibration_weeks`
    (the season nearest the issues the model will make)."""
    from electricity_assets.modeling.horizon_model import base_of, bucket_of, unit_of

    frame = world["frame"]
    config = horizons.HorizonConfig(validation_weeks=2, calibration_weeks=1)
    model = horizons.train_horizon_model(frame[frame["region"] == "CAL"], config)
    valid = model.validation.reset_index(drop=True)
    inputs = model.validation_features.reset_index(drop=True)
    base = base_of(inputs)
    unit = unit_of(inputs, model.predictor.spread_typical, model.predictor.error_typical)
    residual = ((valid["demand_mwh"] - valid["forecast_mwh"]) / base / unit).to_numpy()
    newest = (valid["issue_utc"] >= pd.Timestamp(model.validation_end) - timedelta(weeks=1)
              ).to_numpy()
    assert 0 < newest.sum() < len(valid)
    rows = bucket_of(valid["horizon_h"]) == 3  # 25-48 h
    expected = np.quantile(residual[rows & newest], [0.1, 0.9])
    np.testing.assert_allclose(model.predictor.offsets[3], expected)
    assert not np.allclose(np.quantile(residual[rows], [0.1, 0.9]), expected)


def test_the_dense_buckets_also_train_on_denser_issues(world: dict) -> None:
    """The 1-6 h and 13-24 h buckets have fewer rows per issue than 25-48 h: the training frame
    adds issues every `short_issue_every_hours` for the horizons of `dense_buckets` only, with
    the rows issue_frame gives those issues (a frame cut at 24 h is the full frame's first 24
    horizons)."""
    frame = world["frame"]
    dense = {h for b in horizons.HorizonConfig().dense_buckets
             for h in range(horizons.BUCKETS[b][0], horizons.BUCKETS[b][1] + 1)}
    assert dense == {*range(1, 7), *range(13, 25)}
    per_issue = frame.groupby(["region", "issue_utc"])["horizon_h"].agg(["max", "size"])
    short = per_issue[per_issue["max"] <= 24]
    assert len(short) > len(per_issue) - len(short)  # most issues are the extra ones
    assert set(short.index.get_level_values("issue_utc").hour) == set(range(24))
    issues = list(short.index.get_level_values("issue_utc").unique()[:5])
    with duckdb.connect(str(world["db"])) as conn:
        full = horizons.issue_frame(conn, issues, ["CAL", "FLA"])
        cut = horizons.issue_frame(conn, issues, ["CAL", "FLA"], max_horizon=24)
    pd.testing.assert_frame_equal(cut.reset_index(drop=True),
                                  full[full["horizon_h"] <= 24].reset_index(drop=True))
    expected = full[full["horizon_h"].isin(dense)].reset_index(drop=True)
    mine = frame[frame["issue_utc"].isin(issues)].reset_index(drop=True)
    pd.testing.assert_frame_equal(mine, expected[expected["period_utc"] < CUTOFF]
                                  .reset_index(drop=True), check_dtype=False)
    # Without the extra issues every issue has all 48 horizons (before the cutoff).
    with duckdb.connect(str(world["db"])) as conn:
        plain = horizons.horizon_training_frame(
            conn, CUTOFF, horizons.HorizonConfig(short_issue_every_hours=0), ["CAL", "FLA"])
    assert plain["issue_utc"].nunique() < frame["issue_utc"].nunique()


def test_bands_widen_by_the_held_out_week_factor() -> None:
    """Bands fitted on some weeks and used on another meet a scale that moves from week to week:
    the factor is ~1 when every week has the same error scale and > 1 when it varies, and the
    widened bands hold ~80 % of each week's rows when fitted on the others."""
    from electricity_assets.modeling.horizon_model import held_out_week_factor, horizon_offsets

    rng = np.random.default_rng(3)
    start = pd.Timestamp("2020-01-01", tz="UTC")

    def weeks(scales: list[float]) -> pd.DataFrame:
        rows = []
        for w, scale in enumerate(scales):
            for h in range(1, 7):
                n = 200
                rows.append(pd.DataFrame({
                    "issue_utc": start + pd.Timedelta(weeks=w) + pd.to_timedelta(
                        rng.integers(0, 7 * 24, n), unit="h"),
                    "horizon_h": h, "anchor_mwh": 1000.0, "persistence_mwh": 1000.0,
                    "profile_ratio": 1.0, "last168_std_ratio": 0.1, "last168_mean_ratio": 1.0,
                    "demand_mwh": 1000.0 * (1.0 + 0.1 * rng.normal(0.0, scale, n))}))
        return pd.concat(rows, ignore_index=True)

    steady, moving = weeks([1.0] * 4), weeks([0.5, 0.5, 2.0, 2.0])
    for valid, low, high in ((steady, 0.95, 1.05), (moving, 1.2, 2.0)):
        forecasts = pd.DataFrame({"forecast_mwh": np.full(len(valid), 1000.0)})
        (factor,) = held_out_week_factor(valid, forecasts, (0.1, 0.9), 0.1, None).values()
        assert low <= factor <= high, factor
    # On the moving weeks: each week against bands fitted on the other three, times the factor.
    forecasts = pd.DataFrame({"forecast_mwh": np.full(len(moving), 1000.0)})
    week = ((moving["issue_utc"] - start) // pd.Timedelta(weeks=1)).to_numpy()
    residual = (moving["demand_mwh"] / 1000.0 - 1.0).to_numpy() / 0.1
    inside = []
    for w in range(4):
        fitted = horizon_offsets(moving[week != w], forecasts[week != w], (0.1, 0.9), 0.1)
        for h in range(1, 7):
            rows = (week == w) & (moving["horizon_h"] == h).to_numpy()
            lo, hi = (factor * v for v in fitted[h])
            inside.append(((residual[rows] >= lo) & (residual[rows] <= hi)).mean())
    assert 0.77 <= np.mean(inside) <= 0.83
