"""The region catalogue: EIA code, name, local timezone, holiday subdivision and weather points.

Codes absent from the catalogue (e.g. a balancing authority in a user's own replay file) still
work: `get_region` returns a generic entry with US Central time and federal holidays only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WeatherPoint:
    name: str
    latitude: float
    longitude: float


@dataclass(frozen=True)
class Region:
    code: str
    name: str
    timezone: str  # IANA zone used for local-hour features and holiday dates
    holiday_subdiv: str | None = None  # US state whose holidays matter most (holidays lib code)
    weather_points: tuple[WeatherPoint, ...] = field(default_factory=tuple)


REGIONS: dict[str, Region] = {
    r.code: r
    for r in (
        Region("CAL", "California", "America/Los_Angeles", "CA",
               (WeatherPoint("San Jose, CA", 37.434093, -121.95479),)),
        Region("CAR", "Carolinas", "America/New_York", "NC",
               (WeatherPoint("Charlotte, NC", 35.2271, -80.8431),)),
        Region("CENT", "Central", "America/Chicago", "OK",
               (WeatherPoint("Oklahoma City, OK", 35.4676, -97.5164),)),
        Region("FLA", "Florida", "America/New_York", "FL",
               (WeatherPoint("Orlando, FL", 28.5383, -81.3792),)),
        Region("MIDA", "Mid-Atlantic", "America/New_York", "PA",
               (WeatherPoint("Philadelphia, PA", 39.964848, -75.1676),)),
        Region("MIDW", "Midwest", "America/Chicago", "IL",
               (WeatherPoint("Chicago, IL", 41.8781, -87.6298),)),
        Region("NE", "New England", "America/New_York", "MA",
               (WeatherPoint("Boston, MA", 42.3601, -71.0589),)),
        Region("NW", "Northwest", "America/Los_Angeles", "OR",
               (WeatherPoint("Portland, OR", 45.5152, -122.6784),)),
        Region("NY", "New York", "America/New_York", "NY",
               (WeatherPoint("New York, NY", 40.7128, -74.0060),)),
        Region("SE", "Southeast", "America/Chicago", "GA",
               (WeatherPoint("Atlanta, GA", 33.7490, -84.3880),)),
        Region("SW", "Southwest", "America/Phoenix", "AZ",
               (WeatherPoint("Phoenix, AZ", 33.4484, -112.0740),)),
        Region("TEN", "Tennessee", "America/Chicago", "TN",
               (WeatherPoint("Nashville, TN", 36.1627, -86.7816),)),
        Region("TEX", "Texas", "America/Chicago", "TX",
               (WeatherPoint("Dallas, TX", 32.794376, -96.8215),)),
        Region("US48", "United States Lower 48", "America/Chicago", None,
               (WeatherPoint("Chicago, IL", 41.8781, -87.6298),
                WeatherPoint("Dallas, TX", 32.794376, -96.8215),
                WeatherPoint("Philadelphia, PA", 39.964848, -75.1676),
                WeatherPoint("San Jose, CA", 37.434093, -121.95479))),
    )
}

DEFAULT_TIMEZONE = "America/Chicago"


def get_region(code: str) -> Region:
    """Catalogue entry for `code`, or a generic one (Central time, federal holidays) if unknown."""
    region = REGIONS.get(code)
    if region is None:
        logger.warning("region %s is not in the catalogue: using %s and federal holidays",
                       code, DEFAULT_TIMEZONE)
        region = Region(code, code, DEFAULT_TIMEZONE)
    return region


def region_codes() -> list[str]:
    return list(REGIONS)
