"""HTTP plumbing shared by the live API clients: retrying sessions, timeouts, secret redaction.

Retries (429, 5xx, connection errors) happen inside urllib3; the final failing response is
handed back (`raise_on_status=False`) so each client can turn it into an error that says what
to do. API keys travel in query strings, so every message, log line and URL we emit goes
through `redact` first, and urllib3's own log records are filtered the same way.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

logger = logging.getLogger(__name__)

RETRY_STATUSES = (429, 500, 502, 503, 504)
USER_AGENT = "electricity-assets/0.1 (+https://github.com/; hourly demand forecasting)"
REDACTED = "***"

# Query-string credentials, whatever the value looks like: api_key=..., apikey=..., token=...
_SECRET_PARAM = re.compile(r"(?i)\b(api_key|apikey|api-key|token|access_token)=([^&\s'\"<>]+)")


@dataclass(frozen=True)
class HttpSettings:
    """Retry and timeout knobs shared by every client (tests use backoff_factor=0)."""

    max_retries: int = 5
    backoff_factor: float = 1.0
    timeout_s: float = 30.0
    retry_after_max_s: int = 300  # cap a server's Retry-After so a run never sleeps for hours


class SourceError(RuntimeError):
    """Base of every error raised while talking to a live data source."""


def redact(text: object, secrets: str | Iterable[str | None] | None = None) -> str:
    """`text` with each secret and any `api_key=...`-style query value replaced by ***."""
    out = str(text)
    if isinstance(secrets, str) or secrets is None:
        secrets = (secrets,)
    for secret in secrets:
        if secret:
            out = out.replace(secret, REDACTED)
    return _SECRET_PARAM.sub(lambda m: f"{m.group(1)}={REDACTED}", out)


def redact_url(url: str, secrets: str | Iterable[str | None] | None = None) -> str:
    return redact(url, secrets)


def redact_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of query params safe to log or store: credential values replaced by ***."""
    return {
        k: (REDACTED if _SECRET_PARAM.match(f"{k}=x") else v) for k, v in params.items()
    }


class _RedactingFilter(logging.Filter):
    """Scrubs credentials from urllib3's records, which log full request URLs."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def _install_log_redaction() -> None:
    for name in ("urllib3.connectionpool", "urllib3.util.retry", "urllib3.connection"):
        target = logging.getLogger(name)
        if not any(isinstance(f, _RedactingFilter) for f in target.filters):
            target.addFilter(_RedactingFilter())


_install_log_redaction()


def build_session(settings: HttpSettings | None = None) -> requests.Session:
    """A `requests.Session` that retries GETs on 429/5xx and connection errors with backoff."""
    settings = settings or HttpSettings()
    retry = Retry(
        total=settings.max_retries,
        connect=settings.max_retries,
        read=settings.max_retries,
        status=settings.max_retries,
        other=0,
        redirect=3,
        backoff_factor=settings.backoff_factor,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"GET"}),
        respect_retry_after_header=True,
        retry_after_max=settings.retry_after_max_s,
        raise_on_status=False,
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    return session


def get(
    session: requests.Session,
    url: str,
    params: Mapping[str, Any],
    *,
    timeout_s: float,
    service: str,
    error_cls: type[SourceError] = SourceError,
    secrets: Iterable[str | None] = (),
) -> requests.Response:
    """GET with a timeout; transport failures (after retries) become `error_cls`, redacted.

    HTTP error statuses are returned, not raised: the caller knows what each one means.
    """
    secrets = tuple(secrets)
    try:
        return session.get(url, params=dict(params), timeout=timeout_s)
    except requests.Timeout as exc:
        raise error_cls(
            f"{service} did not answer within {timeout_s:g}s at {redact_url(url, secrets)} "
            f"({type(exc).__name__}): the service may be slow or down; retry later or raise "
            "the timeout"
        ) from None
    except requests.RequestException as exc:
        # `from None`: the original exception text embeds the full URL with the key.
        raise error_cls(
            f"cannot reach {service} at {redact_url(url, secrets)} after retries "
            f"({type(exc).__name__}: {redact(exc, secrets)}): check the network or proxy "
            "settings and retry"
        ) from None


def body_excerpt(response: requests.Response, secrets: Iterable[str | None] = (),
                 limit: int = 300) -> str:
    """The start of a response body for an error message, redacted and on one line."""
    text = response.text[:limit].replace("\n", " ").strip()
    return redact(text, secrets) or "<empty body>"
