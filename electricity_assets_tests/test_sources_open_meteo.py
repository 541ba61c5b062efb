"""Open-Meteo parser and client, serving the real archive bodies byte-for-byte from a local server.

`fixtures/open_meteo_archive_US-CAL-CISO_2020*.json`: a real archive response for San Jose, CA
(2020, timezone America/Los_Angeles, constant utc_offset_seconds=-25200, old variable spellings
`windspeed_10m`/`cloudcover`, no precipitation), and the same cut to its first 48 hours.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from electricity_assets.datasets import WEATHER
from electricity_assets.regions import REGIONS, WeatherPoint
from electricity_assets.sources.http import HttpSettings
from electricity_assets.sources.live import fetch_live
from electricity_assets.sources.open_meteo import (
    OpenMeteoClient,
    OpenMeteoError,
    parse_hourly,
    split_by_source,
)
from electricity_assets_tests.conftest import FIXTURES

YEAR_FILE = FIXTURES / "open_meteo_archive_US-CAL-CISO_2020.json"
FIRST48_FILE = FIXTURES / "open_meteo_archive_US-CAL-CISO_2020_first48h.json"
SAN_JOSE = REGIONS["CAL"].weather_points[0]
COLUMNS = ["region", "station", "period_utc", "temperature_c", "dewpoint_c",
           "relative_humidity", "wind_speed_kmh", "precipitation_mm"]
FAST = {"max_retries": 1, "backoff_factor": 0, "timeout_s": 5}


@pytest.fixture(scope="session")
def year_bytes() -> bytes:
    return YEAR_FILE.read_bytes()


@pytest.fixture(scope="session")
def year_body(year_bytes: bytes) -> dict[str, Any]:
    return json.loads(year_bytes)


@pytest.fixture(scope="session")
def first48() -> dict[str, Any]:
    return json.loads(FIRST48_FILE.read_text())


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def om_client(server: HTTPServer) -> OpenMeteoClient:
    return OpenMeteoClient(archive_url=server.url_for("/v1/archive"),
                           forecast_url=server.url_for("/v1/forecast"), **FAST)


def test_parse_real_year_body(year_body: dict[str, Any]) -> None:
    frame = parse_hourly(year_body, "CAL")

    assert list(frame.columns) == COLUMNS
    assert len(frame) == 8784  # 2020 is a leap year
    # Local 2020-01-01T00:00 with the response's constant offset -25200 s is 07:00 UTC.
    first = frame.iloc[0]
    assert first["period_utc"] == utc("2020-01-01T07:00")
    assert (first["temperature_c"], first["relative_humidity"], first["wind_speed_kmh"]) == (
        11.1, 70.0, 2.6)
    assert np.isnan(first["precipitation_mm"])  # not requested in that body
    assert frame["period_utc"].iloc[1] == utc("2020-01-01T08:00")
    assert frame["temperature_c"].iloc[1] == 8.3
    # One constant offset for the whole year: strictly hourly, no DST gap or repeat.
    assert frame["period_utc"].diff().dropna().eq(pd.Timedelta(hours=1)).all()
    last = frame.iloc[-1]
    assert last["period_utc"] == utc("2021-01-01T06:00")
    assert last["temperature_c"] == year_body["hourly"]["temperature_2m"][-1]
    assert last["wind_speed_kmh"] == year_body["hourly"]["windspeed_10m"][-1]


def test_both_wind_and_humidity_spellings_parse_alike(first48: dict[str, Any]) -> None:
    new = copy.deepcopy(first48)
    new["hourly"]["wind_speed_10m"] = new["hourly"].pop("windspeed_10m")
    old = copy.deepcopy(first48)
    old["hourly"]["relativehumidity_2m"] = old["hourly"].pop("relative_humidity_2m")

    expected = parse_hourly(first48, "CAL")
    assert expected["wind_speed_kmh"].notna().all()
    assert expected["relative_humidity"].notna().all()
    pd.testing.assert_frame_equal(parse_hourly(new, "CAL"), expected)
    pd.testing.assert_frame_equal(parse_hourly(old, "CAL"), expected)


def test_utc_body_and_precipitation_and_nulls(first48: dict[str, Any]) -> None:
    body = copy.deepcopy(first48)
    body["utc_offset_seconds"] = 0
    body["hourly"]["precipitation"] = [0.0] * 47 + [1.4]
    body["hourly"]["temperature_2m"][2] = None

    frame = parse_hourly(body, "CAL")

    assert frame["period_utc"].iloc[0] == utc("2020-01-01T00:00")
    assert frame["precipitation_mm"].iloc[-1] == 1.4
    assert np.isnan(frame["temperature_c"].iloc[2])


def test_inconsistent_or_shapeless_bodies_are_errors(first48: dict[str, Any]) -> None:
    short = copy.deepcopy(first48)
    short["hourly"]["temperature_2m"] = short["hourly"]["temperature_2m"][:10]
    with pytest.raises(OpenMeteoError, match="temperature_2m has 10 values for 48 times"):
        parse_hourly(short, "CAL")
    with pytest.raises(OpenMeteoError, match="no 'hourly.time'"):
        parse_hourly({"latitude": 1.0}, "CAL")


def test_archive_year_served_byte_for_byte(httpserver: HTTPServer, year_bytes: bytes) -> None:
    httpserver.expect_request("/v1/archive").respond_with_data(
        year_bytes, content_type="application/json")

    weather = om_client(httpserver).fetch_region_weather(
        "CAL", [SAN_JOSE], utc("2020-01-01T07:00"), utc("2021-01-01T07:00"), kind="archive")

    assert list(weather.columns) == COLUMNS
    assert len(weather) == 8784
    assert (weather["region"] == "CAL").all()
    assert (weather["station"] == "open-meteo:San Jose, CA").all()
    assert weather["dewpoint_c"].isna().all()  # the recorded body did not ask for dew point
    assert weather["period_utc"].iloc[0] == utc("2020-01-01T07:00")
    assert weather["temperature_c"].iloc[0] == 11.1
    (request, _), = httpserver.log
    args = request.args
    assert (float(args["latitude"]), float(args["longitude"])) == (37.434093, -121.95479)
    assert args["hourly"] == ("temperature_2m,dew_point_2m,relative_humidity_2m,wind_speed_10m,"
                              "precipitation")
    assert args["timezone"] == "UTC"
    assert (args["start_date"], args["end_date"]) == ("2020-01-01", "2021-01-01")


def test_window_filter_is_half_open(httpserver: HTTPServer, year_bytes: bytes) -> None:
    httpserver.expect_request("/v1/archive").respond_with_data(
        year_bytes, content_type="application/json")

    weather = om_client(httpserver).fetch_region_weather(
        "CAL", [SAN_JOSE], utc("2020-01-02T00:00"), utc("2020-01-03T00:00"))

    assert len(weather) == 24
    assert weather["period_utc"].min() == utc("2020-01-02T00:00")
    assert weather["period_utc"].max() == utc("2020-01-02T23:00")
    args = httpserver.log[0][0].args
    assert (args["start_date"], args["end_date"]) == ("2020-01-02", "2020-01-02")


def test_each_point_keeps_its_own_rows(httpserver: HTTPServer, first48: dict[str, Any]) -> None:
    warmer = copy.deepcopy(first48)
    warmer["hourly"]["temperature_2m"] = [t + 4.0 for t in warmer["hourly"]["temperature_2m"]]
    del warmer["hourly"]["windspeed_10m"]  # a point lacking a variable has NaN there only

    def handle(request: Request) -> Response:
        chosen = warmer if float(request.args["latitude"]) > 40 else first48
        return Response(json.dumps(chosen), content_type="application/json")

    httpserver.expect_request("/v1/archive").respond_with_handler(handle)
    north = WeatherPoint("Somewhere north", 41.0, -122.0)

    weather = om_client(httpserver).fetch_region_weather(
        "XYZ", [SAN_JOSE, north], utc("2020-01-01T07:00"), utc("2020-01-01T10:00"))

    assert len(httpserver.log) == 2
    by_point = {station: rows for station, rows in weather.groupby("station")}
    assert sorted(by_point) == ["open-meteo:San Jose, CA", "open-meteo:Somewhere north"]
    south, warm = by_point["open-meteo:San Jose, CA"], by_point["open-meteo:Somewhere north"]
    assert south["period_utc"].tolist() == [utc("2020-01-01T07:00"), utc("2020-01-01T08:00"),
                                            utc("2020-01-01T09:00")]
    assert (warm["temperature_c"].to_numpy() - south["temperature_c"].to_numpy()).tolist() == \
        pytest.approx([4.0, 4.0, 4.0])
    assert south["wind_speed_kmh"].notna().all() and warm["wind_speed_kmh"].isna().all()
    assert (weather["region"] == "XYZ").all()


def test_a_long_archive_backfill_asks_a_year_at_a_time(httpserver: HTTPServer,
                                                       year_bytes: bytes) -> None:
    httpserver.expect_request("/v1/archive").respond_with_data(
        year_bytes, content_type="application/json")

    om_client(httpserver).fetch_point(SAN_JOSE, utc("2017-07-01T00:00"),
                                      utc("2020-04-02T00:00"), kind="archive")

    spans = [(r.args["start_date"], r.args["end_date"]) for r, _ in httpserver.log]
    assert len(spans) == 3
    assert spans[0][0] == "2017-07-01" and spans[-1][1] == "2020-04-01"
    for (_, end), (start, _) in zip(spans[:-1], spans[1:], strict=True):
        assert pd.Timestamp(start) - pd.Timestamp(end) == pd.Timedelta(days=1)  # no gap


def test_error_body_carries_the_reason(httpserver: HTTPServer) -> None:
    reason = "Parameter 'start_date' is out of allowed range from 1940-01-01 to 2026-11-23"
    httpserver.expect_request("/v1/archive").respond_with_json(
        {"error": True, "reason": reason}, status=400)

    with pytest.raises(OpenMeteoError) as info:
        om_client(httpserver).fetch_region_weather(
            "CAL", [SAN_JOSE], utc("1900-01-01T00:00"), utc("1900-01-02T00:00"))

    assert info.value.reason == reason and info.value.status == 400
    assert reason in str(info.value) and "HTTP 400" in str(info.value)
    assert len(httpserver.log) == 1  # a 400 is not retried


def test_truncated_body(httpserver: HTTPServer, year_bytes: bytes) -> None:
    httpserver.expect_request("/v1/archive").respond_with_data(
        year_bytes[:5000], content_type="application/json")

    with pytest.raises(OpenMeteoError, match="not valid JSON"):
        om_client(httpserver).fetch_region_weather(
            "CAL", [SAN_JOSE], utc("2020-01-01T07:00"), utc("2020-01-02T07:00"))


def test_503_retried_then_reported(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v1/archive").respond_with_json(
        {"error": True, "reason": "Too many concurrent requests"}, status=503)

    with pytest.raises(OpenMeteoError, match="HTTP 503.*Too many concurrent requests") as info:
        om_client(httpserver).fetch_region_weather(
            "CAL", [SAN_JOSE], utc("2020-01-01T07:00"), utc("2020-01-02T07:00"))

    assert info.value.status == 503
    assert len(httpserver.log) == 2  # first try + 1 retry


def test_forecast_request_uses_hour_bounds(httpserver: HTTPServer,
                                           first48: dict[str, Any]) -> None:
    httpserver.expect_request("/v1/forecast").respond_with_json(first48)

    weather = om_client(httpserver).fetch_region_weather(
        "CAL", [SAN_JOSE], utc("2020-01-01T07:00"), utc("2020-01-01T13:00"), kind="forecast")

    args = httpserver.log[0][0].args
    assert (args["start_hour"], args["end_hour"]) == ("2020-01-01T07:00", "2020-01-01T12:00")
    assert "start_date" not in args
    assert len(weather) == 6


def test_split_by_source() -> None:
    now = datetime(2026, 11, 24, 15, 30, tzinfo=UTC)
    boundary = datetime(2026, 11, 19, tzinfo=UTC)  # midnight UTC, 5 days back
    old = (datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 10, 2, tzinfo=UTC))
    assert split_by_source(*old, now) == [("archive", *old)]
    recent = (datetime(2026, 11, 23, tzinfo=UTC), datetime(2026, 11, 25, tzinfo=UTC))
    assert split_by_source(*recent, now) == [("forecast", *recent)]
    across = (datetime(2026, 11, 18, tzinfo=UTC), datetime(2026, 11, 20, tzinfo=UTC))
    assert split_by_source(*across, now) == [("archive", across[0], boundary),
                                             ("forecast", boundary, across[1])]


def test_fetch_live_weather_splits_archive_and_forecast(httpserver: HTTPServer,
                                                        first48: dict[str, Any]) -> None:
    """A window across the archive boundary asks each API for its part; columns as WEATHER."""
    utc_body = copy.deepcopy(first48)
    utc_body["utc_offset_seconds"] = 0  # what timezone=UTC returns
    httpserver.expect_request("/v1/archive").respond_with_json(utc_body)
    httpserver.expect_request("/v1/forecast").respond_with_json(utc_body)
    now = datetime(2020, 1, 6, 12, tzinfo=UTC)  # archive boundary: 2020-01-01T00Z

    rows, rejected = fetch_live(
        WEATHER, datetime(2019, 12, 31, 22, tzinfo=UTC), datetime(2020, 1, 1, 3, tzinfo=UTC),
        ["CAL", "NOWHERE"], archive_url=httpserver.url_for("/v1/archive"),
        forecast_url=httpserver.url_for("/v1/forecast"), now=now,
        http=HttpSettings(max_retries=0, backoff_factor=0, timeout_s=5))

    assert tuple(rows.columns) == WEATHER.columns
    assert rejected.empty
    points = REGIONS["CAL"].weather_points
    assert len(points) >= 3
    # Every point of the region, each from both APIs.
    assert [req.path for req, _ in httpserver.log] == ["/v1/archive", "/v1/forecast"] * len(points)
    asked = {(float(r.args["latitude"]), float(r.args["longitude"])) for r, _ in httpserver.log}
    assert asked == {(p.latitude, p.longitude) for p in points}
    assert httpserver.log[1][0].args["start_hour"] == "2020-01-01T00:00"
    # The body starts at 2020-01-01T00Z, so the archive part (before it) is empty.
    assert sorted(set(rows["period_utc"])) == [utc("2020-01-01T00:00") + timedelta(hours=h)
                                               for h in range(3)]
    assert sorted(set(rows["station"])) == sorted(p.station for p in points)
    assert set(rows["region"]) == {"CAL"}  # NOWHERE has no weather points: skipped


def test_fetch_live_weather_fetches_a_shared_point_once(httpserver: HTTPServer,
                                                        first48: dict[str, Any]) -> None:
    """US48 uses each region's main point: asked together with CAL, San Jose is fetched once
    and filed under CAL, its home region."""
    httpserver.expect_request("/v1/archive").respond_with_json(first48)
    rows, _ = fetch_live(
        WEATHER, datetime(2020, 1, 1, 7, tzinfo=UTC), datetime(2020, 1, 1, 9, tzinfo=UTC),
        ["CAL", "US48"], archive_url=httpserver.url_for("/v1/archive"),
        forecast_url=httpserver.url_for("/v1/forecast"), now=datetime(2024, 1, 1, tzinfo=UTC),
        http=HttpSettings(max_retries=0, backoff_factor=0, timeout_s=5))
    expected = {p.station for code in ("CAL", "US48") for p in REGIONS[code].weather_points}
    assert len(httpserver.log) == len(expected)
    assert set(rows["station"]) == expected
    assert rows.loc[rows["station"] == SAN_JOSE.station, "region"].unique().tolist() == ["CAL"]
