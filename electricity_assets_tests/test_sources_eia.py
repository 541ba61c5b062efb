"""EIA API v2 client against a real local HTTP server (pytest-httpserver).

Bodies follow the documented v2 shape and carry REAL EIA-930 rows from the bundled replay file
(`fixtures/eia_region_data_CAL_TEX_2020-01-01T00-02.json` was built the same way: CAL and TEX,
2020-01-01 00-02 UTC, values as strings as the API sends them since v2.1.6).
"""

from __future__ import annotations

import json
import logging
import socket
import time
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from electricity_assets.datasets import DEMAND
from electricity_assets.settings import PACKAGE_DATA_DIR
from electricity_assets.sources.bundled import read_bundled
from electricity_assets.sources.eia import (
    EIAAuthError,
    EIAClient,
    EIAConnectionError,
    EIAError,
    EIAHTTPError,
    EIAKeyMissingError,
    EIAResponseError,
)
from electricity_assets.sources.http import redact, redact_params
from electricity_assets.sources.live import fetch_live
from electricity_assets_tests.conftest import FIXTURES

KEY = "k3y-DO-NOT-LEAK-9f8e7d"
ROUTE = "/v2/electricity/rto/region-data/data/"
JAN1 = datetime(2020, 1, 1, tzinfo=UTC)


def at(hour: int) -> datetime:
    return JAN1.replace(hour=hour)


@pytest.fixture(scope="session")
def real_rows() -> list[dict[str, Any]]:
    """Real CAL rows (D and DF, 2020-01-01 00-03 UTC) in the API's row shape: 8 rows."""
    frame = read_bundled(DEMAND, at(0), at(4), PACKAGE_DATA_DIR)
    frame = frame[frame["region"] == "CAL"].sort_values(["period_utc", "type"])
    return [
        {"period": r.period_utc.strftime("%Y-%m-%dT%H"), "respondent": r.region,
         "respondent-name": "California", "type": r.type,
         "type-name": "Demand" if r.type == "D" else "Day-ahead demand forecast",
         "value": str(int(r.value_mwh)), "value-units": "megawatthours"}
        for r in frame.itertuples()
    ]


def body(rows: list[dict[str, Any]], total: int | str | None = None,
         warnings: list[dict[str, str]] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "total": str(len(rows) if total is None else total),
        "dateFormat": 'YYYY-MM-DD"T"HH', "frequency": "hourly", "data": rows,
        "description": "Hourly demand, day-ahead demand forecast, net generation, and interchange",
    }
    if warnings:
        response["warnings"] = warnings
    return {"response": response,
            "request": {"command": "/v2/electricity/rto/region-data/data/", "params": {}},
            "apiVersion": "2.1.8", "ExcelAddInVersion": "2.1.0"}


def client(server: HTTPServer, **kwargs: Any) -> EIAClient:
    options: dict[str, Any] = {"max_retries": 2, "backoff_factor": 0, "timeout_s": 5}
    return EIAClient(kwargs.pop("api_key", KEY), base_url=server.url_for("/v2"),
                     **{**options, **kwargs})


def paging_handler(rows: list[dict[str, Any]], cap: int | None = None,
                   total: bool = True, warn: bool = False):
    """Serves `rows[offset:offset+length]` like EIA, optionally capping the page size."""
    def handle(request: Request) -> Response:
        offset, length = int(request.args["offset"]), int(request.args["length"])
        page = rows[offset: offset + min(length, cap or length)]
        more = offset + len(page) < len(rows)
        warnings = [{"warning": "incomplete return", "description": "The API can only return "
                     "5000 rows in JSON format.  Please consider constraining your query with "
                     "facets or setting an offset."}] if warn and more else None
        payload = body(page, len(rows) if total else None, warnings)
        if not total:
            del payload["response"]["total"]
        return Response(json.dumps(payload), content_type="application/json")
    return handle


def client_log(caplog: pytest.LogCaptureFixture) -> str:
    """Everything our side logged; werkzeug's records belong to the stand-in EIA server."""
    return "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("werkzeug"))


def offsets(server: HTTPServer) -> list[int]:
    return [int(req.args["offset"]) for req, _ in server.log]


def test_saved_body_parses_to_real_values(httpserver: HTTPServer) -> None:
    raw = (FIXTURES / "eia_region_data_CAL_TEX_2020-01-01T00-02.json").read_bytes()
    httpserver.expect_request(ROUTE).respond_with_data(raw, content_type="application/json")

    result = client(httpserver).fetch_region_data(at(0), at(3), ["CAL", "TEX"])

    rows = result.rows
    assert list(rows.columns) == ["region", "period_utc", "type", "value_mwh"]
    assert len(rows) == 12 and result.rejected.empty
    assert str(rows["period_utc"].dt.tz) == "UTC"
    assert rows["value_mwh"].dtype == "float64"
    first = rows.iloc[0]
    assert (first["region"], first["period_utc"], first["type"], first["value_mwh"]) == (
        "CAL", pd.Timestamp("2020-01-01T00:00Z"), "D", 27723.0)
    # Same values as the bundled replay of the same hours.
    replay = read_bundled(DEMAND, at(0), at(3), PACKAGE_DATA_DIR)
    replay = replay[replay["region"].isin(["CAL", "TEX"])]
    merged = rows.merge(replay, on=["region", "period_utc", "type"], suffixes=("", "_replay"))
    assert len(merged) == 12
    assert (merged["value_mwh"] == merged["value_mwh_replay"]).all()


def test_request_parameters_follow_the_v2_contract(httpserver: HTTPServer,
                                                    real_rows: list[dict]) -> None:
    httpserver.expect_request(ROUTE).respond_with_handler(paging_handler(real_rows))

    client(httpserver).fetch_region_data(at(0), at(4), ["CAL", "TEX"])

    (request, _), = httpserver.log
    args = request.args
    assert args["api_key"] == KEY
    assert args["frequency"] == "hourly"
    assert args["data[0]"] == "value"
    assert args.getlist("facets[respondent][]") == ["CAL", "TEX"]
    assert args.getlist("facets[type][]") == ["D", "DF"]
    # Our window is half-open [00:00, 04:00); EIA's end is inclusive.
    assert (args["start"], args["end"]) == ("2020-01-01T00", "2020-01-01T03")
    assert (args["sort[0][column]"], args["sort[0][direction]"]) == ("period", "asc")
    assert (args["offset"], args["length"]) == ("0", "5000")


def test_pages_by_offset_until_total(httpserver: HTTPServer, real_rows: list[dict]) -> None:
    httpserver.expect_request(ROUTE).respond_with_handler(paging_handler(real_rows))

    result = client(httpserver, page_length=3).fetch_region_data(at(0), at(4), ["CAL"])

    assert offsets(httpserver) == [0, 3, 6]
    assert result.pages == 3
    assert len(result.rows) == 8
    assert result.rows["period_utc"].min() == pd.Timestamp("2020-01-01T00:00Z")
    assert result.rows["period_utc"].max() == pd.Timestamp("2020-01-01T03:00Z")
    assert not result.rows.duplicated(["region", "period_utc", "type"]).any()


def test_server_capped_pages_advance_by_rows_received(httpserver: HTTPServer,
                                                      real_rows: list[dict]) -> None:
    """EIA returns fewer rows than asked (5000 cap): the next offset follows what arrived."""
    httpserver.expect_request(ROUTE).respond_with_handler(paging_handler(real_rows, cap=3))

    result = client(httpserver, page_length=5).fetch_region_data(at(0), at(4), ["CAL"])

    assert offsets(httpserver) == [0, 3, 6]
    assert len(result.rows) == 8


def test_incomplete_return_warning_means_more_pages(httpserver: HTTPServer,
                                                    real_rows: list[dict]) -> None:
    """Without a total, the "incomplete return" warning alone keeps the paging going."""
    httpserver.expect_request(ROUTE).respond_with_handler(
        paging_handler(real_rows, cap=3, total=False, warn=True))

    result = client(httpserver, page_length=5).fetch_region_data(at(0), at(4), ["CAL"])

    assert offsets(httpserver) == [0, 3, 6]
    assert len(result.rows) == 8


def test_rows_outside_window_are_dropped(httpserver: HTTPServer, real_rows: list[dict]) -> None:
    httpserver.expect_request(ROUTE).respond_with_json(body(real_rows))

    rows = client(httpserver).fetch_region_data(at(1), at(3), ["CAL"]).rows

    assert sorted(rows["period_utc"].unique()) == [pd.Timestamp("2020-01-01T01:00Z"),
                                                   pd.Timestamp("2020-01-01T02:00Z")]


def test_bad_rows_are_rejected_with_reason_and_the_rest_kept(httpserver: HTTPServer,
                                                             real_rows: list[dict]) -> None:
    rows = [dict(r) for r in real_rows]
    rows[1]["value"] = "N/A"
    rows[2]["value"] = None
    rows[3]["period"] = "2020-01-01 01:00"
    rows[4]["type"] = "NG"
    httpserver.expect_request(ROUTE).respond_with_json(body(rows))

    result = client(httpserver).fetch_region_data(at(0), at(4), ["CAL"])

    assert len(result.rows) == 4
    assert list(result.rejected.columns) == ["payload", "reason"]
    reasons = dict(zip(result.rejected["payload"].map(json.loads).map(
        lambda r: (r["period"], r["type"])), result.rejected["reason"], strict=True))
    assert reasons == {
        ("2020-01-01T00", "DF"): "non-numeric value",
        ("2020-01-01T01", "D"): "missing value",
        ("2020-01-01 01:00", "DF"): "bad period: expected YYYY-MM-DDTHH (UTC)",
        ("2020-01-01T02", "NG"): "unknown type: expected one of D, DF",
    }
    assert json.loads(result.rejected["payload"].iloc[0])["value"] == "N/A"


def test_numeric_values_and_integer_total_from_older_api_versions(
        httpserver: HTTPServer, real_rows: list[dict]) -> None:
    """Before v2.1.6 `value` and `total` were JSON numbers; both spellings must parse."""
    rows = [{**r, "value": int(r["value"])} for r in real_rows]
    payload = body(rows)
    payload["response"]["total"] = len(rows)
    httpserver.expect_request(ROUTE).respond_with_json(payload)

    result = client(httpserver).fetch_region_data(at(0), at(4), ["CAL"])

    assert result.rejected.empty
    assert sorted(result.rows["value_mwh"]) == sorted(float(r["value"]) for r in real_rows)


def test_rows_repeated_across_pages_are_kept_once(httpserver: HTTPServer,
                                                  real_rows: list[dict]) -> None:
    """If EIA publishes rows mid-download the pages shift and a row can arrive twice."""
    shifted = real_rows[:4] + real_rows[3:]  # row 3 appears on both pages
    httpserver.expect_request(ROUTE).respond_with_handler(paging_handler(shifted))

    result = client(httpserver, page_length=4).fetch_region_data(at(0), at(4), ["CAL"])

    assert offsets(httpserver) == [0, 4, 8]
    assert len(result.rows) == 8
    assert not result.rows.duplicated(["region", "period_utc", "type"]).any()


def test_429_with_retry_after_then_success(httpserver: HTTPServer,
                                           real_rows: list[dict]) -> None:
    httpserver.expect_oneshot_request(ROUTE).respond_with_data(
        "Too Many Requests", status=429, headers={"Retry-After": "0"})
    httpserver.expect_request(ROUTE).respond_with_json(body(real_rows))

    result = client(httpserver).fetch_region_data(at(0), at(4), ["CAL"])

    assert [resp.status_code for _, resp in httpserver.log] == [429, 200]
    assert len(result.rows) == 8


def test_500_until_retries_are_exhausted(httpserver: HTTPServer,
                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    httpserver.expect_request(ROUTE).respond_with_data(
        f"upstream failure for api_key={KEY}", status=500)

    with pytest.raises(EIAHTTPError) as info:
        client(httpserver, max_retries=2).fetch_region_data(at(0), at(4), ["CAL"])

    assert info.value.status == 500
    assert "HTTP 500" in str(info.value) and "retry later" in str(info.value)
    assert len(httpserver.log) == 3  # first try + 2 retries
    assert KEY not in str(info.value)
    assert KEY not in client_log(caplog)
    assert "Retry" in client_log(caplog)  # urllib3's retry log lines were captured, redacted


def test_429_until_retries_are_exhausted(httpserver: HTTPServer) -> None:
    httpserver.expect_request(ROUTE).respond_with_data("slow down", status=429,
                                                       headers={"Retry-After": "0"})

    with pytest.raises(EIAHTTPError, match="rate limit") as info:
        client(httpserver, max_retries=1).fetch_region_data(at(0), at(4), ["CAL"])

    assert info.value.status == 429
    assert len(httpserver.log) == 2


def test_invalid_key_403(httpserver: HTTPServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    error = json.loads((FIXTURES / "eia_error_403_api_key_invalid.json").read_text())
    error["error"]["message"] += f" (you sent {KEY})"  # a server echoing the key
    httpserver.expect_request(ROUTE).respond_with_json(error, status=403)

    with pytest.raises(EIAAuthError) as info:
        client(httpserver).fetch_region_data(at(0), at(4), ["CAL"])

    message = str(info.value)
    assert "EIA rejected the API key (403 API_KEY_INVALID): check EIA_API_KEY" in message
    assert len(httpserver.log) == 1  # 403 is not retried
    assert httpserver.log[0][0].args["api_key"] == KEY  # the key was really sent...
    assert KEY not in message  # ...and never shows up in what we report
    assert KEY not in client_log(caplog)
    assert KEY not in repr(info.value.__cause__) and info.value.__cause__ is None


def test_missing_key_raises_before_any_request(httpserver: HTTPServer) -> None:
    httpserver.expect_request(ROUTE).respond_with_json(body([]))

    for key in (None, "", "   "):
        with pytest.raises(EIAKeyMissingError, match="EIA_API_KEY is not set") as info:
            client(httpserver, api_key=key).fetch_region_data(at(0), at(4), ["CAL"])
        assert "https://www.eia.gov/opendata/register.php" in str(info.value)
    assert httpserver.log == []


def test_truncated_json_body(httpserver: HTTPServer, real_rows: list[dict]) -> None:
    text = json.dumps(body(real_rows))
    httpserver.expect_request(ROUTE).respond_with_data(text[: len(text) // 2],
                                                       content_type="application/json")

    with pytest.raises(EIAResponseError, match="not valid JSON.*truncated"):
        client(httpserver).fetch_region_data(at(0), at(4), ["CAL"])


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        ({"request": {}, "apiVersion": "2.1.8"}, "no 'response' object"),
        ({"response": {"total": "3", "frequency": "hourly"}}, "no 'response.data' list"),
        ({"error": "Invalid facet 'XYZ'", "code": 400}, r"no 'response' object \(error: Invalid"),
    ],
)
def test_body_without_response_data(httpserver: HTTPServer, payload: dict, match: str) -> None:
    httpserver.expect_request(ROUTE).respond_with_json(payload)

    with pytest.raises(EIAResponseError, match=match):
        client(httpserver).fetch_region_data(at(0), at(4), ["CAL"])


def test_unreachable_server_is_retried_then_reported_without_key(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    eia = EIAClient(KEY, base_url=f"http://127.0.0.1:{port}/v2", max_retries=1,
                    backoff_factor=0, timeout_s=2)

    with pytest.raises(EIAConnectionError, match="cannot reach EIA API") as info:
        eia.fetch_region_data(at(0), at(4), ["CAL"])

    assert isinstance(info.value, EIAError)
    assert "api_key=***" in str(info.value)
    assert KEY not in str(info.value)
    assert "Retrying" in client_log(caplog) and KEY not in client_log(caplog)


def test_every_request_has_a_timeout(httpserver: HTTPServer) -> None:
    def slow(request: Request) -> Response:
        time.sleep(0.8)
        return Response(json.dumps(body([])), content_type="application/json")

    httpserver.expect_request(ROUTE).respond_with_handler(slow)
    eia = client(httpserver, max_retries=0, timeout_s=0.2)

    started = time.monotonic()
    with pytest.raises(EIAConnectionError, match="timed out") as info:
        eia.fetch_region_data(at(0), at(4), ["CAL"])

    assert time.monotonic() - started < 0.7
    assert KEY not in str(info.value)


def test_redaction_helpers() -> None:
    url = f"https://api.eia.gov/v2/x/?frequency=hourly&api_key={KEY}&offset=0"
    assert redact(url) == "https://api.eia.gov/v2/x/?frequency=hourly&api_key=***&offset=0"
    assert redact(f"key {KEY} echoed", KEY) == "key *** echoed"
    assert redact_params({"api_key": KEY, "offset": 5}) == {"api_key": "***", "offset": 5}
    assert KEY not in repr(EIAClient(KEY))


def test_naive_datetimes_are_refused(httpserver: HTTPServer) -> None:
    with pytest.raises(ValueError, match="naive"):
        client(httpserver).fetch_region_data(datetime(2020, 1, 1), at(4), ["CAL"])
    assert httpserver.log == []


def test_fetch_live_demand_returns_dataset_columns(httpserver: HTTPServer,
                                                   real_rows: list[dict]) -> None:
    rows = [dict(r) for r in real_rows]
    rows[0]["value"] = ""
    httpserver.expect_request(ROUTE).respond_with_json(body(rows))

    data, rejected = fetch_live(DEMAND, at(0), at(4), ["CAL"], eia_api_key=KEY,
                                eia_base_url=httpserver.url_for("/v2"))

    assert tuple(data.columns) == DEMAND.columns
    assert len(data) == 7 and len(rejected) == 1
    assert httpserver.log[0][0].args.getlist("facets[respondent][]") == ["CAL"]


def test_fetch_live_demand_defaults_to_catalogue_regions(httpserver: HTTPServer) -> None:
    from electricity_assets.regions import region_codes

    httpserver.expect_request(ROUTE).respond_with_json(body([]))

    data, _ = fetch_live(DEMAND, at(0), at(4), None, eia_api_key=KEY,
                         eia_base_url=httpserver.url_for("/v2"))

    assert data.empty and tuple(data.columns) == DEMAND.columns
    assert httpserver.log[0][0].args.getlist("facets[respondent][]") == region_codes()


def test_fetch_live_demand_without_key() -> None:
    with pytest.raises(EIAKeyMissingError):
        fetch_live(DEMAND, at(0), at(4), ["CAL"], eia_api_key=None,
                   eia_base_url="http://127.0.0.1:9/v2")
