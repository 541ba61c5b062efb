"""Message schemas: what is accepted, and the dead-letter reason of everything else."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pandas as pd
import pytest

from electricity_assets.datasets import DEMAND, WEATHER
from electricity_assets.plausibility import latest_plausible_hour
from electricity_assets.settings import PACKAGE_DATA_DIR
from electricity_assets.sources.bundled import read_bundled
from electricity_assets.streaming.client import RawMessage
from electricity_assets.streaming.ingest import decode_batch
from electricity_assets.streaming.messages import (
    decode,
    encode_frame,
    message_hour,
    rows_frame,
)

LATEST = latest_plausible_hour(datetime(2020, 1, 1, 8, 30, tzinfo=UTC))  # 2020-01-09T08:00Z
GOOD = {"region": "CAL", "period_utc": "2020-01-01T08:00:00Z", "type": "D", "value_mwh": 30125,
        "source": "eia_api", "produced_at": "2020-01-01T09:02:11Z"}


def _with(**changes: object) -> bytes:
    body = {**GOOD, **changes}
    return json.dumps({k: v for k, v in body.items() if v is not ...}).encode()


def test_real_rows_round_trip_through_the_schema() -> None:
    start = datetime(2019, 7, 1, tzinfo=UTC)
    for dataset in (DEMAND, WEATHER):
        window = (start, datetime(2019, 7, 2, tzinfo=UTC)) if dataset is DEMAND else (
            datetime(2020, 7, 1, tzinfo=UTC), datetime(2020, 7, 2, tzinfo=UTC))
        frame = read_bundled(dataset, *window, PACKAGE_DATA_DIR)
        decoded = [decode(dataset, value) for _, value in encode_frame(dataset, frame, "replay")]
        assert all(reason is None for _, reason in decoded), decoded[:3]
        back = rows_frame(dataset, [row for row, _ in decoded])
        expected = frame.dropna(subset=list(dataset.value_columns), how="all")
        pd.testing.assert_frame_equal(
            back.sort_values(list(dataset.key_columns)).reset_index(drop=True),
            expected.sort_values(list(dataset.key_columns)).reset_index(drop=True),
            check_dtype=False)


def test_messages_are_keyed_by_region() -> None:
    frame = read_bundled(DEMAND, datetime(2019, 7, 1, tzinfo=UTC),
                         datetime(2019, 7, 1, 2, tzinfo=UTC), PACKAGE_DATA_DIR)
    for key, value in encode_frame(DEMAND, frame, "replay"):
        assert json.loads(value)["region"] == key.decode()


def test_unknown_but_well_formed_region_is_accepted() -> None:
    row, reason = decode(DEMAND, _with(region="NEWBA"))
    assert reason is None and row == {"region": "NEWBA", "type": "D", "value_mwh": 30125.0,
                                      "period_utc": datetime(2020, 1, 1, 8, tzinfo=UTC)}


def test_offset_timestamps_are_converted_to_utc() -> None:
    row, _ = decode(DEMAND, _with(period_utc="2020-01-01T00:00:00-08:00"))
    assert row is not None and row["period_utc"] == datetime(2020, 1, 1, 8, tzinfo=UTC)


@pytest.mark.parametrize(("payload", "reason"), [
    (b"{not json", "not JSON"),
    (b"[1, 2]", "not a JSON object"),
    (b"", "empty message"),
    (_with(value_mwh=...), "missing field: value_mwh"),
    (_with(value_mwh="30125"), "mistyped field: value_mwh"),
    (_with(type="X"), "mistyped field: type"),
    (_with(region="cal!"), "invalid region code"),
    (_with(period_utc="2020-01-01T08:30:00Z"), "period_utc not on the hour"),
    (_with(period_utc="2020-01-01T08:00:00"), "mistyped field: period_utc"),
    (_with(value_mwh=-2_500_000), "implausible value: value_mwh outside"),
    (_with(value_mwh=2_500_000), "implausible value: value_mwh outside"),
    (_with(period_utc="2015-07-01T04:00:00Z"), "implausible period_utc: before the first"),
    (_with(period_utc="0001-01-01T00:00:00Z"), "implausible period_utc: before the first"),
    (_with(period_utc="2020-01-09T09:00:00Z"), "implausible period_utc: more than 8 days after"),
    (_with(period_utc="2999-01-01T00:00:00Z"), "implausible period_utc: more than 8 days after"),
    (_with(period_utc="9999-12-31T23:00:00Z"), "implausible period_utc: more than 8 days after"),
    (_with(schema_version=2), "unsupported schema_version"),
])
def test_malformed_messages_get_a_reason(payload: bytes, reason: str) -> None:
    row, got = decode(DEMAND, payload, latest_hour=LATEST)
    assert row is None
    assert got is not None and got.startswith(reason), got


def test_weather_values_may_be_null_but_not_implausible() -> None:
    base = {"region": "CAL", "period_utc": "2020-01-01T08:00:00Z", "source": "open_meteo",
            "produced_at": "2020-01-01T09:00:00Z", "temperature_c": 11.1}
    row, reason = decode(WEATHER, json.dumps({**base, "precipitation_mm": None}))
    assert reason is None and row is not None and row["precipitation_mm"] is None
    _, reason = decode(WEATHER, json.dumps({**base, "relative_humidity": 140}))
    assert reason == "implausible value: relative_humidity outside [0, 100]"


@pytest.mark.parametrize(("temperature_c", "accepted"), [
    (56.7, True),    # Death Valley 1913, the hottest reading on record
    (-89.2, True),   # Vostok 1983, the coldest
    (65.5, False),
    (-90.5, False),
])
def test_weather_temperature_is_bounded_by_what_earth_has_measured(
        temperature_c: float, accepted: bool) -> None:
    body = {"region": "CAL", "period_utc": "2020-01-01T08:00:00Z", "source": "open_meteo",
            "produced_at": "2020-01-01T09:00:00Z", "temperature_c": temperature_c}
    row, reason = decode(WEATHER, json.dumps(body))
    if accepted:
        assert reason is None and row is not None and row["temperature_c"] == temperature_c
    else:
        assert row is None and reason is not None
        assert reason.startswith("implausible value: temperature_c")


def test_dead_letter_payload_is_cut_to_1000_characters() -> None:
    long = b'{"region": "CAL", "note": "' + b"x" * 5000 + b'"'  # not JSON: unterminated
    short = b"{oops"
    messages = [RawMessage(0, offset, b"CAL", value, None)
                for offset, value in enumerate((long, short))]
    rows, dead = decode_batch(DEMAND, "t", messages, datetime(2020, 1, 1, tzinfo=UTC))
    assert rows.empty
    assert dead["payload"].tolist() == [long.decode()[:1000], "{oops"]
    assert dead["reason"].tolist() == ["not JSON", "not JSON"]


def test_message_hour_is_lenient_but_rejects_garbage() -> None:
    assert message_hour(_with(value_mwh="x")) == datetime(2020, 1, 1, 8, tzinfo=UTC)
    assert message_hour(b"{not json") is None
    assert message_hour(_with(period_utc="2020-01-01T08:30:00Z")) is None
    # The sensor plans partitions only for hours the run will accept.
    assert message_hour(_with(period_utc="2020-01-09T08:00:00Z"), LATEST) is not None
    assert message_hour(_with(period_utc="2020-01-09T09:00:00Z"), LATEST) is None
    assert message_hour(_with(period_utc="2001-01-01T00:00:00Z"), LATEST) is None


def test_a_negative_day_ahead_forecast_is_kept_as_published() -> None:
    row, reason = decode(DEMAND, _with(type="DF", value_mwh=-86395), LATEST)
    assert reason is None and row is not None and row["value_mwh"] == -86395.0


@pytest.mark.parametrize("value", [-86395.0, 0.0, 935233.0, 2_000_000.0, -2_000_000.5,
                                   2_500_000.0, float("inf"), float("nan")])
def test_one_rule_for_values_streamed_and_loaded_from_a_source(
        value: float, tmp_path) -> None:
    """A value the stream dead-letters is the value the bundled path rejects, and vice versa."""
    from electricity_assets.sources.select import SourceConfig, load_window

    payload = json.dumps({**GOOD, "type": "DF", "value_mwh": value}).encode()
    _, stream_reason = decode(DEMAND, payload, LATEST)
    pd.DataFrame({"period_utc": ["2020-01-01T08:00:00Z"], "region": ["CAL"], "type": ["DF"],
                  "value_mwh": [value]}).to_csv(tmp_path / "eia930_hourly.csv.gz", index=False)
    window = load_window(DEMAND, datetime(2020, 1, 1, tzinfo=UTC),
                         datetime(2020, 1, 2, tzinfo=UTC), SourceConfig("bundled", tmp_path))
    if value != value:  # NaN: a missing value in a CSV, not a number on the wire
        assert stream_reason == "implausible value: value_mwh is not finite"
        return
    assert (len(window.rows), len(window.rejected)) == ((1, 0) if stream_reason is None
                                                         else (0, 1))
    if stream_reason is not None:
        assert list(window.rejected["reason"]) == [stream_reason]
