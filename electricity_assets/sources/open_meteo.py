"""Open-Meteo client: hourly weather for a region as the mean over its weather points.

Two endpoints, one parser: the archive (ERA5 reanalysis, complete up to a few days ago) and the
forecast API (recent past and the days ahead). `hourly.time` is local wall-clock time without an
offset and each response carries ONE constant `utc_offset_seconds`, so
period_utc = time - utc_offset_seconds (0 when, as here, timezone=UTC is requested).
Weather data by Open-Meteo.com, CC BY 4.0.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np
import pandas as pd

from electricity_assets.regions import WeatherPoint
from electricity_assets.settings import OPEN_METEO_ARCHIVE_URL as ARCHIVE_URL
from electricity_assets.settings import OPEN_METEO_FORECAST_URL as FORECAST_URL
from electricity_assets.sources.http import (
    HttpSettings,
    SourceError,
    body_excerpt,
    build_session,
    get,
)

logger = logging.getLogger(__name__)

HOURLY_VARIABLES = ("temperature_2m", "relative_humidity_2m", "wind_speed_10m", "precipitation")
# Our column -> Open-Meteo variable names, current spelling first (older responses use the rest).
VARIABLE_NAMES: dict[str, tuple[str, ...]] = {
    "temperature_c": ("temperature_2m",),
    "relative_humidity": ("relative_humidity_2m", "relativehumidity_2m"),
    "wind_speed_kmh": ("wind_speed_10m", "windspeed_10m"),
    "precipitation_mm": ("precipitation",),
}
VALUE_COLUMNS = tuple(VARIABLE_NAMES)
COLUMNS = ("region", "period_utc", *VALUE_COLUMNS)
TIME_FORMAT = "%Y-%m-%dT%H:%M"

Kind = Literal["archive", "forecast"]


class OpenMeteoError(SourceError):
    """Any failure fetching from Open-Meteo; `reason` holds the API's own explanation if any."""

    def __init__(self, message: str, reason: str | None = None, status: int | None = None):
        super().__init__(message)
        self.reason = reason
        self.status = status


def empty_weather() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype="float64") for c in COLUMNS})
    frame["region"] = frame["region"].astype("object")
    frame["period_utc"] = pd.Series(dtype="datetime64[ns, UTC]")
    return frame


def parse_hourly(body: Mapping[str, Any], region: str) -> pd.DataFrame:
    """One Open-Meteo JSON body -> rows `region, period_utc, <values>`; absent variables NaN."""
    hourly = body.get("hourly") if isinstance(body, Mapping) else None
    if not isinstance(hourly, Mapping) or not isinstance(hourly.get("time"), list):
        raise OpenMeteoError(
            f"Open-Meteo body for {region} has no 'hourly.time' array: request hourly variables "
            "(hourly=temperature_2m,...) and check the response"
        )
    times = hourly["time"]
    offset_s = body.get("utc_offset_seconds", 0) or 0
    try:
        local = pd.to_datetime(pd.Series(times, dtype="object"), format=TIME_FORMAT)
    except (ValueError, TypeError) as exc:
        raise OpenMeteoError(
            f"Open-Meteo body for {region} has times not in {TIME_FORMAT} ({exc}): request "
            "timeformat=iso8601 (the default)"
        ) from None
    frame = pd.DataFrame({
        "region": region,
        "period_utc": (local - pd.Timedelta(seconds=int(offset_s))).dt.tz_localize("UTC"),
    })
    for column, names in VARIABLE_NAMES.items():
        name = next((n for n in names if n in hourly), None)
        if name is None:
            frame[column] = np.nan
            continue
        values = hourly[name]
        if not isinstance(values, list) or len(values) != len(times):
            raise OpenMeteoError(
                f"Open-Meteo body for {region}: hourly.{name} has "
                f"{len(values) if isinstance(values, list) else 'no'} values for {len(times)} "
                "times: the body is inconsistent; retry the request"
            )
        frame[column] = pd.to_numeric(pd.Series(values, dtype="object"),
                                      errors="coerce").astype("float64")
    return frame[list(COLUMNS)]


def _window_params(kind: Kind, start: pd.Timestamp, end: pd.Timestamp) -> dict[str, str]:
    """Time-range params for the half-open UTC window [start, end) (Open-Meteo's are inclusive)."""
    last = end - pd.Timedelta(microseconds=1)
    if kind == "archive":
        return {"start_date": start.strftime("%Y-%m-%d"), "end_date": last.strftime("%Y-%m-%d")}
    return {"start_hour": start.floor("h").strftime(TIME_FORMAT),
            "end_hour": last.floor("h").strftime(TIME_FORMAT)}


def mean_over_points(frames: Sequence[pd.DataFrame], region: str) -> pd.DataFrame:
    """Average each variable over the points per hour (NaN only where every point lacks it)."""
    if not frames:
        return empty_weather()
    stacked = pd.concat(frames, ignore_index=True)
    mean = stacked.groupby("period_utc", sort=True)[list(VALUE_COLUMNS)].mean()
    out = mean.reset_index()
    out.insert(0, "region", region)
    return out[list(COLUMNS)]


class OpenMeteoClient:
    """Archive and forecast requests with retries and timeouts; no key needed."""

    def __init__(
        self,
        archive_url: str = ARCHIVE_URL,
        forecast_url: str = FORECAST_URL,
        max_retries: int = 5,
        backoff_factor: float = 1.0,
        timeout_s: float = 60.0,
    ) -> None:
        self.urls: dict[str, str] = {"archive": archive_url, "forecast": forecast_url}
        self.timeout_s = timeout_s
        self._session = build_session(HttpSettings(max_retries, backoff_factor, timeout_s))

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> OpenMeteoClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fetch_point(self, point: WeatherPoint, start: datetime, end: datetime,
                    kind: Kind = "archive", region: str = "") -> pd.DataFrame:
        """Hourly rows for one point, start <= period_utc < end."""
        first, stop = _window(start, end)
        if stop <= first:
            return empty_weather()
        if kind not in self.urls:
            raise ValueError(f"kind={kind!r}: expected 'archive' or 'forecast'")
        url = self.urls[kind]
        params = {
            "latitude": point.latitude,
            "longitude": point.longitude,
            "hourly": ",".join(HOURLY_VARIABLES),
            "timezone": "UTC",
            **_window_params(kind, first, stop),
        }
        where = f"{region or point.name} ({point.name} {point.latitude},{point.longitude})"
        response = get(self._session, url, params, timeout_s=self.timeout_s,
                       service=f"Open-Meteo {kind}", error_cls=OpenMeteoError)
        body = self._json(response, kind, where)
        if response.status_code != 200 or (isinstance(body, dict) and body.get("error")):
            reason = body.get("reason") if isinstance(body, dict) else None
            what = ("the request was refused" if response.status_code < 500
                    else "the service failed even after retries; retry later")
            raise OpenMeteoError(
                f"Open-Meteo {kind} API returned HTTP {response.status_code} for {where}: "
                f"{reason or body_excerpt(response)} ({what}; check the dates are inside the "
                f"{kind} range and the coordinates are valid)",
                reason=reason, status=response.status_code,
            )
        frame = parse_hourly(body, region or point.name)
        return frame[(frame["period_utc"] >= first) & (frame["period_utc"] < stop)]

    def fetch_region_weather(
        self,
        region_code: str,
        points: Sequence[WeatherPoint],
        start: datetime,
        end: datetime,
        kind: Kind = "archive",
    ) -> pd.DataFrame:
        """The region's hourly weather: mean over `points`, rows with start <= period_utc < end."""
        if not points:
            raise OpenMeteoError(
                f"region {region_code} has no weather points: add some to its entry in "
                "electricity_assets/regions.py"
            )
        frames = [self.fetch_point(p, start, end, kind, region_code) for p in points]
        weather = mean_over_points(frames, region_code)
        logger.info("Open-Meteo %s: %s, %d points, %d hours", kind, region_code, len(points),
                    len(weather))
        return weather

    @staticmethod
    def _json(response: Any, kind: str, where: str) -> Any:
        try:
            return response.json()
        except ValueError:
            raise OpenMeteoError(
                f"Open-Meteo {kind} API returned HTTP {response.status_code} for {where} with a "
                f"body that is not valid JSON ({len(response.content)} bytes: "
                f"{body_excerpt(response, limit=120)}): probably truncated; retry the run",
                status=response.status_code,
            ) from None


def _window(start: datetime, end: datetime) -> tuple[pd.Timestamp, pd.Timestamp]:
    for name, value in (("start", start), ("end", end)):
        if pd.Timestamp(value).tzinfo is None:
            raise ValueError(f"{name}={value!r} is naive: pass a timezone-aware UTC datetime")
    return pd.Timestamp(start).tz_convert("UTC"), pd.Timestamp(end).tz_convert("UTC")


def split_by_source(start: datetime, end: datetime, now: datetime,
                    archive_lag: timedelta = timedelta(days=5)) -> list[tuple[Kind, datetime,
                                                                              datetime]]:
    """Cut [start, end) at midnight UTC `archive_lag` before `now`: archive before, forecast after.

    The archive trails real time by a few days; the forecast API covers the recent past
    (up to 92 days) and the days ahead.
    """
    boundary = (pd.Timestamp(now).tz_convert("UTC") - archive_lag).floor("D").to_pydatetime()
    parts: list[tuple[Kind, datetime, datetime]] = []
    if start < min(end, boundary):
        parts.append(("archive", start, min(end, boundary)))
    if max(start, boundary) < end:
        parts.append(("forecast", max(start, boundary), end))
    return parts
