"""The region catalogue: EIA code, name, local timezone, holiday subdivision and weather points.

Codes absent from the catalogue (e.g. a balancing authority in a user's own replay file) still
work: `get_region` returns a generic entry with US Central time and federal holidays only.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WeatherPoint:
    """An Open-Meteo grid point (live weather: archive and forecast APIs)."""

    name: str
    latitude: float
    longitude: float

    @property
    def station(self) -> str:
        """The `station` value of this point's rows in `raw_weather`."""
        return f"open-meteo:{self.name}"


@dataclass(frozen=True)
class WeatherStation:
    """A NOAA LCD airport station (bundled replay: `weather_stations_hourly.csv.gz`)."""

    station: str  # USAF id, the file's `station_id`
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
    weather_stations: tuple[WeatherStation, ...] = field(default_factory=tuple)
    # Another region's stations near this one's weather points, for a region without its own.
    neighbour_stations: tuple[WeatherStation, ...] = field(default_factory=tuple)

    @property
    def weather_station_ids(self) -> tuple[str, ...]:
        """Every `station` value whose raw rows make up this region's weather."""
        return (*(s.station for s in self.weather_stations),
                *(s.station for s in self.neighbour_stations),
                *(p.station for p in self.weather_points))


def _points(*points: tuple[str, float, float]) -> tuple[WeatherPoint, ...]:
    return tuple(WeatherPoint(*p) for p in points)


def _stations(*stations: tuple[str, str, float, float]) -> tuple[WeatherStation, ...]:
    return tuple(WeatherStation(*s) for s in stations)


# Open-Meteo points: the main load centres, at least 3 for a large region (the first one is the
# point of the bundled `weather_hourly.csv.gz` where that file has the region). NOAA stations:
# those of the bundled station file that lie in the region (see electricity_assets/data/).
_REGIONS = (
    Region("CAL", "California", "America/Los_Angeles", "CA",
           _points(("San Jose, CA", 37.434093, -121.95479), ("Los Angeles, CA", 34.0522, -118.2437),
                   ("Sacramento, CA", 38.5816, -121.4944), ("San Diego, CA", 32.7157, -117.1611)),
           _stations(("722950", "Los Angeles Intl", 33.94, -118.41))),
    Region("CAR", "Carolinas", "America/New_York", "NC",
           _points(("Charlotte, NC", 35.2271, -80.8431), ("Raleigh, NC", 35.7796, -78.6382),
                   ("Columbia, SC", 34.0007, -81.0348)),
           _stations(("723100", "Columbia Metro", 33.94, -81.12),
                     ("723120", "Greenville-Spartanburg", 34.9, -82.22))),
    Region("CENT", "Central", "America/Chicago", "OK",
           _points(("Oklahoma City, OK", 35.4676, -97.5164), ("Kansas City, MO", 39.0997, -94.5786),
                   ("Wichita, KS", 37.6872, -97.3301)),
           _stations(("724463", "Kansas City Wheeler", 39.12, -94.59))),
    Region("FLA", "Florida", "America/New_York", "FL",
           _points(("Orlando, FL", 28.5383, -81.3792), ("Miami, FL", 25.7617, -80.1918),
                   ("Tampa, FL", 27.9506, -82.4572))),
    Region("MIDA", "Mid-Atlantic", "America/New_York", "PA",
           _points(("Philadelphia, PA", 39.964848, -75.1676), ("Washington, DC", 38.9072, -77.0369),
                   ("Pittsburgh, PA", 40.4406, -79.9959), ("Columbus, OH", 39.9612, -82.9988)),
           _stations(("725250", "Youngstown-Warren", 41.26, -80.68),
                     ("725330", "Fort Wayne Intl", 40.98, -85.2))),
    Region("MIDW", "Midwest", "America/Chicago", "IL",
           _points(("Chicago, IL", 41.8781, -87.6298), ("Detroit, MI", 42.3314, -83.0458),
                   ("St Louis, MO", 38.6270, -90.1994), ("Indianapolis, IN", 39.7684, -86.1581),
                   ("Minneapolis, MN", 44.9778, -93.2650)),
           _stations(("724340", "St Louis Lambert", 38.75, -90.37),
                     ("725375", "Detroit City", 42.41, -83.01),
                     ("725390", "Lansing", 42.78, -84.59),
                     ("726375", "Oakland County Intl", 42.67, -83.42),
                     ("724220", "Lexington Blue Grass", 38.04, -84.61))),
    Region("NE", "New England", "America/New_York", "MA",
           _points(("Boston, MA", 42.3601, -71.0589), ("Hartford, CT", 41.7658, -72.6734),
                   ("Providence, RI", 41.8240, -71.4128))),
    Region("NW", "Northwest", "America/Los_Angeles", "OR",
           _points(("Portland, OR", 45.5152, -122.6784), ("Seattle, WA", 47.6062, -122.3321),
                   ("Salt Lake City, UT", 40.7608, -111.8910), ("Denver, CO", 39.7392, -104.9903)),
           _stations(("725650", "Denver Intl", 39.86, -104.67),
                     ("724880", "Reno-Tahoe", 39.5, -119.77))),
    Region("NY", "New York", "America/New_York", "NY",
           _points(("New York, NY", 40.7128, -74.0060), ("Albany, NY", 42.6526, -73.7562),
                   ("Buffalo, NY", 42.8864, -78.8784))),
    Region("SE", "Southeast", "America/Chicago", "GA",
           _points(("Atlanta, GA", 33.7490, -84.3880), ("Birmingham, AL", 33.5186, -86.8104),
                   ("Savannah, GA", 32.0809, -81.0912))),
    Region("SW", "Southwest", "America/Phoenix", "AZ",
           _points(("Phoenix, AZ", 33.4484, -112.0740), ("Tucson, AZ", 32.2226, -110.9747),
                   ("Albuquerque, NM", 35.0844, -106.6504))),
    Region("TEN", "Tennessee", "America/Chicago", "TN",
           _points(("Nashville, TN", 36.1627, -86.7816), ("Knoxville, TN", 35.9606, -83.9207),
                   ("Memphis, TN", 35.1495, -90.0490)),
           _stations(("723270", "Nashville Intl", 36.12, -86.68),
                     ("723273", "Smyrna", 36.01, -86.52),
                     ("746716", "Bowling Green", 36.96, -86.42))),
    Region("TEX", "Texas", "America/Chicago", "TX",
           _points(("Dallas, TX", 32.794376, -96.8215), ("Houston, TX", 29.7604, -95.3698),
                   ("San Antonio, TX", 29.4241, -98.4936), ("Austin, TX", 30.2672, -97.7431)),
           _stations(("722590", "Dallas-Fort Worth Intl", 32.9, -97.04))),
)

# A region without stations of its own borrows other regions' stations within this distance of
# its weather points: day-to-day temperature anomalies stay strongly correlated over ~1,000 km
# (synoptic scale). In the bundled data this gives SE 7 stations, FLA 2, SW 2, NE 1 (NY 6); on
# 4-week backtests in four seasons their median APE fell from 3.35/5.05/3.82/2.81 % (no
# weather) to 3.17/4.26/3.07/2.73 % (FLA/NE/SE/SW) with 800 km.
NEIGHBOUR_RADIUS_KM = 800.0


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine, mean Earth radius)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = (math.sin((p2 - p1) / 2) ** 2
         + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2)
    return 2 * 6371.0 * math.asin(math.sqrt(a))


def neighbour_stations(region: Region, regions: tuple[Region, ...],
                       radius_km: float = NEIGHBOUR_RADIUS_KM) -> tuple[WeatherStation, ...]:
    """Other regions' stations within `radius_km` of any of `region`'s weather points, nearest
    first; none for a region with stations of its own."""
    if region.weather_stations:
        return ()
    found = []
    for other in regions:
        if other.code == region.code:
            continue
        for station in other.weather_stations:
            d = min((distance_km(p.latitude, p.longitude, station.latitude, station.longitude)
                     for p in region.weather_points), default=math.inf)
            if d <= radius_km:
                found.append((d, station))
    return tuple(s for _, s in sorted(found, key=lambda x: x[0]))


_REGIONS = tuple(replace(r, neighbour_stations=neighbour_stations(r, _REGIONS))
                 for r in _REGIONS)
REGIONS: dict[str, Region] = {r.code: r for r in _REGIONS}
# The Lower 48 is every region together: the main point of each region and every station.
REGIONS["US48"] = Region(
    "US48", "United States Lower 48", "America/Chicago", None,
    tuple(r.weather_points[0] for r in _REGIONS if r.weather_points),
    tuple(s for r in _REGIONS for s in r.weather_stations))

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


def station_regions() -> dict[str, tuple[str, ...]]:
    """Catalogue `station` id -> the regions whose weather it is part of (US48 included)."""
    out: dict[str, tuple[str, ...]] = {}
    # Own stations and points first: the first region is a station's home in raw_weather.
    for region in REGIONS.values():
        for station in region.weather_station_ids:
            if station not in {s.station for s in region.neighbour_stations}:
                out[station] = (*out.get(station, ()), region.code)
    for region in REGIONS.values():
        for station in region.neighbour_stations:
            out[station.station] = (*out.get(station.station, ()), region.code)
    return out
