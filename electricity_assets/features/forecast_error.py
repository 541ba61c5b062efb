"""Simulated day-ahead weather forecast error, for honest (ex-ante) scoring and calibration.

In real use the weather of the hours after a forecast's issue time (t - 24 h) is itself a
forecast. The bundled history holds observations only, so ex-ante inputs are built by adding a
simulated forecast error to the observed region weather (`weather_error`), then recomputing the
features as of the issue time (`features.weather.forecast_weather_features`); the
training frame carries both (`features.frame.with_forecast_weather`).

The error model (documented, seeded, deliberately simple):
- temperature: a stationary AR(1) over hours, e_t = PHI * e_(t-1) + sqrt(1 - PHI^2) * SD * z_t,
  with SD = 2.0 C (a typical day-ahead 2 m temperature error) and PHI = 0.95 (errors persist for
  about a day, as a misplaced front does);
- dew point: CORR = 0.6 of the temperature error plus an independent AR(1) of the same SD and
  persistence, so dew point also errs by 2.0 C and humidity (recomputed from the two by the Magnus
  formula) moves consistently with them;
- wind: multiplied by exp(AR(1) with SD 0.2), i.e. about 20 % error;
- precipitation is left as observed (no region uses it offline).
Each region gets its own stream from `numpy.random.default_rng([seed, crc32(region)])`, started
at the region's first hour in the frame, so the error of a region does not depend on which other
regions are scored and the same data gives the same figures.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class WeatherErrorModel:
    temperature_sd_c: float = 2.0
    persistence: float = 0.95  # AR(1) coefficient per hour
    dewpoint_correlation: float = 0.6
    wind_log_sd: float = 0.2
    seed: int = 20240901
    # Multi-horizon forecasts (`features.issue`): the error at a lead of h hours is the full
    # error times sqrt(1 - exp(-2h / LEAD_GROWTH)): 0.31 x at 1 h, 0.67 x at 6 h, 0.96 x at 24 h
    # (an AR(1) started from a perfect analysis at the issue, as NWP errors grow with lead time).
    lead_growth_hours: float = 20.0


AR1_BLOCK = 256


def ar1_filter(shocks: np.ndarray, phi: float) -> np.ndarray:
    """y[t] = shocks[t] + phi * y[t - 1]: the AR(1) recursion, in blocks of matrix products
    (numpy only: scipy.signal's lfilter cost every Dagster process ~1.9 s of import)."""
    k = np.arange(AR1_BLOCK)
    lags = k[:, None] - k[None, :]
    weights = np.where(lags >= 0, phi ** np.clip(lags, 0, None), 0.0)  # phi^(i-j), i >= j
    carry_weights = phi ** (k + 1)
    out = np.empty(len(shocks))
    carry = 0.0
    for start in range(0, len(shocks), AR1_BLOCK):
        block = shocks[start:start + AR1_BLOCK]
        m = len(block)
        values = weights[:m, :m] @ block + carry * carry_weights[:m]
        out[start:start + m] = values
        carry = values[-1]
    return out


def _ar1(rng: np.random.Generator, n: int, sd: float, phi: float) -> np.ndarray:
    """A stationary AR(1) path of length n with marginal standard deviation `sd`."""
    shocks = rng.standard_normal(n) * sd * np.sqrt(1 - phi ** 2)
    shocks[0] = rng.standard_normal() * sd  # start in the stationary distribution
    return ar1_filter(shocks, phi)


ERROR_EPOCH = pd.Timestamp("2015-01-01", tz="UTC")
"""Start of the error path of `lead_time_error`: an hour's error never depends on the window."""


def _ar1_from(rng: np.random.Generator, n: int, sd: float, phi: float) -> np.ndarray:
    """Like `_ar1`, with the starting value drawn first: the first m values of a path of any
    length n >= m are the same, so an hour's value never depends on how far the path runs."""
    start = rng.standard_normal() * sd
    shocks = rng.standard_normal(n) * sd * np.sqrt(1 - phi ** 2)
    shocks[0] = start
    return ar1_filter(shocks, phi)


def lead_time_error(keys: pd.DataFrame, model: WeatherErrorModel | None = None) -> pd.DataFrame:
    """Per (region, period_utc) of `keys`: the full-size temperature and dew-point forecast
    errors `err_t`, `err_td` (the AR(1)s of `weather_error`, dew point correlated with
    temperature), on paths that start at `ERROR_EPOCH` with one random stream per region and
    variable, so an hour's error is the same whatever hours a frame asks for."""
    model = model or WeatherErrorModel()
    parts = []
    for region, times in keys.groupby("region", sort=True)["period_utc"]:
        first = min(ERROR_EPOCH, times.min())
        hours = pd.date_range(first, times.max(), freq="h")
        streams = [np.random.default_rng([model.seed, zlib.crc32(str(region).encode()), k])
                   for k in (1, 2)]
        n, phi, sd, rho = len(hours), model.persistence, model.temperature_sd_c, \
            model.dewpoint_correlation
        temperature = _ar1_from(streams[0], n, sd, phi)
        dewpoint = rho * temperature + np.sqrt(1 - rho ** 2) * _ar1_from(streams[1], n, sd, phi)
        parts.append(pd.DataFrame({"region": region, "period_utc": hours,
                                   "err_t": temperature, "err_td": dewpoint}))
    if not parts:
        return pd.DataFrame(columns=["region", "period_utc", "err_t", "err_td"])
    errors = pd.concat(parts, ignore_index=True)
    return keys[["region", "period_utc"]].merge(errors, on=["region", "period_utc"], how="left")


def weather_error(series: pd.DataFrame, model: WeatherErrorModel | None = None) -> pd.DataFrame:
    """Per region and hour of `series` (a `region_weather` frame): `temperature_error_c`,
    `dewpoint_error_c`, `wind_factor`. The AR(1) runs over each region's dense hourly grid."""
    model = model or WeatherErrorModel()
    parts = []
    for region, rows in series.groupby("region", sort=True):
        hours = pd.date_range(rows["period_utc"].min(), rows["period_utc"].max(), freq="h")
        rng = np.random.default_rng([model.seed, zlib.crc32(str(region).encode())])
        n, phi, sd = len(hours), model.persistence, model.temperature_sd_c
        temperature = _ar1(rng, n, sd, phi)
        rho = model.dewpoint_correlation
        dewpoint = rho * temperature + np.sqrt(1 - rho ** 2) * _ar1(rng, n, sd, phi)
        wind = np.exp(_ar1(rng, n, model.wind_log_sd, phi))
        parts.append(pd.DataFrame({"region": region, "period_utc": hours,
                                   "temperature_error_c": temperature,
                                   "dewpoint_error_c": dewpoint, "wind_factor": wind}))
    if not parts:
        return pd.DataFrame(columns=["region", "period_utc", "temperature_error_c",
                                     "dewpoint_error_c", "wind_factor"])
    return pd.concat(parts, ignore_index=True)
