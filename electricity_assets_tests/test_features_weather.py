"""Weather features, training-window normalisation, the joined model frame and the assets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest

from electricity_assets import storage
from electricity_assets.assets.features import feature_assets, weather_statistics
from electricity_assets.datasets import DEMAND, WEATHER
from electricity_assets.features import (
    FEATURE_COLUMNS,
    WEATHER_FEATURE_COLUMNS,
    compute_demand_features,
    compute_weather_features,
    default_normalisation_cutoff,
    fit_weather_statistics,
    model_frame,
    weather_normalisation,
)
from electricity_assets.features import demand as demand_schema
from electricity_assets.features import weather as weather_schema
from electricity_assets.features.weather import COLUMNS
from electricity_assets.features.weather import station_offsets as weather_station_offsets
from electricity_assets.resources import ElectricityDuckDB
from electricity_assets.settings import PACKAGE_DATA_DIR
from electricity_assets.sources.bundled import read_bundled

START = datetime(2021, 1, 4, tzinfo=UTC)


def open_db(path: str) -> duckdb.DuckDBPyConnection:
    conn = duckdb.connect(path)
    conn.execute("SET TimeZone = 'UTC'")
    return conn


def write(conn: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> None:
    storage.upsert(conn, table, frame.assign(
        source="bundled", ingested_at=pd.Timestamp(datetime.now(UTC))))


def hourly_weather(region: str, hours: int, temperature=lambda i: 10.0 + (i % 24),
                   skip: tuple[int, ...] = (), station: str = "S1") -> pd.DataFrame:
    return pd.DataFrame([
        (region, station, START + timedelta(hours=i), float(temperature(i)), None, 50.0, 10.0,
         None)
        for i in range(hours) if i not in skip
    ], columns=list(WEATHER.columns))


def fit(conn: duckdb.DuckDBPyConnection, cutoff: datetime) -> pd.DataFrame:
    """Fit and store the weather statistics as the `weather_statistics` asset does."""
    fitted = fit_weather_statistics(conn, cutoff)
    with storage.transaction(conn):
        storage.replace_table(conn, weather_schema.OFFSETS_SCHEMA, fitted.offsets)
        storage.replace_table(conn, weather_schema.NORMALISATION_SCHEMA, fitted.normalisation)
    return fitted.normalisation


def at(frame: pd.DataFrame, region: str, hours: int) -> pd.Series:
    rows = frame[(frame["region"] == region)
                 & (frame["period_utc"] == pd.Timestamp(START + timedelta(hours=hours)))]
    assert len(rows) == 1
    return rows.iloc[0]


def test_degree_hours_heat_index_lags_and_trailing_means(duckdb_path: str) -> None:
    with open_db(duckdb_path) as conn:
        write(conn, "raw_weather", hourly_weather("TEX", 24 * 8, skip=(50,)))
        # 90 F at 50 % humidity: the NWS table gives a heat index of 95 F (35 C).
        conn.execute("UPDATE raw_weather SET temperature_c = 32.2222 "
                     "WHERE period_utc = ?", [START + timedelta(hours=100)])
        fit(conn, START + timedelta(days=7))
        frame = compute_weather_features(conn, START, START + timedelta(days=8))
    assert list(frame.columns) == list(COLUMNS)
    assert len(frame) == 24 * 8 - 1  # one row per hour that has weather
    cold, warm = at(frame, "TEX", 0), at(frame, "TEX", 23)  # 10 C and 33 C
    assert (cold["hdh"], cold["cdh"]) == (8.0, 0.0)
    assert (warm["hdh"], warm["cdh"]) == (0.0, 15.0)
    assert cold["heat_index_c"] == 10.0  # below 80 F the index is the air temperature
    assert at(frame, "TEX", 100)["heat_index_c"] == pytest.approx(35.0, abs=0.6)
    assert pd.isna(at(frame, "TEX", 74)["temp_lag_24h"])  # hour 50 has no row
    assert at(frame, "TEX", 75)["temp_lag_24h"] == 10.0 + 51 % 24
    assert pd.isna(at(frame, "TEX", 53)["temp_lag_3h"])
    assert at(frame, "TEX", 54)["temp_lag_3h"] == 10.0 + 51 % 24
    # A trailing 24 h mean over a full daily cycle 10..33 C is 21.5 C.
    assert at(frame, "TEX", 47)["temp_roll24_mean"] == pytest.approx(21.5)
    assert at(frame, "TEX", 10)["temp_roll24_mean"] == pytest.approx(15.0)  # hours 0..10


def test_z_scores_use_statistics_from_before_the_cutoff_only(duckdb_path: str) -> None:
    cutoff = START + timedelta(days=10)
    with open_db(duckdb_path) as conn:
        write(conn, "raw_weather", hourly_weather("CAL", 24 * 20))
        stats = fit(conn, cutoff).set_index(["region", "variable"])
        training = np.array([10.0 + (i % 24) for i in range(24 * 10)])
        assert stats.loc[("CAL", "temperature_c"), "mean"] == pytest.approx(training.mean())
        assert stats.loc[("CAL", "temperature_c"), "std"] == pytest.approx(training.std(ddof=1))
        assert stats.loc[("CAL", "temperature_c"), "n_rows"] == 240
        assert ("CAL", "precipitation_mm") not in stats.index  # no values: no statistics
        assert ("CAL", "dewpoint_c") in stats.index  # derived from temperature and humidity
        before = compute_weather_features(conn, START, START + timedelta(days=20))
        # A heat wave after the cut-off changes neither the stored statistics nor old z-scores.
        conn.execute("UPDATE raw_weather SET temperature_c = temperature_c + 20 "
                     "WHERE period_utc >= ?", [cutoff])
        after = compute_weather_features(conn, START, START + timedelta(days=20))
        stored = weather_normalisation(conn)
    pd.testing.assert_series_equal(before["temperature_z"][:240], after["temperature_z"][:240])
    assert (after["temperature_z"][240:] > before["temperature_z"][240:] + 2.5).all()
    assert (stored["cutoff_utc"] == pd.Timestamp(cutoff)).all()
    z = (after["temperature_c"] - training.mean()) / training.std(ddof=1)
    np.testing.assert_allclose(after["temperature_z"], z)
    assert after["precipitation_z"].isna().all()


def test_default_cutoff_holds_out_the_last_eight_weeks_of_demand(duckdb_path: str) -> None:
    with open_db(duckdb_path) as conn:
        assert default_normalisation_cutoff(conn) is None
        last = START + timedelta(days=100)
        write(conn, "raw_demand", pd.DataFrame(
            [("CAL", last, "D", 1.0), ("CAL", last + timedelta(days=9), "DF", 1.0)],
            columns=list(DEMAND.columns)))
        write(conn, "raw_weather", hourly_weather("CAL", 24 * 100))
        assert default_normalisation_cutoff(conn) == pd.Timestamp(last - timedelta(weeks=8))
        before = compute_weather_features(conn, START, START + timedelta(days=1))
        assert weather_normalisation(conn).empty  # the features never fit (nor write) anything
        assert before["temperature_z"].isna().all()
    # The fit is a materialisation of its own asset, upstream of the features.
    result = dg.materialize([weather_statistics],
                            resources={"duckdb": ElectricityDuckDB(database=duckdb_path)})
    assert {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()} == {
        "weather_station_offsets", "weather_normalisation"}
    with open_db(duckdb_path) as conn:
        stats = weather_normalisation(conn)
    assert (stats["cutoff_utc"] == pd.Timestamp(last - timedelta(weeks=8))).all()
    assert (stats["n_rows"] == (100 - 56) * 24).all()


def test_model_frame_keeps_regions_without_weather(duckdb_path: str) -> None:
    days = 16
    with open_db(duckdb_path) as conn:
        demand = pd.DataFrame(
            [(r, START + timedelta(hours=i), "D", 1000.0 + i)
             for r in ("CAL", "NOWX") for i in range(24 * days)],
            columns=list(DEMAND.columns))
        write(conn, "raw_demand", demand)
        write(conn, "raw_weather", hourly_weather("CAL", 24 * days))
        end = START + timedelta(days=days)
        storage.replace_window(conn, demand_schema.SCHEMA,
                               compute_demand_features(conn, START, end), START, end)
        storage.replace_window(conn, weather_schema.SCHEMA,
                               compute_weather_features(conn, START, end), START, end)
        window = (START + timedelta(days=14), START + timedelta(days=15))
        frame = model_frame(conn, *window)
        only_cal = model_frame(conn, *window, regions=["CAL"])
    assert len(frame) == 48 and sorted(frame["region"].unique()) == ["CAL", "NOWX"]
    assert set(FEATURE_COLUMNS + WEATHER_FEATURE_COLUMNS) <= set(frame.columns)
    assert frame.loc[frame["region"] == "NOWX", "temperature_c"].isna().all()
    assert frame.loc[frame["region"] == "CAL", "temperature_c"].notna().all()
    assert frame.loc[frame["region"] == "CAL", "lag_336h"].notna().all()
    assert only_cal["region"].unique().tolist() == ["CAL"]


def test_assets_materialise_a_real_window_idempotently(duckdb_path: str) -> None:
    # Real bundled rows for one March 2020 day plus the lookback the features read.
    start, end = datetime(2020, 1, 20, tzinfo=UTC), datetime(2020, 3, 2, tzinfo=UTC)
    with open_db(duckdb_path) as conn:
        for dataset in (DEMAND, WEATHER):
            raw = read_bundled(dataset, start, end, PACKAGE_DATA_DIR)
            write(conn, dataset.table, raw[list(dataset.columns)])
    resources = {"duckdb": ElectricityDuckDB(database=duckdb_path)}
    for _ in range(2):
        result = dg.materialize(feature_assets, resources=resources,
                                partition_key="2020-03-01-12:00")
        assert result.success
    events = {e.asset_key.to_user_string(): e.materialization.metadata
              for e in result.get_asset_materialization_events()}
    assert events["demand_features"]["dagster/row_count"].value == 12
    # Fitted in the same run, upstream (on nothing here: the cut-off, 8 weeks before the last
    # demand hour, precedes this window's weather).
    assert events["weather_normalisation"]["cutoff_utc"].value == "2020-01-05T23:00:00+00:00"
    # CAL CAR CENT MIDA MIDW NW TEN TEX from stations and points, US48 from all of them, and
    # FLA NE NY SE SW from their neighbours' stations.
    assert events["weather_features"]["dagster/row_count"].value == 14
    assert "CAL, CAR" in events["demand_features"]["regions"].value
    with open_db(duckdb_path) as conn:
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM demand_features), (SELECT count(*) FROM "
            "weather_features), (SELECT count(*) FROM demand_features WHERE lag_336h IS NULL)"
        ).fetchone()
    assert counts == (12, 14, 0)


LA, SAN_JOSE = "722950", "open-meteo:San Jose, CA"  # CAL's NOAA station and main Open-Meteo point


def station_rows(region: str, station: str, source: str, hours: range, temperature
                 ) -> pd.DataFrame:
    frame = hourly_weather(region, max(hours) + 1, temperature, station=station)
    frame = frame[frame["period_utc"] >= START + timedelta(hours=hours.start)]
    return frame.assign(source=source, ingested_at=pd.Timestamp(datetime.now(UTC)))


def cal(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["region"] == "CAL"].set_index("period_utc")


def test_a_second_source_taking_over_causes_no_step(duckdb_path: str) -> None:
    """CAL: the LA station to day 30, then only San Jose, 5 C cooler, which began on day 10."""
    def weather(i: int) -> float:
        return 15.0 + 8 * np.sin(2 * np.pi * i / 24) + i / 100

    with open_db(duckdb_path) as conn:
        storage.upsert(conn, "raw_weather", pd.concat([
            station_rows("CAL", LA, "noaa_lcd", range(0, 24 * 30), weather)
            .assign(wind_speed_kmh=np.nan),  # NOAA LCD has no wind
            station_rows("CAL", SAN_JOSE, "open_meteo", range(24 * 10, 24 * 40),
                         lambda i: weather(i) - 5.0)]))
        fit(conn, START + timedelta(days=30))
        frame = cal(compute_weather_features(conn, START, START + timedelta(days=40)))
        offsets = weather_station_offsets(conn)
    truth = pd.Series([weather(i) for i in range(24 * 40)],
                      index=[pd.Timestamp(START + timedelta(hours=i)) for i in range(24 * 40)])
    np.testing.assert_allclose(frame["temperature_c"], truth.loc[frame.index], atol=1e-9)
    assert frame["weather_source"].iloc[[0, 24 * 20, -1]].tolist() == [
        "noaa_lcd", "noaa_lcd+open_meteo", "open_meteo"]
    assert frame["weather_stations"].iloc[[0, 24 * 20, -1]].tolist() == [1, 2, 1]
    annual = offsets[(offsets["station"] == SAN_JOSE) & (offsets["month"] == 0)
                     & (offsets["variable"] == "temperature_c") & (offsets["region"] == "CAL")]
    assert annual["offset"].tolist() == pytest.approx([5.0])
    # Wind exists only in the later source: NULL throughout rather than appearing on day 10.
    assert frame["wind_speed_kmh"].isna().all()


def test_a_missing_station_does_not_shift_the_region(duckdb_path: str) -> None:
    """MIDW: St Louis 4 C above, Detroit 4 C below the region; Detroit misses every 10th hour."""
    def weather(i: int) -> float:
        return 10.0 + (i % 24)

    gaps = tuple(range(5, 24 * 20, 10))
    detroit = station_rows("MIDW", "725375", "noaa_lcd", range(0, 24 * 20),
                           lambda i: weather(i) - 4.0)
    detroit = detroit[~detroit["period_utc"].isin(
        [pd.Timestamp(START + timedelta(hours=h)) for h in gaps])]
    with open_db(duckdb_path) as conn:
        storage.upsert(conn, "raw_weather", pd.concat([
            station_rows("MIDW", "724340", "noaa_lcd", range(0, 24 * 20),
                         lambda i: weather(i) + 4.0), detroit]))
        fit(conn, START + timedelta(days=20))
        frame = compute_weather_features(conn, START, START + timedelta(days=20))
    midw = frame[frame["region"] == "MIDW"].set_index("period_utc")["temperature_c"]
    at_gaps = midw.loc[[pd.Timestamp(START + timedelta(hours=h)) for h in gaps]]
    expected = np.array([weather(h) for h in gaps])
    # The plain mean would be St Louis alone there: 4 C too warm.
    np.testing.assert_allclose(at_gaps.to_numpy(), expected, atol=0.5)


def test_recency_features_do_not_depend_on_the_materialised_window(duckdb_path: str) -> None:
    with open_db(duckdb_path) as conn:
        write(conn, "raw_weather", hourly_weather("TEX", 24 * 120,
                                                  temperature=lambda i: 10 + (i % 24) + i / 500))
        fit(conn, START + timedelta(days=60))
        whole = compute_weather_features(conn, START, START + timedelta(days=120))
        day = compute_weather_features(conn, START + timedelta(days=100),
                                       START + timedelta(days=101))
    whole = whole.set_index("period_utc").loc[day["period_utc"]]
    pd.testing.assert_frame_equal(whole.reset_index()[list(COLUMNS)], day.reset_index(drop=True),
                                  check_dtype=False)
    row = day.iloc[-1]
    t = 10 + np.arange(24 * 101) % 24 + np.arange(24 * 101) / 500  # hours 0 .. day 101 - 1 h
    assert row["temp_lag_1h"] == pytest.approx(t[-2])
    assert row["temp_lag_72h"] == pytest.approx(t[-73])
    assert (row["temp_roll24_max"], row["temp_roll24_min"]) == pytest.approx(
        (t[-24:].max(), t[-24:].min()))
    weights = np.exp(-np.arange(24 * 3) / 24)
    assert row["temp_ewm_24h"] == pytest.approx((t[::-1][:72] * weights).sum() / weights.sum())
    # The month-long mean lags the warming trend: the shorter the memory, the warmer.
    assert row["temp_ewm_720h"] < row["temp_ewm_168h"] < row["temperature_c"] + 5


def test_forecast_features_equal_features_of_observations_then_forecasts() -> None:
    """Ex-ante features at hour t are those of a series that is observed up to the issue time
    t - 24 h and forecast (observed + error) after it: checked column by column at several t."""
    from electricity_assets.features.forecast_error import weather_error
    from electricity_assets.features.weather import (
        apply_weather_error,
        forecast_weather_features,
        weather_feature_frame,
    )

    hours = pd.date_range(START, periods=24 * 70, freq="h")
    rng = np.random.default_rng(1)
    series = pd.DataFrame({
        "region": "TEX", "period_utc": hours,
        "temperature_c": 15 + 8 * np.sin(np.arange(len(hours)) * 2 * np.pi / 24)
        + rng.normal(0, 1, len(hours)),
        "dewpoint_c": 5.0 + rng.normal(0, 1, len(hours)), "relative_humidity": 50.0,
        "wind_speed_kmh": 10.0, "precipitation_mm": np.nan, "weather_stations": 1,
        "weather_source": "noaa_lcd"})
    series = series.drop(index=[100, 1500])  # gaps are skipped, not shifted
    errors = weather_error(series)
    assert 1.5 < errors["temperature_error_c"].std() < 2.5
    start = hours[24 * 40]
    exante = forecast_weather_features(series, errors, start).set_index("period_utc")
    expost = weather_feature_frame(series, start).set_index("period_utc")
    assert (exante["temperature_c"] - expost["temperature_c"]).abs().mean() > 1.0
    for t in (hours[24 * 45 + 7], hours[24 * 60 + 20], hours[-1]):
        after_issue = (series["period_utc"] > t - timedelta(hours=24)) & (
            series["period_utc"] <= t)
        mixed = series.copy()
        mixed[after_issue] = apply_weather_error(series[after_issue], errors)
        brute = weather_feature_frame(mixed[mixed["period_utc"] <= t], start).set_index(
            "period_utc").loc[t]
        numeric = [c for c in COLUMNS if c not in ("region", "period_utc", "weather_source")]
        np.testing.assert_allclose(exante.loc[t, numeric].astype(float),
                                   brute[numeric].astype(float), rtol=1e-9, atol=1e-9,
                                   err_msg=str(t))
    # Lags of 24 h and more are observations at issue time.
    pd.testing.assert_series_equal(exante["temp_lag_48h"], expost["temp_lag_48h"])


def test_a_region_without_stations_borrows_the_nearest_within_the_radius() -> None:
    from electricity_assets.regions import (
        REGIONS,
        Region,
        WeatherPoint,
        WeatherStation,
        neighbour_stations,
    )

    near = WeatherStation("1", "near", 40.0, -75.0)      # ~85 km from the point
    far = WeatherStation("2", "far", 40.0, -66.0)        # ~850 km
    middle = WeatherStation("3", "middle", 42.0, -75.0)  # ~225 km
    other = Region("OTH", "other", "UTC", weather_stations=(far, near, middle))
    bare = Region("BARE", "bare", "UTC", weather_points=(WeatherPoint("p", 40.0, -76.0),))
    assert neighbour_stations(bare, (other, bare), radius_km=800) == (near, middle)
    # A region with stations of its own keeps only them.
    own = Region("OWN", "own", "UTC", weather_points=bare.weather_points,
                 weather_stations=(WeatherStation("4", "own", 40.0, -76.0),))
    assert neighbour_stations(own, (other, own), radius_km=800) == ()
    assert REGIONS["SE"].neighbour_stations and not REGIONS["TEN"].neighbour_stations


def test_a_borrowed_station_stays_filed_under_its_own_region() -> None:
    """raw_weather files a station's rows under its first region: the one listing it as its own
    (Nashville is TEN's, also borrowed by SE which comes earlier in the catalogue)."""
    from electricity_assets.regions import REGIONS, station_regions

    homes = station_regions()
    for region in REGIONS.values():
        if region.code == "US48":
            continue
        for station in region.weather_stations:
            assert homes[station.station][0] == region.code
        for station in region.neighbour_stations:
            assert region.code in homes[station.station][1:]


def test_a_region_with_only_borrowed_stations_gets_their_weather(duckdb_path: str) -> None:
    """SE has no station of its own: its weather is the mean of its neighbours' (filed under
    CAR and TEN), with every station's offset to that mean."""
    from electricity_assets.regions import REGIONS

    neighbours = REGIONS["SE"].neighbour_stations[:2]
    homes = {"723100": "CAR", "723120": "CAR", "723270": "TEN", "723273": "TEN"}
    with open_db(duckdb_path) as conn:
        storage.upsert(conn, "raw_weather", pd.concat([
            station_rows(homes[s.station], s.station, "noaa_lcd", range(0, 24 * 20),
                         lambda i, k=k: 10.0 + (i % 24) + 2 * k)
            for k, s in enumerate(neighbours)]))
        fit(conn, START + timedelta(days=20))
        frame = compute_weather_features(conn, START, START + timedelta(days=20))
    se = frame[frame["region"] == "SE"].set_index("period_utc")
    assert len(se) == 24 * 20 and (se["weather_stations"] == 2).all()
    np.testing.assert_allclose(se["temperature_c"].to_numpy()[:24],
                               [11.0 + h for h in range(24)], atol=1e-9)
