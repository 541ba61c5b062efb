"""Versioned message schemas, one per topic, and the encode/validate pair shared by both datasets.

A message is one JSON object per (region, hour[, type]), keyed by region so a region's hours stay in
one partition and in order. Schema v1 (`schema_version` may be omitted, meaning 1):

    demand:  region, period_utc, type (D | DF), value_mwh, source, produced_at
    weather: region, station (optional: absent = the region's own value), period_utc,
             temperature_c, dewpoint_c (optional), relative_humidity, wind_speed_kmh,
             precipitation_mm, source, produced_at

Decisions: region codes are not checked against the catalogue (regions come from the data, a new
balancing authority must be accepted); they must match `^[A-Z0-9]{2,6}$`. `period_utc` must carry a
timezone and fall on the hour. Numbers must be JSON numbers (a quoted "123" is mistyped). Demand
values must lie in [0, 2,000,000] MWh; weather values may be null but must be physically plausible.
A message failing any rule becomes a dead letter whose reason names every failed rule.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Literal

import pandas as pd
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from electricity_assets.datasets import DEMAND, WEATHER, Dataset
from electricity_assets.storage import REGION_MEAN_STATION

REGION_PATTERN = r"^[A-Z0-9]{2,6}$"
MAX_DEMAND_MWH = 2_000_000.0
SCHEMA_VERSION = 1


class HourlyMessage(BaseModel):
    """Fields every topic shares; subclasses add the dataset's key and value columns."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    schema_version: Literal[1] = 1
    region: str = Field(pattern=REGION_PATTERN)
    period_utc: AwareDatetime
    source: str = Field(min_length=1, max_length=64)
    produced_at: AwareDatetime

    @field_validator("period_utc")
    @classmethod
    def _on_the_hour(cls, value: datetime) -> datetime:
        value = value.astimezone(UTC)
        if value.minute or value.second or value.microsecond:
            raise ValueError("period_utc not on the hour")
        return value


class DemandMessageV1(HourlyMessage):
    type: Literal["D", "DF"]
    value_mwh: float = Field(ge=0.0, le=MAX_DEMAND_MWH, allow_inf_nan=False)


class WeatherMessageV1(HourlyMessage):
    # Optional, so v1 messages from before per-station weather stay valid: a region's own value.
    station: str = Field(default=REGION_MEAN_STATION, min_length=1, max_length=64)
    dewpoint_c: float | None = Field(default=None, ge=-90.0, le=40.0, allow_inf_nan=False)
    temperature_c: float | None = Field(default=None, ge=-90.0, le=65.0, allow_inf_nan=False)
    relative_humidity: float | None = Field(default=None, ge=0.0, le=100.0, allow_inf_nan=False)
    wind_speed_kmh: float | None = Field(default=None, ge=0.0, le=500.0, allow_inf_nan=False)
    precipitation_mm: float | None = Field(default=None, ge=0.0, le=500.0, allow_inf_nan=False)


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
    if kind == "value_error":  # our own validators (period_utc on the hour)
        return str(error["msg"]).removeprefix("Value error, ")
    if kind in ("greater_than_equal", "less_than_equal", "finite_number"):
        return f"implausible value: {field} {error['msg'].lower()}"
    return f"mistyped field: {field} ({error['msg'].lower()})"


def decode(dataset: Dataset,
           payload: bytes | str | None) -> tuple[dict[str, Any] | None, str | None]:
    """Validate one message: (row in the dataset's columns, None) or (None, dead-letter reason)."""
    if payload is None or len(payload) == 0:
        return None, "empty message"
    try:
        message = SCHEMAS[dataset.name].model_validate_json(payload, strict=True)
    except ValidationError as exc:
        reasons = dict.fromkeys(_reason(e) for e in exc.errors(include_url=False))
        return None, "; ".join(reasons)
    return message.model_dump(include=set(dataset.columns)), None


def rows_frame(dataset: Dataset, rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Decoded rows as a frame in the dataset's columns: UTC period_utc, float values."""
    frame = pd.DataFrame(rows, columns=list(dataset.columns))
    frame["period_utc"] = pd.to_datetime(frame["period_utc"], utc=True)
    return frame.astype({c: "float64" for c in dataset.value_columns})


def message_hour(payload: bytes | None) -> datetime | None:
    """The hour a message is about, read leniently (the sensor only needs it to pick partitions)."""
    try:
        hour = datetime.fromisoformat(json.loads(payload)["period_utc"])  # type: ignore[arg-type]
    except Exception:  # anything unreadable is the run's business (it becomes a dead letter)
        return None
    if hour.tzinfo is None or hour.minute or hour.second or hour.microsecond:
        return None
    return hour.astimezone(UTC)


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
