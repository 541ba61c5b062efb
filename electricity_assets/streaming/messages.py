"""Versioned message schemas, one per topic, and the encode/validate pair shared by both datasets.

A message is one JSON object per (region, hour[, type]), keyed by region so a region's hours stay in
one partition and in order. Schema v1 (`schema_version` may be omitted, meaning 1):

    demand:  region, period_utc, type (D | DF), value_mwh, source, produced_at
    weather: region, station (optional: absent = the region's own value), period_utc,
             temperature_c, dewpoint_c (optional), relative_humidity, wind_speed_kmh,
             precipitation_mm, source, produced_at

Decisions: region codes are not checked against the catalogue (regions come from the data, a new
balancing authority must be accepted); they must match `^[A-Z0-9]{2,6}$`. `period_utc` must carry a
timezone, fall on the hour and be plausible: from the first hourly partition to a few days past the
data clock's now. Numbers must be JSON numbers (a quoted "123" is mistyped). Values follow the one
rule of `plausibility.py` that the bundled and API paths follow too (inside hard bounds, e.g.
demand within +-2,000,000 MWh, is kept as published); weather values may be null, but not all of
them (such a message, e.g. a demand message on the weather topic, would store an empty row). A
message failing any rule becomes a dead letter whose reason names every failed rule.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Literal

import pandas as pd
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from electricity_assets import plausibility
from electricity_assets.datasets import DEMAND, WEATHER, Dataset
from electricity_assets.storage import REGION_MEAN_STATION

REGION_PATTERN = r"^[A-Z0-9]{2,6}$"
SCHEMA_VERSION = 1


def _check_hour(value: datetime, info: ValidationInfo) -> datetime:
    value = value.astimezone(UTC)
    if value.minute or value.second or value.microsecond:
        raise ValueError("period_utc not on the hour")
    latest = (info.context or {}).get("latest_hour") or datetime.max.replace(tzinfo=UTC)
    reason = plausibility.hour_reason(value, latest)
    if reason:
        raise ValueError(reason)
    return value


class HourlyMessage(BaseModel):
    """Fields every topic shares; subclasses add the dataset's key and value columns."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    schema_version: Literal[1] = 1
    region: str = Field(pattern=REGION_PATTERN)
    period_utc: AwareDatetime
    source: str = Field(min_length=1, max_length=64)
    produced_at: AwareDatetime

    _plausible_hour = field_validator("period_utc")(_check_hour)

    @field_validator("*")
    @classmethod
    def _plausible_value(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, float):
            reason = plausibility.value_reason(str(info.field_name), value)
            if reason:
                raise ValueError(reason)
        return value


class DemandMessageV1(HourlyMessage):
    type: Literal["D", "DF"]
    value_mwh: float


class WeatherMessageV1(HourlyMessage):
    # Optional, so v1 messages from before per-station weather stay valid: a region's own value.
    station: str = Field(default=REGION_MEAN_STATION, min_length=1, max_length=64)
    temperature_c: float | None = None
    dewpoint_c: float | None = None
    relative_humidity: float | None = None
    wind_speed_kmh: float | None = None
    precipitation_mm: float | None = None

    @model_validator(mode="after")
    def _some_weather(self) -> WeatherMessageV1:
        # Without one value the message says nothing about the weather: most likely a demand
        # message sent to the weather topic, which would otherwise be stored as an empty row.
        if all(getattr(self, c) is None for c in WEATHER.value_columns):
            raise ValueError(f"no weather value: {', '.join(WEATHER.value_columns)} all missing "
                             "or null (a demand message on the weather topic?)")
        return self


SCHEMAS: dict[str, type[HourlyMessage]] = {DEMAND.name: DemandMessageV1,
                                           WEATHER.name: WeatherMessageV1}


def _reason(error: dict[str, Any]) -> str:
    field = ".".join(str(part) for part in error["loc"]) or "message"
    kind = error["type"]
    if kind == "json_invalid":
        return "not JSON"
    if kind == "model_type":
        return "not a JSON object"
    if kind == "missing":
        return f"missing field: {field}"
    if field == "region" and kind == "string_pattern_mismatch":
        return f"invalid region code: expected {REGION_PATTERN}"
    if field == "schema_version":
        return f"unsupported schema_version: expected {SCHEMA_VERSION}"
    if kind == "value_error":  # our own validators (plausible hour and values)
        return str(error["msg"]).removeprefix("Value error, ")
    return f"mistyped field: {field} ({error['msg'].lower()})"


def decode(dataset: Dataset, payload: bytes | str | None,
           latest_hour: datetime | None = None) -> tuple[dict[str, Any] | None, str | None]:
    """Validate one message: (row in the dataset's columns, None) or (None, dead-letter reason).

    `latest_hour`: the last plausible hour (`plausibility.latest_plausible_hour`); ingestion
    always passes it, None checks only the lower bound.
    """
    if payload is None or len(payload) == 0:
        return None, "empty message"
    try:
        message = SCHEMAS[dataset.name].model_validate_json(
            payload, strict=True, context={"latest_hour": latest_hour})
    except ValidationError as exc:
        reasons = dict.fromkeys(_reason(e) for e in exc.errors(include_url=False))
        return None, "; ".join(reasons)
    return message.model_dump(include=set(dataset.columns)), None


def rows_frame(dataset: Dataset, rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Decoded rows as a frame in the dataset's columns: UTC period_utc, float values."""
    frame = pd.DataFrame(rows, columns=list(dataset.columns))
    frame["period_utc"] = pd.to_datetime(frame["period_utc"], utc=True)
    return frame.astype({c: "float64" for c in dataset.value_columns})


class _HourOnly(BaseModel):
    model_config = ConfigDict(extra="ignore")
    period_utc: AwareDatetime

    _plausible_hour = field_validator("period_utc")(_check_hour)


def message_hour(payload: bytes | None, latest_hour: datetime | None = None) -> datetime | None:
    """The hour a message is about, None when it is unreadable or implausible.

    Lenient about every other field (the sensor only needs the hour to pick partitions), and
    parsed by the same validator as `decode`, so an hour the run accepts is an hour the sensor saw.
    """
    if not payload:
        return None
    try:
        return _HourOnly.model_validate_json(
            payload, strict=True, context={"latest_hour": latest_hour}).period_utc
    except ValidationError:  # the run makes it a dead letter with the reason
        return None


def encode_frame(dataset: Dataset, frame: pd.DataFrame, source: str,
                 produced_at: datetime | None = None) -> Iterable[tuple[bytes, bytes]]:
    """(key, value) pairs for every row of a frame in the dataset's columns, keyed by region.

    Rows whose value columns are all missing carry nothing and are skipped; NaN becomes null.
    """
    produced = (produced_at or datetime.now(UTC)).isoformat().replace("+00:00", "Z")
    fields = SCHEMAS[dataset.name].model_fields
    required = [c for c in dataset.value_columns if fields[c].is_required()]
    keep = frame[list(dataset.value_columns)].notna().any(axis=1)
    if required:
        keep &= frame[required].notna().all(axis=1)
    rows = frame.loc[keep, list(dataset.columns)].copy()
    rows["period_utc"] = pd.to_datetime(rows["period_utc"], utc=True).dt.strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    records = rows.astype(object).where(rows.notna(), None).to_dict("records")
    for record in records:
        record.update(source=source, produced_at=produced, schema_version=SCHEMA_VERSION)
        yield record["region"].encode(), json.dumps(record, separators=(",", ":")).encode()
