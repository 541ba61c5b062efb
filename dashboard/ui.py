"""What both pages share: cached loaders, labels, the URL state, the footer."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta

import pandas as pd
import streamlit as st

from dashboard import queries
from electricity_assets.regions import REGIONS
from electricity_assets.serving import ServingUnavailableError

TTL_S = 60
# An en dash: a lone "-" in a st.table cell is read as Markdown and drawn as a list bullet.
MISSING = "–"
ATTRIBUTION = (
    "Demand and day-ahead forecasts: U.S. Energy Information Administration, Form EIA-930 "
    "(public domain); history compiled by Ruggles & Farnham, "
    "doi:10.5281/zenodo.3517197 (CC BY 4.0). Weather data by Open-Meteo.com (CC BY 4.0) and "
    "NOAA NCEI Local Climatological Data (public domain)."
)
OVERVIEW_PATH = "views/overview.py"
REGION_PATH = "views/region.py"

# One cache entry per page part; each load opens and closes its own read-only connection. The
# snapshot changes only when a run publishes it, so a minute's staleness is safe.
load_overview = st.cache_data(ttl=TTL_S, show_spinner=False)(queries.load_overview)
load_scoreboard = st.cache_data(ttl=TTL_S, show_spinner=False)(queries.load_scoreboard)
load_region_span = st.cache_data(ttl=TTL_S, show_spinner=False)(queries.load_region_span)
load_window = st.cache_data(ttl=TTL_S, show_spinner=False)(queries.load_window)


def region_label(code: str) -> str:
    name = REGIONS[code].name if code in REGIONS else code
    return f"{code} - {name}" if name != code else code


def param_date(name: str) -> date | None:
    """A `YYYY-MM-DD` query parameter, or None when absent or malformed."""
    text = st.query_params.get(name)
    try:
        return datetime.strptime(text, "%Y-%m-%d").date() if text else None
    except ValueError:
        return None


def clip_dates(start: date, end: date, first: date, last: date) -> tuple[date, date] | None:
    """[start, end] cut to the data's [first, last]; None when they do not overlap."""
    lo, hi = max(start, first), min(end, last)
    return (lo, hi) if lo <= hi else None


def local_window(start_day: date, end_day: date, tz: str) -> tuple[datetime, datetime]:
    """Local dates [start_day, end_day] inclusive as the UTC [start, end) window."""
    start = pd.Timestamp(datetime.combine(start_day, datetime.min.time()), tz=tz)
    end = pd.Timestamp(datetime.combine(end_day + timedelta(days=1), datetime.min.time()), tz=tz)
    return start.tz_convert("UTC").to_pydatetime(), end.tz_convert("UTC").to_pydatetime()


def fmt(value: float | None, pattern: str = "{:.2f}", missing: str = MISSING) -> str:
    return missing if value is None or pd.isna(value) else pattern.format(value)


def footer() -> None:
    st.caption(ATTRIBUTION)


def fmt_mwh(value: float | None, missing: str = MISSING) -> str:
    return fmt(value, "{:,.0f}", missing)


def run_page(main: Callable[[], None]) -> None:
    """Run a page; a database that cannot be read (corrupt, locked, missing) at any of its
    queries shows its short message instead of a traceback naming the code's files."""
    try:
        main()
    except ServingUnavailableError as exc:
        st.warning(str(exc))
        footer()
