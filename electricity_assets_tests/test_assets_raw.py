"""Raw assets materialised with dagster.materialize on a temporary DuckDB file (real data)."""

import gzip
import warnings
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from electricity_assets.assets.raw import raw_asset_checks, raw_assets, raw_demand
from electricity_assets.resources import ElectricityDuckDB, KafkaResource, SourceResource
from electricity_assets.settings import PACKAGE_DATA_DIR

warnings.filterwarnings("ignore", category=dg.BetaWarning)

RANGE_TAGS = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def _resources(db: str, data_dir: Path = PACKAGE_DATA_DIR) -> dict:
    return {"duckdb": ElectricityDuckDB(database=db),
            "source": SourceResource(mode="bundled", data_dir=str(data_dir)),
            "kafka": KafkaResource()}


def _materialize(db: str, first: str, last: str, data_dir: Path = PACKAGE_DATA_DIR,
                 selection=raw_assets) -> dg.ExecuteInProcessResult:
    return dg.materialize(selection, resources=_resources(db, data_dir),
                          tags=dict(zip(RANGE_TAGS, (first, last), strict=True)))


def raw_checks(*names: str) -> list[dg.AssetChecksDefinition]:
    """The raw checks named "check:asset" that a test reads. Each check of a range run costs
    ~0.6 s of Dagster bookkeeping (it lists every hourly partition of the checked asset), so a
    test runs the ones it asserts on; test_instance_storage runs them all, as the UI does."""
    chosen = [c for c in raw_asset_checks
              if {f"{k.name}:{k.asset_key.to_user_string()}" for k in c.check_keys} & set(names)]
    assert len(chosen) == len(names), names
    return chosen


def _rows(db: str, sql: str) -> list[tuple]:
    with duckdb.connect(db, read_only=True) as conn:
        return conn.execute(sql).fetchall()


def test_window_rematerialised_and_overlapping_never_duplicates(duckdb_path: str) -> None:
    # 2020-01-01 00:00Z .. 23:00Z: 24 hours, 12 demand regions (D + DF), 3 Open-Meteo points
    # and the 17 NOAA stations.
    result = _materialize(duckdb_path, "2020-01-01-00:00", "2020-01-01-23:00")
    assert result.success
    first = _rows(duckdb_path, "SELECT count(*) FROM raw_demand")[0][0]
    assert first == 12 * 2 * 24
    by_source = dict(_rows(duckdb_path, "SELECT source, count(*) FROM raw_weather GROUP BY 1"))
    assert by_source["open_meteo"] == 3 * 24 - 7 - 4 - 5  # CAL/MIDA/TEX start at 07/04/05Z
    with duckdb.connect() as conn:
        in_file = conn.execute(
            "SELECT count(*) FROM read_csv(?) WHERE period_utc >= '2020-01-01T00:00:00Z' "
            "AND period_utc < '2020-01-02T00:00:00Z'",
            [str(PACKAGE_DATA_DIR / "weather_stations_hourly.csv.gz")]).fetchone()[0]
    assert by_source["noaa_lcd"] == in_file > 17 * 20
    assert _rows(duckdb_path, "SELECT count(DISTINCT station) FROM raw_weather "
                              "WHERE source = 'noaa_lcd'") == [(17,)]

    _materialize(duckdb_path, "2020-01-01-00:00", "2020-01-01-23:00")
    assert _rows(duckdb_path, "SELECT count(*) FROM raw_demand")[0][0] == first

    _materialize(duckdb_path, "2020-01-01-12:00", "2020-01-02-11:00")  # overlaps by 12 h
    total, distinct = _rows(
        duckdb_path,
        "SELECT count(*), count(DISTINCT (region, period_utc, type)) FROM raw_demand")[0]
    assert total == distinct == 12 * 2 * 36
    hours = _rows(duckdb_path, "SELECT count(DISTINCT period_utc) FROM raw_demand")[0][0]
    assert hours == 36


def test_materialisation_metadata_reports_window_regions_and_gaps(duckdb_path: str) -> None:
    result = _materialize(duckdb_path, "2015-07-01-05:00", "2015-07-02-04:00",
                          selection=[raw_demand])
    mats = result.asset_materializations_for_node("raw_demand")
    assert len(mats) == 24  # Dagster records one materialisation per hourly partition
    meta = mats[-1].metadata
    assert meta["dagster/row_count"].value == _rows(duckdb_path,
                                                      "SELECT count(*) FROM raw_demand")[0][0]
    assert "CAL" in meta["regions"].value and "US48" in meta["regions"].value
    assert meta["window_start"].value.startswith("2015-07-01T05:00")
    assert "| region |" in meta["preview"].value


def test_checks_flag_real_glitches_without_dropping_them(duckdb_path: str) -> None:
    # MIDA reported 53 MWh at 2017-11-06 05:00Z (median ~88,700): flagged, kept in raw.
    checks = raw_checks("no_duplicate_keys:raw_demand", "implausible_values:raw_demand")
    result = dg.materialize([*raw_assets, *checks], resources=_resources(duckdb_path),
                            tags=dict(zip(RANGE_TAGS, ("2017-11-05-00:00", "2017-11-07-23:00"),
                                          strict=True)))
    evaluations = {e.check_name + ":" + e.asset_key.to_user_string(): e
                   for e in result.get_asset_check_evaluations()}
    assert evaluations["no_duplicate_keys:raw_demand"].passed
    implausible = evaluations["implausible_values:raw_demand"]
    assert not implausible.passed
    assert implausible.severity == dg.AssetCheckSeverity.WARN
    assert "MIDA" in implausible.metadata["examples"].value
    assert _rows(duckdb_path, "SELECT count(*) FROM raw_demand WHERE region = 'MIDA' "
                              "AND type = 'D' AND value_mwh < 1000") == [(1,)]


def test_replay_folder_with_a_region_the_catalogue_lacks(duckdb_path: str, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # ERCO (ERCOT, the balancing authority behind TEX) is not in the region catalogue: the
    # replay source must ingest whatever regions its files hold.
    folder = tmp_path / "replay"
    folder.mkdir()
    for name, keep in (("eia930_hourly.csv.gz", ",TEX,"), ("weather_hourly.csv.gz", "TEX,")):
        with gzip.open(PACKAGE_DATA_DIR / name, "rt") as src:
            header, *lines = src.read().splitlines()
        picked = [line.replace("TEX", "ERCO") for line in lines
                  if keep in line and line.startswith(("2020-01-01", "TEX,2020-01-01"))]
        with gzip.open(folder / name, "wt") as dst:
            dst.write("\n".join([header, *picked]) + "\n")
    _materialize(duckdb_path, "2020-01-01-00:00", "2020-01-01-23:00", data_dir=folder)
    assert _rows(duckdb_path, "SELECT DISTINCT region FROM raw_demand") == [("ERCO",)]
    assert _rows(duckdb_path, "SELECT count(*) FROM raw_weather WHERE region = 'ERCO'") == [(19,)]


def test_missing_replay_file_fails_with_a_clear_message(duckdb_path: str, tmp_path: Path) -> None:
    with pytest.raises(Exception, match="ELECTRICITY_DATA_DIR must hold eia930_hourly.csv.gz"):
        _materialize(duckdb_path, "2020-01-01-00:00", "2020-01-01-01:00", data_dir=tmp_path,
                     selection=[raw_demand])


def test_definitions_load_and_validate() -> None:
    from electricity_assets.definitions import defs

    dg.Definitions.validate_loadable(defs)
    keys = {k.to_user_string() for k in defs.resolve_all_asset_keys()}
    assert {"raw_demand", "raw_weather"} <= keys


def test_api_mode_pulls_from_eia_and_keeps_the_key_out_of_storage_and_logs(
        duckdb_path: str, httpserver, monkeypatch: pytest.MonkeyPatch) -> None:
    # The real EIA v2 body shape with real bundled rows (CAL, TEX, 2020-01-01 00-02Z), served
    # by a local HTTP server standing in for api.eia.gov.
    body = (Path(__file__).parent / "fixtures" /
            "eia_region_data_CAL_TEX_2020-01-01T00-02.json").read_text()
    key = "test-key-0123456789abcdef"
    monkeypatch.setenv("EIA_API_KEY", key)
    httpserver.expect_request("/v2/electricity/rto/region-data/data/",
                              method="GET").respond_with_data(body,
                                                              content_type="application/json")
    resources = {"duckdb": ElectricityDuckDB(database=duckdb_path),
                 "source": SourceResource(mode="api", eia_api_key=dg.EnvVar("EIA_API_KEY"),
                                          eia_base_url=httpserver.url_for("/v2")),
                 "kafka": KafkaResource()}
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize([raw_demand], resources=resources, instance=instance,
                                tags=dict(zip(RANGE_TAGS, ("2020-01-01-00:00", "2020-01-01-02:00"),
                                              strict=True)))
        logs = " ".join(str(e.user_message) + str(e.dagster_event)
                        for e in instance.all_logs(result.run_id))
    assert result.success
    (request, _), = httpserver.log
    assert request.args["api_key"] == key and request.args["start"] == "2020-01-01T00"
    assert _rows(duckdb_path, "SELECT source, count(*), count(DISTINCT region) FROM raw_demand "
                              "GROUP BY source") == [("eia_api", 12, 2)]
    cal_first_hour = ("SELECT value_mwh FROM raw_demand WHERE region = 'CAL' AND type = 'D' "
                      "AND period_utc = '2020-01-01 00:00:00+00'")
    assert _rows(duckdb_path, cal_first_hour) == [(27723.0,)]
    assert key not in logs
    with duckdb.connect(duckdb_path, read_only=True) as conn:
        dump = conn.execute("SELECT * FROM raw_demand").df().to_csv()
    assert key not in dump


def test_replay_folder_without_weather_still_ingests_demand(duckdb_path: str,
                                                          tmp_path: Path) -> None:
    folder = tmp_path / "demand_only"
    folder.mkdir()
    (folder / "eia930_hourly.csv.gz").write_bytes(
        (PACKAGE_DATA_DIR / "eia930_hourly.csv.gz").read_bytes())
    assert _materialize(duckdb_path, "2020-01-01-00:00", "2020-01-01-05:00",
                        data_dir=folder).success
    assert _rows(duckdb_path, "SELECT count(*) FROM raw_demand") == [(12 * 2 * 6,)]
    assert _rows(duckdb_path, "SELECT count(*) FROM raw_weather") == [(0,)]


STATION_HEADER = ("station_id,station_name,state,region_hint,latitude,longitude,period_utc,"
                  "temperature_c,dewpoint_c,relative_humidity")


def test_station_file_with_bad_rows_ingests_the_valid_ones_and_flags_the_rest(
        duckdb_path: str, tmp_path: Path) -> None:
    folder = tmp_path / "replay"
    folder.mkdir()
    with gzip.open(PACKAGE_DATA_DIR / "eia930_hourly.csv.gz", "rt") as src:
        header, *lines = src.read().splitlines()
    with gzip.open(folder / "eia930_hourly.csv.gz", "wt") as dst:
        dst.write("\n".join([header, *(x for x in lines if x.startswith("2020-01-01T0"))]))
    dfw = "722590,Dallas-Fort Worth Intl,TX,TEX,32.9,-97.04"
    stations = [
        f"{dfw},2020-01-01T00:00:00Z,5.0,1.0,70",
        f"{dfw},2020-01-01T01:00:00Z,6.0,1.0,70",
        f"{dfw},2020-01-01T01:00:00Z,7.0,1.0,70",    # the same hour again: the later row wins
        # 02:00 missing: a gap
        f"{dfw},2020-01-01T03:00:00Z,62.0,1.0,70",   # beyond any record: kept and flagged
        f"{dfw},2020-01-01T02:00:00Z,99.0,1.0,70",   # not a reading at all: rejected
        f"{dfw},2020-01-01T04:30:00Z,8.0,1.0,70",    # not on the hour: rejected, never moved
        f"{dfw},2020-01-01T05:00:00Z,9.0,1.0,70",
        "999999,Somewhere New,TX,TEX,32.0,-97.0,2020-01-01T00:00:00Z,1.0,0.0,80",  # unknown
        "999998,Nowhere,TX,,32.0,-97.0,2020-01-01T00:00:00Z,1.0,0.0,80",  # no region at all
    ]
    with gzip.open(folder / "weather_stations_hourly.csv.gz", "wt") as dst:
        dst.write("\n".join([STATION_HEADER, *stations]) + "\n")

    checks = raw_checks("no_duplicate_keys:raw_weather", "implausible_values:raw_weather",
                        "missing_hours:raw_weather")
    result = dg.materialize([*raw_assets, *checks], resources=_resources(duckdb_path, folder),
                            tags=dict(zip(RANGE_TAGS, ("2020-01-01-00:00", "2020-01-01-05:00"),
                                          strict=True)))

    assert _rows(duckdb_path, "SELECT hour(period_utc), temperature_c FROM raw_weather "
                              "WHERE station = '722590' ORDER BY 1") == [
        (0, 5.0), (1, 7.0), (3, 62.0), (5, 9.0)]
    assert _rows(duckdb_path, "SELECT region, source FROM raw_weather "
                              "WHERE station = '999999'") == [("TEX", "noaa_lcd")]
    assert _rows(duckdb_path, "SELECT count(*) FROM raw_weather WHERE station = '999998'") == [
        (0,)]
    meta = result.asset_materializations_for_node("raw_weather")[-1].metadata
    assert meta["rejected_rows"].value == 4
    checks = {e.check_name + ":" + e.asset_key.to_user_string(): e
              for e in result.get_asset_check_evaluations()}
    assert checks["no_duplicate_keys:raw_weather"].passed
    implausible = checks["implausible_values:raw_weather"]
    assert not implausible.passed
    by_rule = implausible.metadata["by_rule"].value
    assert "temperature outside -60..60 C" in by_rule
    assert "station not in the region catalogue" in by_rule and "999999" in by_rule
    missing = checks["missing_hours:raw_weather"]
    assert missing.metadata["missing_hours"].value == 2  # 02:00 and 04:00 of 722590


def test_a_database_from_before_per_station_weather_keeps_its_rows(duckdb_path: str) -> None:
    from electricity_assets import storage

    with duckdb.connect(duckdb_path) as conn:
        conn.execute("CREATE TABLE raw_weather (region VARCHAR NOT NULL, period_utc TIMESTAMPTZ "
                     "NOT NULL, temperature_c DOUBLE, relative_humidity DOUBLE, wind_speed_kmh "
                     "DOUBLE, precipitation_mm DOUBLE, source VARCHAR NOT NULL, ingested_at "
                     "TIMESTAMPTZ NOT NULL, PRIMARY KEY (region, period_utc))")
        conn.execute("INSERT INTO raw_weather VALUES ('TEX', '2020-01-01 00:00+00', 5.0, 60, 10, "
                     "NULL, 'bundled', now())")
        storage.ensure_table(conn, "raw_weather")
        storage.ensure_table(conn, "raw_weather")  # idempotent
        assert conn.execute("SELECT region, station, temperature_c, dewpoint_c, source "
                            "FROM raw_weather").fetchall() == [
            ("TEX", "region-mean", 5.0, None, "bundled")]
