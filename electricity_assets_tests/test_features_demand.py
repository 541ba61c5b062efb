"""Demand and calendar features: hand-checked small frames and windows of the real bundled data."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from electricity_assets import storage
from electricity_assets.datasets import DEMAND
from electricity_assets.features import FEATURE_COLUMNS, compute_demand_features
from electricity_assets.features import demand as demand_schema
from electricity_assets.features.calendar import holiday_flags
from electricity_assets.features.demand import COLUMNS, implausible_counts
from electricity_assets.settings import PACKAGE_DATA_DIR
from electricity_assets.sources.bundled import read_bundled


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# Real windows: each with enough history before it for the 60-day implausible median.
REAL_WINDOWS = [
    (utc(2015, 7, 1), utc(2015, 9, 2)),     # SE: a multi-week run of ~1/50-scale values
    (utc(2017, 1, 1), utc(2017, 3, 3)),     # TEN: 24 zero hours on 2017-02-28
    (utc(2017, 9, 20), utc(2017, 11, 8)),   # MIDA: 53 MWh at 2017-11-06 05:00Z
    (utc(2019, 3, 8), utc(2019, 3, 12)),    # CAL: spring-forward 2019-03-10
    (utc(2019, 11, 1), utc(2019, 11, 5)),   # CAL: fall-back 2019-11-03
    (utc(2019, 6, 20), utc(2019, 7, 8)),    # TEX: Thursday July 4th 2019, bridge Friday
]


def open_db(path: Path | str) -> duckdb.DuckDBPyConnection:
    conn = duckdb.connect(str(path))
    conn.execute("SET TimeZone = 'UTC'")
    return conn


def write_raw(conn: duckdb.DuckDBPyConnection, frame: pd.DataFrame) -> None:
    frame = frame.assign(source="bundled", ingested_at=pd.Timestamp(datetime.now(UTC)))
    storage.upsert(conn, DEMAND.table, frame)


@pytest.fixture(scope="module")
def real_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("features") / "real.duckdb"
    # One pass over the gzipped CSV, then keep only the windows.
    raw = read_bundled(DEMAND, min(s for s, _ in REAL_WINDOWS), max(e for _, e in REAL_WINDOWS),
                       PACKAGE_DATA_DIR)
    keep = pd.Series(False, index=raw.index)
    for start, end in REAL_WINDOWS:
        keep |= (raw["period_utc"] >= start) & (raw["period_utc"] < end)
    with open_db(path) as conn:
        write_raw(conn, raw[keep])
    return path


@pytest.fixture
def real(real_db: Path) -> duckdb.DuckDBPyConnection:
    with open_db(real_db) as conn:
        yield conn


def hourly_demand(region: str, start: datetime, hours: int, value=lambda i: 1000.0 + i,
                  skip: tuple[int, ...] = ()) -> pd.DataFrame:
    """D rows with value(i) for hour i after start; hour offsets in `skip` have no row."""
    rows = [(region, start + timedelta(hours=i), "D", float(value(i)))
            for i in range(hours) if i not in skip]
    return pd.DataFrame(rows, columns=["region", "period_utc", "type", "value_mwh"])


def at(frame: pd.DataFrame, region: str, when: datetime) -> pd.Series:
    rows = frame[(frame["region"] == region) & (frame["period_utc"] == pd.Timestamp(when))]
    assert len(rows) == 1, f"expected one row for {region} {when}, got {len(rows)}"
    return rows.iloc[0]


def test_columns_and_dtypes_follow_the_contract(real: duckdb.DuckDBPyConnection) -> None:
    frame = compute_demand_features(real, utc(2019, 3, 9), utc(2019, 3, 10))
    assert list(frame.columns) == list(COLUMNS)
    assert set(FEATURE_COLUMNS) <= set(frame.columns)
    assert str(frame["period_utc"].dt.tz) == "UTC"
    # Regions come from the data: only those whose raw rows reach this window.
    assert sorted(frame["region"].unique()) == sorted(
        real.execute("SELECT DISTINCT region FROM raw_demand WHERE period_utc >= '2019-03-09' "
                     "AND period_utc < '2019-03-10'").fetchnumpy()["region"])
    assert len(frame) == 24 * frame["region"].nunique()


def test_local_hours_follow_dst_in_california(real: duckdb.DuckDBPyConnection) -> None:
    spring = compute_demand_features(real, utc(2019, 3, 10, 6), utc(2019, 3, 10, 13))
    spring = spring[spring["region"] == "CAL"]
    # 10:00Z is 02:00 PST = 03:00 PDT: local 2 am does not exist that day.
    assert spring["local_hour"].tolist() == [22, 23, 0, 1, 3, 4, 5]
    assert spring["is_weekend"].all()  # Saturday evening, then Sunday
    fall = compute_demand_features(real, utc(2019, 11, 3, 7), utc(2019, 11, 3, 12))
    fall = fall[fall["region"] == "CAL"]
    # 08:00Z and 09:00Z are both 1 am local (PDT, then PST).
    assert fall["local_hour"].tolist() == [0, 1, 1, 2, 3]
    expected = [math.sin(2 * math.pi * h / 24) for h in fall["local_hour"]]
    assert fall["hour_sin"].tolist() == pytest.approx(expected)


def test_july_fourth_in_texas_is_a_holiday_and_the_friday_a_bridge_day(
        real: duckdb.DuckDBPyConnection) -> None:
    frame = compute_demand_features(real, utc(2019, 7, 4), utc(2019, 7, 7))
    tex = frame[frame["region"] == "TEX"]
    # Central Daylight Time = UTC-5: local July 4 is 05:00Z .. next day 04:00Z.
    assert not at(tex, "TEX", utc(2019, 7, 4, 4))["is_holiday"]
    assert at(tex, "TEX", utc(2019, 7, 4, 5))["is_holiday"]
    assert at(tex, "TEX", utc(2019, 7, 5, 4))["is_holiday"]
    assert at(tex, "TEX", utc(2019, 7, 4, 12))["is_federal_holiday"]
    friday = at(tex, "TEX", utc(2019, 7, 5, 15))
    assert friday["is_bridge_day"] and not friday["is_holiday"] and not friday["is_weekend"]
    assert not at(tex, "TEX", utc(2019, 7, 6, 15))["is_bridge_day"]  # Saturday
    # In California, hours 05:00Z-06:00Z on July 4 are still July 3 locally (UTC-7).
    assert not at(frame, "CAL", utc(2019, 7, 4, 6))["is_holiday"]
    assert at(frame, "CAL", utc(2019, 7, 4, 7))["is_holiday"]


def test_lag_day_flags_describe_the_local_day_24h_and_168h_earlier(
        real: duckdb.DuckDBPyConnection) -> None:
    frame = compute_demand_features(real, utc(2019, 7, 4), utc(2019, 7, 13))
    tex = frame[frame["region"] == "TEX"].set_index("period_utc")
    # Local July 5 (05:00Z Jul 5 .. 04:00Z Jul 6) lags July 4; 04:00Z Jul 5 is still July 4.
    assert at(tex.reset_index(), "TEX", utc(2019, 7, 5, 5))["is_holiday_24h_ago"]
    assert not at(tex.reset_index(), "TEX", utc(2019, 7, 5, 4))["is_holiday_24h_ago"]
    assert at(tex.reset_index(), "TEX", utc(2019, 7, 6, 12))["is_bridge_day_24h_ago"]
    # Monday July 8 lags Sunday; Thursday July 11 lags the holiday a week before.
    monday = at(tex.reset_index(), "TEX", utc(2019, 7, 8, 15))
    assert monday["is_weekend_24h_ago"] and not monday["is_weekend"]
    assert at(tex.reset_index(), "TEX", utc(2019, 7, 11, 15))["is_holiday_168h_ago"]
    # Every flag is the same-day flag of the hour 24 h / 168 h earlier.
    for h in (24, 168):
        for flag in ("is_weekend", "is_holiday", "is_bridge_day"):
            earlier = tex[flag].shift(freq=f"{h}h").reindex(tex.index).dropna()
            assert (tex.loc[earlier.index, f"{flag}_{h}h_ago"] == earlier.astype(bool)).all()
            assert tex[f"{flag}_{h}h_ago"].any()


def test_a_table_from_before_the_lag_day_flags_gains_them(
        real: duckdb.DuckDBPyConnection) -> None:
    """An existing `demand_features` (older version) takes the new columns on the next write,
    and the rows written then carry the flags."""
    from electricity_assets import storage
    from electricity_assets.features.demand import LAG_DAY_COLUMNS, SCHEMA

    old = [c for c in SCHEMA.columns if c.name not in LAG_DAY_COLUMNS]
    real.execute("DROP TABLE IF EXISTS demand_features")
    real.execute(f"CREATE TABLE demand_features ({storage.Table(SCHEMA.name, tuple(old)).ddl()})")
    start, end = utc(2019, 7, 4), utc(2019, 7, 13)
    written = storage.replace_window(real, SCHEMA, compute_demand_features(real, start, end),
                                     start, end)
    stored = real.execute("SELECT * FROM demand_features WHERE region = 'TEX'").df()
    assert written > 0 and set(LAG_DAY_COLUMNS) <= set(stored.columns)
    assert stored["is_holiday_24h_ago"].sum() == 24  # local July 5 lags July 4
    real.execute("DROP TABLE demand_features")


def test_holiday_flags_observed_dates_state_holidays_and_monday_bridges() -> None:
    flags = holiday_flags(["TEX", "NOWHERE"], date(2018, 12, 20), date(2020, 7, 10))
    flags = flags.set_index(["region", "local_date"])
    # July 4th 2020 is a Saturday: observed on Friday the 3rd, which is then no bridge day.
    observed = flags.loc[("TEX", date(2020, 7, 3))]
    assert observed["is_holiday"] and observed["is_federal_holiday"]
    assert not observed["is_bridge_day"]
    # Christmas 2018 is a Tuesday: Monday the 24th bridges it for federal-only regions; in
    # Texas Christmas Eve is a state holiday itself.
    assert flags.loc[("NOWHERE", date(2018, 12, 24)), "is_bridge_day"]
    assert flags.loc[("TEX", date(2018, 12, 24)), "is_holiday"]
    assert not flags.loc[("TEX", date(2018, 12, 24)), "is_federal_holiday"]
    assert not flags.loc[("TEX", date(2018, 12, 24)), "is_bridge_day"]
    assert not flags.loc[("NOWHERE", date(2019, 3, 2)), "is_holiday"]  # Texas Independence Day
    assert flags.loc[("TEX", date(2019, 3, 2)), "is_holiday"]


def test_lag_across_a_missing_hour_is_null_not_shifted(duckdb_path: str) -> None:
    start = utc(2021, 1, 4)
    missing = 30  # hour offset with no raw row
    with open_db(duckdb_path) as conn:
        write_raw(conn, hourly_demand("CAL", start, 24 * 20, skip=(missing,)))
        frame = compute_demand_features(conn, start, start + timedelta(days=20))
    hole = start + timedelta(hours=missing)
    assert pd.isna(at(frame, "CAL", hole)["demand_mwh"])  # the grid keeps the hour, as NULL
    assert not at(frame, "CAL", hole)["is_implausible"]
    for lag in (24, 48, 72, 168, 336):
        row = at(frame, "CAL", hole + timedelta(hours=lag))
        assert pd.isna(row[f"lag_{lag}h"]), f"lag_{lag}h across the gap must be NULL"
    after = at(frame, "CAL", hole + timedelta(hours=25))
    assert after["lag_24h"] == 1000.0 + missing + 1
    assert after["lag_48h"] == 1000.0 + missing + 1 - 24


def test_rolling_windows_end_at_t_minus_24h(duckdb_path: str) -> None:
    start = utc(2021, 1, 4)
    t = start + timedelta(days=10)
    with open_db(duckdb_path) as conn:
        write_raw(conn, hourly_demand("TEX", start, 24 * 12))
        before = at(compute_demand_features(conn, t, t + timedelta(hours=1)), "TEX", t)
        offset = (t - start) // timedelta(hours=1)
        # Hours t-47h .. t-24h hold 1000 + offset - 47 .. 1000 + offset - 24.
        assert before["roll24_mean"] == pytest.approx(1000 + offset - 35.5)
        assert before["roll24_min"] == 1000 + offset - 47
        assert before["roll24_max"] == 1000 + offset - 24
        assert before["roll168_min"] == 1000 + offset - 191
        # Anything newer than t-24h must not move a feature of t.
        for hours_back in (1, 12, 23):
            write_raw(conn, hourly_demand("TEX", t - timedelta(hours=hours_back), 1,
                                          value=lambda i: 99_000.0))
        unchanged = at(compute_demand_features(conn, t, t + timedelta(hours=1)), "TEX", t)
        pd.testing.assert_series_equal(unchanged[FEATURE_COLUMNS], before[FEATURE_COLUMNS])
        # ... while t-24h itself is inside the window.
        write_raw(conn, hourly_demand("TEX", t - timedelta(hours=24), 1, value=lambda i: 1500.0))
        changed = at(compute_demand_features(conn, t, t + timedelta(hours=1)), "TEX", t)
    assert changed["lag_24h"] == 1500.0
    assert changed["roll24_max"] == 1500.0
    assert changed["roll168_mean"] != before["roll168_mean"]


def test_rows_continue_24h_past_the_last_observation(duckdb_path: str) -> None:
    start = utc(2021, 1, 4)
    with open_db(duckdb_path) as conn:
        write_raw(conn, hourly_demand("NE", start, 24 * 9))
        frame = compute_demand_features(conn, start, start + timedelta(days=30))
    last = start + timedelta(hours=24 * 9 - 1)
    assert frame["period_utc"].max() == pd.Timestamp(last + timedelta(hours=24))
    tail = frame[frame["period_utc"] > pd.Timestamp(last)]
    assert tail["demand_mwh"].isna().all() and tail["lag_24h"].notna().all()


def test_implausible_values_are_flagged_and_kept_out_of_lags(
        real: duckdb.DuckDBPyConnection) -> None:
    glitch = utc(2017, 11, 6, 5)  # MIDA reported 53 MWh against a median near 88,700
    frame = compute_demand_features(real, glitch - timedelta(hours=2), glitch + timedelta(days=2))
    row = at(frame, "MIDA", glitch)
    assert row["is_implausible"] and pd.isna(row["demand_mwh"])
    assert pd.isna(at(frame, "MIDA", glitch + timedelta(hours=24))["lag_24h"])
    assert at(frame, "MIDA", glitch + timedelta(hours=25))["roll24_min"] > 40_000
    neighbours = frame[(frame["region"] == "MIDA") & (frame["period_utc"] != pd.Timestamp(glitch))
                       & (frame["period_utc"] <= pd.Timestamp(glitch + timedelta(days=1)))]
    assert not neighbours["is_implausible"].any()

    tennessee = compute_demand_features(real, utc(2017, 2, 28), utc(2017, 3, 2))
    tennessee = tennessee[tennessee["region"] == "TEN"]
    zeros = (tennessee["period_utc"] >= pd.Timestamp(utc(2017, 2, 28, 7))) & (
        tennessee["period_utc"] <= pd.Timestamp(utc(2017, 3, 1, 6)))
    assert zeros.sum() == 24
    assert tennessee.loc[zeros, "is_implausible"].all()
    assert not tennessee.loc[~zeros, "is_implausible"].any()
    assert tennessee.loc[zeros, "demand_mwh"].isna().all()


def test_a_multi_week_glitch_run_stays_flagged_to_its_end(real: duckdb.DuckDBPyConnection) -> None:
    # SE reported ~1/50-scale values for most of August 2015; a short median window would adopt
    # them as normal after a few days and flag the real values that follow instead.
    frame = compute_demand_features(real, utc(2015, 8, 1), utc(2015, 9, 1))
    se = frame[frame["region"] == "SE"].merge(
        real.execute("SELECT period_utc, value_mwh FROM raw_demand WHERE region = 'SE' "
                     "AND type = 'D'").df(), on="period_utc")
    tiny = se["value_mwh"] < 2_000
    assert tiny.sum() > 400
    assert (se["is_implausible"] == tiny).all()


def test_implausible_counts_per_region(duckdb_path: str) -> None:
    start = utc(2021, 1, 4)
    with open_db(duckdb_path) as conn:
        values = {24 * 9: 0.0, 24 * 9 + 5: 40.0, 24 * 9 + 6: 50_000.0}
        write_raw(conn, hourly_demand("ZZZ", start, 24 * 10, value=lambda i: values.get(i, 1000.0)))
        frame = compute_demand_features(conn, start, start + timedelta(days=10))
        storage.replace_window(conn, demand_schema.SCHEMA, frame, start, start + timedelta(days=10))
        counts = implausible_counts(conn).set_index("region")
    assert counts.loc["ZZZ", "implausible_hours"] == 3
    assert counts.loc["ZZZ", "reported_hours"] == 240


def test_unknown_region_uses_central_time_and_federal_holidays(duckdb_path: str) -> None:
    start = utc(2020, 12, 20)
    with open_db(duckdb_path) as conn:
        write_raw(conn, hourly_demand("XYZ", start, 24 * 10))
        frame = compute_demand_features(conn, start, start + timedelta(days=10))
    assert at(frame, "XYZ", utc(2020, 12, 25, 6))["local_hour"] == 0  # CST = UTC-6
    assert at(frame, "XYZ", utc(2020, 12, 25, 6))["is_holiday"]
    assert not at(frame, "XYZ", utc(2020, 12, 25, 5))["is_holiday"]


def test_empty_database_and_naive_times(duckdb_path: str) -> None:
    with open_db(duckdb_path) as conn:
        empty = compute_demand_features(conn, utc(2020, 1, 1), utc(2020, 1, 2))
        assert empty.empty and list(empty.columns) == list(COLUMNS)
        with pytest.raises(ValueError, match="naive"):
            compute_demand_features(conn, datetime(2020, 1, 1), utc(2020, 1, 2))


def test_glitch_rule_flags_exactly_the_documented_hours_of_the_bundled_history(
        duckdb_path: str) -> None:
    """The counts the docstring and README promise (SE 1,191, TEN 32, CAL 2, MIDA 2, no other
    region), over the whole bundled history: ~6 s here."""
    start, end = utc(2015, 7, 1), utc(2020, 4, 3)
    with open_db(duckdb_path) as conn:
        write_raw(conn, read_bundled(DEMAND, start, end, PACKAGE_DATA_DIR))
        frame = compute_demand_features(conn, start, end)
        storage.replace_window(conn, demand_schema.SCHEMA, frame, start, end)
        counts = implausible_counts(conn).set_index("region")["implausible_hours"]
    assert len(counts) == 12  # every bundled region was featurised
    assert counts[counts > 0].to_dict() == {"CAL": 2, "MIDA": 2, "SE": 1191, "TEN": 32}


def test_glitch_rule_judges_an_hour_only_by_the_hours_before_it(duckdb_path: str) -> None:
    """Trailing and guarded: with 167 earlier values only D <= 0 is implausible; with 168 the
    ratio bounds apply to the median of the earlier hours alone (not the hour itself, nor
    anything after it)."""
    start = utc(2021, 1, 4)
    young = {5: 0.0, 167: 10_000.0}  # a zero and a 10x spike before 168 values exist
    grown = {168: 10_000.0}
    # 84 x 1,000 and 84 x 2,000 before: median 1,500, and 4,600 > 3 x 1,500; counting the hour
    # itself (median 2,000) or the 2,000s after it would clear it.
    halves = {**{i: 1000.0 for i in range(84)}, 168: 4600.0}
    with open_db(duckdb_path) as conn:
        write_raw(conn, hourly_demand("NEW", start, 24 * 8, value=lambda i: young.get(i, 1000.0)))
        write_raw(conn, hourly_demand("OLD", start, 24 * 8, value=lambda i: grown.get(i, 1000.0)))
        write_raw(conn, hourly_demand("MID", start, 24 * 30,
                                      value=lambda i: halves.get(i, 2000.0)))
        frame = compute_demand_features(conn, start, start + timedelta(days=30))
    flagged = frame[frame["is_implausible"]]
    assert sorted(zip(flagged["region"], flagged["period_utc"], strict=True)) == sorted([
        ("MID", pd.Timestamp(start + timedelta(hours=168))),
        ("NEW", pd.Timestamp(start + timedelta(hours=5))),
        ("OLD", pd.Timestamp(start + timedelta(hours=168))),
    ])
