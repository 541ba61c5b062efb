"""Sources never delete each other's rows: streamed rows (real broker, real ingest path) survive a
bulk re-materialisation of their window, and the raw tables hold the latest published value."""

from __future__ import annotations

import json
import time
import warnings
from datetime import UTC, datetime

import dagster as dg
import duckdb
import pandas as pd
import pytest
from confluent_kafka.admin import AdminClient

from electricity_assets import storage
from electricity_assets.assets.raw import raw_assets
from electricity_assets.datasets import DEMAND, WEATHER
from electricity_assets.features.demand import compute_demand_features
from electricity_assets.features.weather import region_weather
from electricity_assets.settings import PACKAGE_DATA_DIR, KafkaSettings
from electricity_assets.sources.bundled import read_bundled
from electricity_assets.streaming.client import ensure_topics, new_producer
from electricity_assets.streaming.ingest import format_offsets, ingest_offsets, parse_offsets
from electricity_assets.streaming.messages import encode_frame
from electricity_assets_tests.test_assets_raw import RANGE_TAGS, _resources, _rows
from electricity_assets_tests.test_streaming_ingest import publish

warnings.filterwarnings("ignore", category=dg.BetaWarning)

H20, H21, H22 = (datetime(2020, 3, 25, h, tzinfo=UTC) for h in (20, 21, 22))
WINDOW = ("2020-03-25-20:00", "2020-03-25-23:00")


def _window_run(db: str) -> dg.ExecuteInProcessResult:
    """The scheduled/backfill run over the window: both raw assets from the bundled replay."""
    result = dg.materialize(raw_assets, resources=_resources(db),
                            tags=dict(zip(RANGE_TAGS, WINDOW, strict=True)))
    assert result.success
    return result


def _demand(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["region", "period_utc", "type", "value_mwh"])


def _stream(settings: KafkaSettings, db: str) -> tuple[float, list[tuple]]:
    """The issue's repro on the real broker: CAL D 21:00Z = 99999, 22:00Z = 88888, a region the
    bundle lacks (NEWBA) for both hours, and a plausible CAL correction at 20:00Z; a NEWBA
    weather row. Ingested by the stream run's own code. Returns the corrected CAL value."""
    bundled = read_bundled(DEMAND, H20, H21, PACKAGE_DATA_DIR)
    corrected = bundled.loc[(bundled["region"] == "CAL") & (bundled["type"] == "D"),
                            "value_mwh"].item() + 1234.0
    demand = _demand([("CAL", H21, "D", 99999.0), ("CAL", H22, "D", 88888.0),
                      ("NEWBA", H21, "D", 5100.0), ("NEWBA", H22, "D", 5300.0),
                      ("CAL", H20, "D", corrected)])
    weather = pd.DataFrame({"region": ["NEWBA"], "station": [storage.REGION_MEAN_STATION],
                            "period_utc": [H21], "temperature_c": [31.5], "dewpoint_c": [None],
                            "relative_humidity": [40.0], "wind_speed_kmh": [5.0],
                            "precipitation_mm": [0.0]})
    with duckdb.connect(db) as conn:
        for dataset, frame in ((DEMAND, demand), (WEATHER, weather)):
            offsets = publish(settings, dataset, list(encode_frame(dataset, frame, "replay")))
            result = ingest_offsets(conn, dataset, offsets, settings)
            assert result.rows_written == len(frame) and result.dead_letters == 0
    streamed = [tuple(r) for r in demand.itertuples(index=False)]
    return corrected, streamed


@pytest.mark.parametrize("pulled_before", [True, False],
                         ids=["window pulled before the stream", "stream first"])
def test_a_window_rerun_keeps_every_streamed_row_and_the_features_use_them(
        kafka_settings: KafkaSettings, duckdb_path: str, pulled_before: bool) -> None:
    if pulled_before:
        _window_run(duckdb_path)  # e.g. the first-run seed loaded these hours
    corrected, streamed = _stream(kafka_settings, duckdb_path)

    result = _window_run(duckdb_path)  # the :05 schedule tick / a backfill of these hours
    bundled = _rows(duckdb_path, "SELECT count(*) FROM raw_demand_by_source "
                                 "WHERE source = 'bundled'")[0][0]

    # 0 streamed rows lost: every one stored, and the one in use for its key.
    kept = _rows(duckdb_path, "SELECT region, period_utc, type, value_mwh FROM "
                              "raw_demand_by_source WHERE source = 'kafka' ORDER BY ALL")
    assert kept == sorted(streamed)
    in_use = _rows(duckdb_path, "SELECT region, period_utc, type, value_mwh FROM raw_demand "
                                "WHERE source = 'kafka' ORDER BY ALL")
    assert in_use == sorted(streamed)
    assert _rows(duckdb_path, "SELECT count(*) FROM raw_demand")[0][0] == bundled + 2  # NEWBA
    with duckdb.connect(duckdb_path) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        cal_sources = conn.execute(
            "SELECT source FROM raw_demand_by_source WHERE region = 'CAL' AND type = 'D' "
            "AND period_utc = ? ORDER BY 1", [H21]).fetchall()
        assert cal_sources == [("bundled",), ("kafka",)]  # the bulk row kept under it
        assert conn.execute("SELECT temperature_c, source FROM raw_weather WHERE region = "
                            "'NEWBA'").fetchall() == [(31.5, "kafka")]
        # The features read the rule's pick: the correction, and the region only the stream has.
        features = compute_demand_features(conn, H20, H22 + pd.Timedelta(hours=1))
        weather = region_weather(conn, H20, H22 + pd.Timedelta(hours=1))
    at = features.set_index(["region", "period_utc"])["demand_mwh"]
    assert at[("CAL", pd.Timestamp(H20))] == corrected
    assert at[("NEWBA", pd.Timestamp(H21))] == 5100.0
    newba = weather[weather["region"] == "NEWBA"]
    assert newba[["temperature_c", "weather_source"]].values.tolist() == [[31.5, "kafka"]]

    meta = result.asset_materializations_for_node("raw_demand")[-1].metadata
    assert meta["streamed_rows"].value == len(streamed)
    assert "| kafka | 5 | 5 |" in meta["rows_by_source"].value
    assert meta["dagster/row_count"].value == bundled  # the bundled rows it wrote
    weather_meta = result.asset_materializations_for_node("raw_weather")[-1].metadata
    assert weather_meta["streamed_rows"].value == 1


def test_the_order_of_stream_and_window_runs_does_not_matter(
        kafka_settings: KafkaSettings, duckdb_path: str, isolated_home) -> None:
    """window run -> stream -> window run, and stream -> window run, give the same raw table:
    a bulk pull never overrides a published message, whenever it runs."""
    _window_run(duckdb_path)
    _stream(kafka_settings, duckdb_path)
    _window_run(duckdb_path)
    other = str(isolated_home / "other.duckdb")
    whole_topic = publish(kafka_settings, DEMAND, [])  # the same messages, read first here
    with duckdb.connect(other) as conn:
        ingest_offsets(conn, DEMAND, whole_topic, kafka_settings)
    _window_run(other)
    query = ("SELECT region, period_utc, type, value_mwh, source FROM raw_demand "
             "ORDER BY ALL")
    assert _rows(other, query) == _rows(duckdb_path, query)


def _produce(settings: KafkaSettings, topic: str, partition: int, value: float) -> None:
    producer = new_producer(settings)
    payload = {"region": "CAL", "period_utc": "2020-03-25T21:00:00Z", "type": "D",
               "value_mwh": value, "source": "correction", "produced_at": "2020-03-25T22:00:00Z"}
    producer.produce(topic, value=json.dumps(payload).encode(), key=None, partition=partition)
    assert producer.flush(10) == 0


@pytest.mark.parametrize("runs", ["one run", "a run per partition"])
def test_the_latest_published_correction_wins_whatever_partition_it_is_in(
        kafka_settings: KafkaSettings, duckdb_path: str, runs: str) -> None:
    """Corrections without a key land in any partition and partitions are read one after the
    other: the older value sits in the partition read last, and must still lose."""
    topic = kafka_settings.topic(DEMAND)
    ensure_topics(kafka_settings, [topic])
    _produce(kafka_settings, topic, 2, 30000.0)  # published first...
    time.sleep(0.05)
    _produce(kafka_settings, topic, 0, 31000.0)  # ...corrected later, in a partition read first
    whole = {0: (0, 1), 2: (0, 1)}
    with duckdb.connect(duckdb_path) as conn:
        if runs == "one run":
            ingest_offsets(conn, DEMAND, format_offsets(topic, whole), kafka_settings)
        else:
            for partition in (0, 2):  # the newer one stored first, the older one read after
                ingest_offsets(conn, DEMAND, format_offsets(topic, {partition: whole[partition]}),
                               kafka_settings)
    assert _rows(duckdb_path, "SELECT value_mwh FROM raw_demand") == [(31000.0,)]


def test_a_database_from_before_sources_were_kept_apart_upgrades_in_place(
        duckdb_path: str) -> None:
    with duckdb.connect(duckdb_path) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        conn.execute("CREATE TABLE raw_demand (region VARCHAR NOT NULL, period_utc TIMESTAMPTZ "
                     "NOT NULL, type VARCHAR NOT NULL, value_mwh DOUBLE, source VARCHAR NOT NULL, "
                     "ingested_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (region, period_utc, type))")
        conn.execute("INSERT INTO raw_demand VALUES "
                     "('CAL', '2020-03-25 21:00+00', 'D', 99999, 'kafka', now()), "
                     "('NEWBA', '2020-03-25 21:00+00', 'D', 5100, 'kafka', now())")
        conn.execute("CREATE TABLE dead_letters (topic VARCHAR NOT NULL, kafka_partition INTEGER "
                     "NOT NULL, kafka_offset BIGINT NOT NULL, payload VARCHAR, reason VARCHAR "
                     "NOT NULL, received_at TIMESTAMPTZ NOT NULL, "
                     "PRIMARY KEY (topic, kafka_partition, kafka_offset))")
        conn.execute("INSERT INTO dead_letters VALUES ('t', 0, 7, '{oops', 'not JSON', now())")
        storage.ensure_tables(conn)
        storage.ensure_tables(conn)  # idempotent
        assert conn.execute("SELECT count(*) FROM raw_demand_by_source WHERE source = 'kafka' "
                            "AND published_at = ingested_at").fetchone() == (2,)
        assert conn.execute("SELECT topic, topic_id, kafka_offset, reason FROM dead_letters"
                            ).fetchall() == [("t", "", 7, "not JSON")]
    _window_run(duckdb_path)
    assert _rows(duckdb_path, "SELECT region, value_mwh, source FROM raw_demand WHERE "
                              "period_utc = '2020-03-25 21:00+00' AND type = 'D' AND region IN "
                              "('CAL', 'NEWBA') ORDER BY 1") == [
        ("CAL", 99999.0, "kafka"), ("NEWBA", 5100.0, "kafka")]


def test_dead_letters_only_grow_when_the_topic_is_recreated(
        kafka_settings: KafkaSettings, duckdb_path: str) -> None:
    """The same offsets of a new incarnation of the topic are new dead letters, never
    replacements of the old ones; re-reading one incarnation adds nothing."""
    from electricity_assets.streaming.client import topic_ids

    def bad(n: int, tag: str) -> list[tuple[bytes, bytes]]:
        return [(b"CAL", f"{{oops {tag} {i}".encode()) for i in range(n)]

    topic = kafka_settings.topic(DEMAND)
    first = publish(kafka_settings, DEMAND, bad(6, "first"))
    with duckdb.connect(duckdb_path) as conn:
        ingest_offsets(conn, DEMAND, first, kafka_settings)
        ingest_offsets(conn, DEMAND, first, kafka_settings)  # a retried run: nothing added
    assert _rows(duckdb_path, "SELECT count(*) FROM dead_letters") == [(6,)]

    admin = AdminClient(kafka_settings.client_config())
    admin.delete_topics([topic], operation_timeout=10)[topic].result()
    second = publish(kafka_settings, DEMAND, bad(4, "second"))  # offsets 0.. again
    _, ranges, _ = parse_offsets(second)
    planned = format_offsets(topic, ranges, topic_ids(kafka_settings, [topic])[topic])
    with duckdb.connect(duckdb_path) as conn:
        ingest_offsets(conn, DEMAND, planned, kafka_settings)
    letters = _rows(duckdb_path, "SELECT payload FROM dead_letters ORDER BY payload")
    assert len(letters) == 10
    assert sum("first" in p for (p,) in letters) == 6
    assert _rows(duckdb_path, "SELECT count(DISTINCT topic_id) FROM dead_letters") == [(2,)]


def test_a_demand_message_on_the_weather_topic_is_a_dead_letter(
        kafka_settings: KafkaSettings, duckdb_path: str) -> None:
    frame = _demand([("CAL", H21, "D", 30000.0)])
    offsets = publish(kafka_settings, WEATHER, list(encode_frame(DEMAND, frame, "replay")))
    with duckdb.connect(duckdb_path) as conn:
        result = ingest_offsets(conn, WEATHER, offsets, kafka_settings)
    assert (result.rows_written, result.dead_letters) == (0, 1)
    assert _rows(duckdb_path, "SELECT count(*) FROM raw_weather") == [(0,)]
    (reason,) = _rows(duckdb_path, "SELECT reason FROM dead_letters")[0]
    assert reason.startswith("no weather value") and "demand message" in reason


def _replay_folder(tmp_path, stations: list[str]):
    import gzip

    from electricity_assets_tests.test_assets_raw import STATION_HEADER

    folder = tmp_path / "replay"
    folder.mkdir()
    with gzip.open(PACKAGE_DATA_DIR / "eia930_hourly.csv.gz", "rt") as src:
        header, *lines = src.read().splitlines()
    with gzip.open(folder / "eia930_hourly.csv.gz", "wt") as dst:
        dst.write("\n".join([header, *(x for x in lines if x.startswith("2020-01-01T0"))]))
    with gzip.open(folder / "weather_stations_hourly.csv.gz", "wt") as dst:
        dst.write("\n".join([STATION_HEADER, *stations]) + "\n")
    return folder


def test_a_value_that_is_no_finite_number_is_rejected_and_counted(
        duckdb_path: str, tmp_path) -> None:
    dfw = "722590,Dallas-Fort Worth Intl,TX,TEX,32.9,-97.04"
    folder = _replay_folder(tmp_path, [
        f"{dfw},2020-01-01T00:00:00Z,5.0,1.0,70",
        f"{dfw},2020-01-01T01:00:00Z,abc,1.0,70",
        f"{dfw},2020-01-01T02:00:00Z,nan,1.0,70",
        f"{dfw},2020-01-01T03:00:00Z,6.0,NaN,70",
        f"{dfw},2020-01-01T04:00:00Z,7.0,1.0,inf",
        f"{dfw},2020-01-01T05:00:00Z,8.0,,70",  # empty: a missing value, kept
    ])
    result = dg.materialize(raw_assets, resources=_resources(duckdb_path, folder),
                            tags=dict(zip(RANGE_TAGS, ("2020-01-01-00:00", "2020-01-01-05:00"),
                                          strict=True)))
    assert _rows(duckdb_path, "SELECT hour(period_utc), temperature_c, dewpoint_c FROM "
                              "raw_weather ORDER BY 1") == [(0, 5.0, 1.0), (5, 8.0, None)]
    meta = result.asset_materializations_for_node("raw_weather")[-1].metadata
    assert meta["rejected_rows"].value == 4


def test_station_names_are_escaped_in_markdown_metadata(duckdb_path: str, tmp_path) -> None:
    from electricity_assets_tests.test_assets_raw import raw_checks

    hostile = "X|<img src=x>*[a](http://e)"
    folder = _replay_folder(tmp_path, [
        f"{hostile},Nowhere,TX,TEX,32.0,-97.0,2020-01-01T00:00:00Z,1.0,0.0,80"])
    result = dg.materialize([*raw_assets, *raw_checks("implausible_values:raw_weather")],
                            resources=_resources(duckdb_path, folder),
                            tags=dict(zip(RANGE_TAGS, ("2020-01-01-00:00", "2020-01-01-05:00"),
                                          strict=True)))
    assert _rows(duckdb_path, "SELECT station FROM raw_weather") == [(hostile,)]
    shown = [result.asset_materializations_for_node("raw_weather")[-1].metadata["coverage"],
             *(e.metadata["examples"] for e in result.get_asset_check_evaluations()
               if e.check_name == "implausible_values" and e.asset_key.path == ["raw_weather"])]
    assert len(shown) == 2
    escaped = r"X\|\<img src=x\>\*\[a\]\(http://e\)"
    for value in shown:
        assert escaped in value.value and hostile not in value.value
        # Every table row still has the header's number of cells.
        lines = [x for x in value.value.splitlines() if x.startswith("|")]
        assert len({x.replace(r"\|", "").count("|") for x in lines}) == 1


def test_a_rerun_writes_what_changed_and_drops_what_its_source_no_longer_has(
        duckdb_path: str) -> None:
    """replace_source_window on its own: a changed value replaces the old one, a row the pull no
    longer has leaves (a streamed row of that key then is the pick), an unchanged row stays."""
    start, end = H20, H22 + pd.Timedelta(hours=1)

    def pull(values: dict[datetime, float]) -> pd.DataFrame:
        frame = _demand([("CAL", hour, "D", v) for hour, v in values.items()])
        return frame.assign(source="bundled", ingested_at=pd.Timestamp.now("UTC"),
                            published_at=pd.NaT)

    with duckdb.connect(duckdb_path) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        storage.replace_source_window(conn, "raw_demand", pull({H20: 1.0, H21: 2.0, H22: 3.0}),
                                      ["bundled"], start, end)
        first_22 = conn.execute("SELECT ingested_at FROM raw_demand WHERE period_utc = ?",
                                [H22]).fetchone()
        streamed = _demand([("CAL", H21, "D", 20.0)]).assign(
            source="kafka", ingested_at=pd.Timestamp.now("UTC"),
            published_at=pd.Timestamp.now("UTC"))
        storage.upsert_published(conn, "raw_demand", streamed)
        storage.replace_source_window(conn, "raw_demand", pull({H20: 1.5, H22: 3.0}),
                                      ["bundled"], start, end)
        stored = conn.execute("SELECT period_utc, value_mwh, source FROM raw_demand_by_source "
                              "ORDER BY ALL").fetchall()
        picked = conn.execute("SELECT period_utc, value_mwh, source FROM raw_demand "
                              "ORDER BY ALL").fetchall()
        assert conn.execute("SELECT ingested_at FROM raw_demand WHERE period_utc = ?",
                            [H22]).fetchone() == first_22  # unchanged: not rewritten
    assert [(h.hour, v, s) for h, v, s in stored] == [
        (20, 1.5, "bundled"), (21, 20.0, "kafka"), (22, 3.0, "bundled")]
    assert [(h.hour, v, s) for h, v, s in picked] == [
        (20, 1.5, "bundled"), (21, 20.0, "kafka"), (22, 3.0, "bundled")]


def test_a_replay_file_edited_in_place_is_read_again(tmp_path, monkeypatch) -> None:
    """Each large replay file is parsed once and kept as Parquet; an edit with the same size and
    (within the file system's timestamp resolution) the same modification time is still seen,
    and the cached read gives exactly what parsing the file gives."""
    import gzip
    import os

    from electricity_assets.sources import bundled
    from electricity_assets_tests.test_assets_raw import STATION_HEADER

    cache = tmp_path / "cache"
    monkeypatch.setenv("ELECTRICITY_CACHE_DIR", str(cache))
    monkeypatch.setattr(bundled, "CACHE_MIN_BYTES", 0)  # the test's files are small
    dfw = "722590,Dallas-Fort Worth Intl,TX,TEX,32.9,-97.04"
    folder = _replay_folder(tmp_path, [f"{dfw},2020-01-01T00:00:00Z,5.0,1.0,70",
                                       f"{dfw},2020-01-01T01:00:00Z,abc,1.0,70"])
    path = folder / "weather_stations_hourly.csv.gz"
    window = datetime(2020, 1, 1, tzinfo=UTC), datetime(2020, 1, 2, tzinfo=UTC)
    first = bundled.read_replay(WEATHER, *window, folder)
    assert first.rows["temperature_c"].tolist() == [5.0] and len(first.rejected) == 1
    assert len(list(cache.glob("weather-*.parquet"))) == 1
    stat = path.stat()
    with gzip.open(path, "wt") as dst:
        dst.write(f"{STATION_HEADER}\n{dfw},2020-01-01T00:00:00Z,6.0,1.0,70\n"
                  f"{dfw},2020-01-01T01:00:00Z,abc,1.0,70\n")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    cached = bundled.read_replay(WEATHER, *window, folder)
    assert cached.rows["temperature_c"].tolist() == [6.0]
    monkeypatch.setattr(bundled, "CACHE_MIN_BYTES", 1 << 40)  # parse, no cache
    parsed = bundled.read_replay(WEATHER, *window, folder)
    pd.testing.assert_frame_equal(cached.rows, parsed.rows)
    pd.testing.assert_frame_equal(cached.rejected.reset_index(drop=True),
                                  parsed.rejected.reset_index(drop=True))
    # A cache folder that cannot be made: the file is parsed on each read, with a warning.
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    monkeypatch.setenv("ELECTRICITY_CACHE_DIR", str(blocked))
    monkeypatch.setattr(bundled, "CACHE_MIN_BYTES", 0)
    pd.testing.assert_frame_equal(bundled.read_replay(WEATHER, *window, folder).rows, parsed.rows)


def test_an_unreadable_large_replay_file_fails_with_the_file_named(
        tmp_path, monkeypatch) -> None:
    from electricity_assets.sources import bundled

    cache = tmp_path / "cache"
    monkeypatch.setenv("ELECTRICITY_CACHE_DIR", str(cache))
    monkeypatch.setattr(bundled, "CACHE_MIN_BYTES", 0)
    folder = _replay_folder(tmp_path, [])
    (folder / "weather_stations_hourly.csv.gz").write_bytes(b"not gzip at all")
    window = datetime(2020, 1, 1, tzinfo=UTC), datetime(2020, 1, 2, tzinfo=UTC)
    with pytest.raises(bundled.BundledDataError, match="cannot read .*weather_stations_hourly"):
        bundled.read_replay(WEATHER, *window, folder)
