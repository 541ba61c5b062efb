"""Calendar inputs by region: IANA timezone and holiday / bridge-day flags per local date.

Local-time features themselves are computed in SQL (`timezone(tz, period_utc)` is DST-correct);
this module only builds the two small lookup frames the SQL joins: one row per region with its
timezone, and one row per (region, local date) with the holiday flags from the `holidays` library.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta

import holidays
import pandas as pd

from electricity_assets.regions import get_region

CALENDAR_SQL = """
    hour(lt) AS local_hour,
    sin(2 * pi() * hour(lt) / 24) AS hour_sin,
    cos(2 * pi() * hour(lt) / 24) AS hour_cos,
    sin(2 * pi() * (isodow(lt) - 1) / 7) AS dow_sin,
    cos(2 * pi() * (isodow(lt) - 1) / 7) AS dow_cos,
    sin(2 * pi() * (dayofyear(lt) - 1) / 365.25) AS doy_sin,
    cos(2 * pi() * (dayofyear(lt) - 1) / 365.25) AS doy_cos,
    isodow(lt) >= 6 AS is_weekend"""
"""Select list over a column `lt` (the region's local wall-clock TIMESTAMP of `period_utc`)."""


def region_timezones(regions: Iterable[str]) -> pd.DataFrame:
    """One row per region: `region`, `timezone` (catalogue entry, or the generic one if unknown)."""
    return pd.DataFrame(
        [(code, get_region(code).timezone) for code in sorted(set(regions))],
        columns=["region", "timezone"],
    )


def holiday_flags(regions: Iterable[str], first: date, last: date) -> pd.DataFrame:
    """One row per (region, local_date) in [first, last] with the holiday flags.

    - `is_federal_holiday`: US federal holiday (observed dates included, e.g. Fri 2020-07-03).
    - `is_holiday`: federal or a holiday of the region's `holiday_subdiv` state.
    - `is_bridge_day`: a working weekday squeezed between a holiday and a weekend day
      (Monday before a Tuesday holiday, Friday after a Thursday holiday), when many take leave.
    """
    rows: list[pd.DataFrame] = []
    # Pad by a day each side so the bridge rule sees the neighbours of the edge dates.
    days = pd.date_range(first - timedelta(days=1), last + timedelta(days=1), freq="D").date
    years = list(range(first.year - 1, last.year + 2))
    federal = holidays.country_holidays("US", years=years)
    for code in sorted(set(regions)):
        subdiv = get_region(code).holiday_subdiv
        regional = (holidays.country_holidays("US", subdiv=subdiv, years=years)
                    if subdiv else federal)
        frame = pd.DataFrame({"local_date": days})
        frame["is_federal_holiday"] = [d in federal for d in days]
        frame["is_holiday"] = [d in federal or d in regional for d in days]
        weekend = pd.Series([d.isoweekday() >= 6 for d in days])
        holiday = frame["is_holiday"]
        working = ~holiday & ~weekend
        frame["is_bridge_day"] = working & (
            (holiday.shift(1, fill_value=False) & weekend.shift(-1, fill_value=False))
            | (weekend.shift(1, fill_value=False) & holiday.shift(-1, fill_value=False))
        )
        frame.insert(0, "region", code)
        rows.append(frame.iloc[1:-1])
    if not rows:
        return pd.DataFrame(columns=["region", "local_date", "is_federal_holiday", "is_holiday",
                                     "is_bridge_day"])
    return pd.concat(rows, ignore_index=True)
