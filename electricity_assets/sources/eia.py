"""EIA API v2 client for hourly demand (`D`) and day-ahead forecast (`DF`) by balancing region.

Endpoint: `{base}/electricity/rto/region-data/data/`. EIA `period` is UTC and hour-ending; it is
used as-is as `period_utc`. The API caps a page at 5,000 rows, so requests page with `offset`
until `response.total` rows (a string since v2.1.6) have arrived. Rows that cannot be read are
returned as rejects with a reason; the rest of the page is kept.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import requests

from electricity_assets.settings import EIA_BASE_URL
from electricity_assets.sources.http import (
    HttpSettings,
    SourceError,
    body_excerpt,
    build_session,
    get,
    redact,
    redact_params,
)

logger = logging.getLogger(__name__)

REGION_DATA_ROUTE = "electricity/rto/region-data/data/"
MAX_PAGE_LENGTH = 5000
PERIOD_FORMAT = "%Y-%m-%dT%H"
DEMAND_TYPES = ("D", "DF")
ROW_COLUMNS = ("region", "period_utc", "type", "value_mwh")
REJECT_COLUMNS = ("payload", "reason")
REGISTER_URL = "https://www.eia.gov/opendata/register.php"


class EIAError(SourceError):
    """Any failure fetching from the EIA API."""


class EIAKeyMissingError(EIAError):
    def __init__(self) -> None:
        super().__init__(
            f"EIA_API_KEY is not set: get a free key at {REGISTER_URL} and export EIA_API_KEY "
            "(or run with ELECTRICITY_SOURCE=bundled for the offline replay)"
        )


class EIAAuthError(EIAError):
    """403: the key is missing on the request or not valid."""


class EIAHTTPError(EIAError):
    """A non-200 status that is not an auth problem (429/5xx after retries, other 4xx)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class EIAConnectionError(EIAError):
    """No response at all after retries (DNS, refused connection, timeout)."""


class EIAResponseError(EIAError):
    """A 200 whose body is not the documented shape (bad JSON, no `response.data`)."""


@dataclass(frozen=True)
class EIAResult:
    rows: pd.DataFrame          # region, period_utc (UTC), type, value_mwh (float)
    rejected: pd.DataFrame      # payload (the raw row as JSON), reason
    pages: int = 0
    requests_params: list[dict[str, Any]] = field(default_factory=list)  # redacted, per page


def empty_rows() -> pd.DataFrame:
    return pd.DataFrame({
        "region": pd.Series(dtype="object"),
        "period_utc": pd.Series(dtype="datetime64[ns, UTC]"),
        "type": pd.Series(dtype="object"),
        "value_mwh": pd.Series(dtype="float64"),
    })


def empty_rejects() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object") for c in REJECT_COLUMNS})


def _utc_hour_bounds(start: datetime, end: datetime) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First and last whole UTC hour inside the half-open window [start, end)."""
    for name, value in (("start", start), ("end", end)):
        if pd.Timestamp(value).tzinfo is None:
            raise ValueError(f"{name}={value!r} is naive: pass a timezone-aware UTC datetime")
    first = pd.Timestamp(start).tz_convert("UTC").ceil("h")
    last = pd.Timestamp(end).tz_convert("UTC").ceil("h") - timedelta(hours=1)
    return first, last


def parse_rows(
    data: Sequence[Any], types: Sequence[str] = DEMAND_TYPES
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split EIA `response.data` rows into clean rows and (payload, reason) rejects."""
    if not data:
        return empty_rows(), empty_rejects()
    records = [r if isinstance(r, dict) else {} for r in data]
    frame = pd.DataFrame.from_records(records)
    for column in ("period", "respondent", "type", "value"):
        if column not in frame:
            frame[column] = None
    period = pd.to_datetime(frame["period"], format=PERIOD_FORMAT, errors="coerce", utc=True)
    value = pd.to_numeric(frame["value"], errors="coerce").astype("float64")
    respondent = frame["respondent"].where(frame["respondent"].notna(), "").astype(str).str.strip()
    reasons = np.select(
        [
            np.array([not isinstance(r, dict) for r in data]),
            frame["period"].isna().to_numpy(),
            period.isna().to_numpy(),
            (respondent == "").to_numpy(),
            ~frame["type"].isin(list(types)).to_numpy(),
            frame["value"].isna().to_numpy(),
            value.isna().to_numpy(),
            ~np.isfinite(value.to_numpy()),
        ],
        [
            "row is not a JSON object",
            "missing period",
            "bad period: expected YYYY-MM-DDTHH (UTC)",
            "missing respondent",
            f"unknown type: expected one of {', '.join(types)}",
            "missing value",
            "non-numeric value",
            "non-finite value",
        ],
        default="",
    )
    bad = reasons != ""
    rejected = pd.DataFrame({
        "payload": [json.dumps(data[i], sort_keys=True, default=str) for i in np.flatnonzero(bad)],
        "reason": reasons[bad],
    }) if bad.any() else empty_rejects()
    good = ~bad
    rows = pd.DataFrame({
        "region": respondent[good].to_numpy(),
        "period_utc": period[good].to_numpy(),
        "type": frame["type"][good].astype(str).to_numpy(),
        "value_mwh": value[good].to_numpy(),
    })
    rows["period_utc"] = pd.to_datetime(rows["period_utc"], utc=True)
    return rows, rejected


class EIAClient:
    """Pages through `electricity/rto/region-data` with retries; the key never leaves redacted."""

    def __init__(
        self,
        api_key: str | None,
        base_url: str = EIA_BASE_URL,
        page_length: int = MAX_PAGE_LENGTH,
        max_retries: int = 5,
        backoff_factor: float = 1.0,
        timeout_s: float = 30.0,
        max_pages: int = 10_000,
    ) -> None:
        if not 1 <= page_length <= MAX_PAGE_LENGTH:
            raise ValueError(f"page_length={page_length}: EIA allows 1..{MAX_PAGE_LENGTH}")
        self._api_key = (api_key or "").strip() or None
        self.base_url = base_url.rstrip("/")
        self.page_length = page_length
        self.timeout_s = timeout_s
        self.max_pages = max_pages
        self._session = build_session(HttpSettings(max_retries, backoff_factor, timeout_s))

    def __repr__(self) -> str:  # never show the key
        return f"EIAClient(base_url={self.base_url!r}, page_length={self.page_length})"

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> EIAClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        return f"{self.base_url}/{REGION_DATA_ROUTE}"

    def fetch_region_data(
        self,
        start: datetime,
        end: datetime,
        regions: Sequence[str] | None = None,
        types: Sequence[str] = DEMAND_TYPES,
    ) -> EIAResult:
        """Hourly rows with start <= period_utc < end; regions None means every respondent."""
        if not self._api_key:
            raise EIAKeyMissingError()
        first, last = _utc_hour_bounds(start, end)
        if last < first:
            return EIAResult(empty_rows(), empty_rejects())
        base_params: dict[str, Any] = {
            "frequency": "hourly",
            "data[0]": "value",
            "facets[type][]": list(types),
            "start": first.strftime(PERIOD_FORMAT),
            "end": last.strftime(PERIOD_FORMAT),  # EIA's end is inclusive
            "sort[0][column]": "period",
            "sort[0][direction]": "asc",
            "length": self.page_length,
        }
        if regions:
            base_params["facets[respondent][]"] = list(regions)

        row_pages: list[pd.DataFrame] = []
        reject_pages: list[pd.DataFrame] = []
        sent: list[dict[str, Any]] = []
        offset = 0
        for _ in range(self.max_pages):
            params = {**base_params, "offset": offset}
            sent.append(redact_params(params))
            data, total, incomplete = self._fetch_page(params, offset)
            rows, rejected = parse_rows(data, types)
            row_pages.append(rows)
            reject_pages.append(rejected)
            offset += len(data)
            logger.info("EIA region-data page offset=%d: %d rows (%d rejected), total %s",
                        offset - len(data), len(data), len(rejected), total)
            more = offset < total if total is not None else len(data) >= self.page_length
            if not data or not (more or incomplete):
                break
        else:
            raise EIAResponseError(
                f"EIA kept returning pages after {self.max_pages} requests (offset {offset}): "
                "narrow the time window or regions"
            )

        rows = pd.concat([p for p in row_pages if len(p)] or [empty_rows()], ignore_index=True)
        rows = rows[(rows["period_utc"] >= first) & (rows["period_utc"] <= last)]
        # A page boundary can shift if EIA publishes rows mid-download: keep the latest copy.
        rows = (rows.drop_duplicates(["region", "period_utc", "type"], keep="last")
                .sort_values(["region", "type", "period_utc"]).reset_index(drop=True))
        rejected = pd.concat([p for p in reject_pages if len(p)] or [empty_rejects()],
                             ignore_index=True)
        if len(rejected):
            logger.warning("EIA returned %d unreadable rows (first reason: %s)",
                           len(rejected), rejected["reason"].iloc[0])
        return EIAResult(rows[list(ROW_COLUMNS)], rejected, pages=len(sent),
                         requests_params=sent)

    def _fetch_page(self, params: dict[str, Any], offset: int) -> tuple[list, int | None, bool]:
        """One page: (data rows, total or None, whether EIA flagged an incomplete return)."""
        response = get(
            self._session, self.url, {**params, "api_key": self._api_key},
            timeout_s=self.timeout_s, service="EIA API", error_cls=EIAConnectionError,
            secrets=(self._api_key,),
        )
        self._raise_for_status(response)
        body = self._json(response, offset)
        payload = body.get("response") if isinstance(body, dict) else None
        if not isinstance(payload, dict):
            detail = body.get("error") if isinstance(body, dict) else None
            raise EIAResponseError(self._redact(
                f"EIA page at offset {offset} has no 'response' object"
                + (f" (error: {detail})" if detail else "")
                + ": the API shape may have changed; check the request parameters and "
                "https://www.eia.gov/opendata/documentation.php"
            ))
        data = payload.get("data")
        if not isinstance(data, list):
            raise EIAResponseError(
                f"EIA page at offset {offset} has no 'response.data' list "
                f"(keys: {sorted(payload)}): retry later; if it persists the API shape changed"
            )
        return data, self._total(payload.get("total"), offset), self._incomplete(payload)

    def _raise_for_status(self, response: requests.Response) -> None:
        status = response.status_code
        if status == 200:
            return
        excerpt = body_excerpt(response, (self._api_key,))
        if status in (401, 403):
            code = ""
            try:
                error = response.json().get("error")
                code = error.get("code", "") if isinstance(error, dict) else ""
            except (ValueError, AttributeError):
                pass
            raise EIAAuthError(self._redact(
                f"EIA rejected the API key ({status} {code or 'forbidden'}): check EIA_API_KEY "
                f"(a free key: {REGISTER_URL}); response: {excerpt}"
            ))
        if status == 429:
            hint = "EIA rate limit hit even after retries: wait a few minutes, then retry"
        elif status >= 500:
            hint = "EIA is failing on its side even after retries: retry later"
        else:
            hint = "EIA refused the request: check the regions, types and time window"
        raise EIAHTTPError(self._redact(f"EIA returned HTTP {status}: {hint}; response: "
                                        f"{excerpt}"), status)

    def _json(self, response: requests.Response, offset: int) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            raise EIAResponseError(
                f"EIA page at offset {offset} is not valid JSON ({len(response.content)} bytes, "
                f"{type(exc).__name__}: {self._redact(exc)}): the body was probably truncated; "
                "retry the run"
            ) from None

    @staticmethod
    def _total(raw: Any, offset: int) -> int | None:
        if raw is None:
            return None
        try:
            return int(str(raw).strip())
        except ValueError:
            raise EIAResponseError(
                f"EIA page at offset {offset} has a non-integer total {raw!r}: retry later"
            ) from None

    @staticmethod
    def _incomplete(payload: dict[str, Any]) -> bool:
        warnings = payload.get("warnings") or []
        if isinstance(warnings, dict | str):
            warnings = [warnings]
        text = " ".join(json.dumps(w) if not isinstance(w, str) else w for w in warnings)
        return "incomplete return" in text.lower()

    def _redact(self, text: object) -> str:
        return redact(text, (self._api_key,))
