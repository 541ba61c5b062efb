"""The replay clock: what "now" means when the source is the bundled history.

Offline (bundled mode) the newest real data is years old, so the hourly schedule and the
freshness check follow a clock that maps wall-clock time onto the bundled history:

    replay_now = replay_start + (wall_now - anchor) * speed

- ELECTRICITY_REPLAY_START: the point of history the clock shows at the anchor (ISO 8601, UTC);
  default: 7 days before the last demand hour of the replay folder.
- ELECTRICITY_REPLAY_ANCHOR: the wall-clock instant at which the clock shows replay_start;
  default: the first time the clock is read under this ELECTRICITY_HOME.
- ELECTRICITY_REPLAY_SPEED: replayed hours per wall-clock hour (default 1 = real time).

Unset values are persisted in `ELECTRICITY_HOME/replay_clock.json` on first use so every process
(Dagster daemon, webserver, dashboard) reads the same clock. In api mode it is the wall clock.
`DataClock` is "now" for either mode: assets ask `SourceResource.clock()`; code without a
resource (schedules, sensors, automation conditions, the dashboard, the CLIs) asks `data_clock()`,
the one place that builds it from the settings. No Dagster imports: the dashboard uses this too.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from electricity_assets import settings

logger = logging.getLogger(__name__)

STATE_FILE = "replay_clock.json"
DEFAULT_LOOKBACK = timedelta(days=7)


class ReplayClockError(ValueError):
    pass


def _parse_utc(text: str, variable: str) -> datetime:
    try:
        stamp = pd.Timestamp(text)
    except ValueError as exc:
        raise ReplayClockError(
            f"{variable}={text!r} is not a timestamp: use ISO 8601, e.g. 2020-03-25T00:00:00Z"
        ) from exc
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.to_pydatetime()


@dataclass(frozen=True)
class ReplayClock:
    replay_start: datetime
    anchor: datetime
    speed: float = 1.0

    def now(self, wall: datetime | None = None) -> datetime:
        """The replayed instant for `wall` (default: the current wall-clock time), tz-aware UTC."""
        wall = wall or datetime.now(UTC)
        elapsed = max(wall - self.anchor, timedelta(0))
        return self.replay_start + elapsed * self.speed

    def to_dict(self) -> dict[str, str | float]:
        return {"replay_start": self.replay_start.isoformat(), "anchor": self.anchor.isoformat(),
                "speed": self.speed}


def _default_replay_start(data_dir: Path) -> datetime:
    from electricity_assets.history import replay_data_end

    last = replay_data_end(data_dir)
    if last is None:
        raise ReplayClockError(
            f"the replay folder {data_dir} has no demand rows: set "
            "ELECTRICITY_REPLAY_START or point ELECTRICITY_DATA_DIR at real data")
    return last - DEFAULT_LOOKBACK


def _speed() -> float:
    text = settings.replay_speed_text()
    if not text:
        return 1.0
    try:
        speed = float(text)
    except ValueError:
        speed = -1.0
    if speed <= 0:
        raise ReplayClockError(
            f"ELECTRICITY_REPLAY_SPEED={text!r}: expected a positive number of replayed hours "
            "per wall-clock hour, e.g. 1 or 60")
    return speed


def replay_clock(home: Path | None = None, data_dir: Path | None = None) -> ReplayClock:
    """The clock from env vars, completed from (and persisted to) `replay_clock.json` under
    `home` (default ELECTRICITY_HOME); with no start anywhere, 7 days before the last demand hour
    of `data_dir` (default ELECTRICITY_DATA_DIR)."""
    path = (home or settings.local_home()) / STATE_FILE
    saved: dict = {}
    if path.exists():
        try:
            saved = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            logger.warning("%s is unreadable: starting a new replay clock", path)
    start_text = settings.replay_start_text() or saved.get("replay_start")
    anchor_text = settings.replay_anchor_text() or saved.get("anchor")
    start = (_parse_utc(start_text, "ELECTRICITY_REPLAY_START") if start_text
             else _default_replay_start(data_dir or settings.data_dir()))
    anchor = (_parse_utc(anchor_text, "ELECTRICITY_REPLAY_ANCHOR") if anchor_text
              else datetime.now(UTC).replace(microsecond=0))
    clock = ReplayClock(start, anchor, _speed())
    if not (start_text and anchor_text and saved):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(clock.to_dict(), indent=2))
        os.replace(tmp, path)
    return clock


def advance_to(instant: datetime, home: Path | None = None) -> bool:
    """Move the replay clock forward so that it shows at least `instant` now (never back).

    `electricity-replay` publishes history faster than the clock runs; without this the data
    would sit ahead of "now" (a negative data lag, forecasts issued before their inputs' hours).
    Returns False when the clock is fixed by ELECTRICITY_REPLAY_START/ANCHOR (not moved)."""
    if settings.replay_start_text() or settings.replay_anchor_text():
        return False
    clock = replay_clock(home)
    wall = datetime.now(UTC).replace(microsecond=0)
    if clock.now(wall) >= instant:
        return True
    moved = ReplayClock(pd.Timestamp(instant).tz_convert("UTC").to_pydatetime(), wall,
                        clock.speed)
    path = (home or settings.local_home()) / STATE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(moved.to_dict(), indent=2))
    os.replace(tmp, path)
    return True


@dataclass(frozen=True)
class DataClock:
    """"Now" for the data: the replay clock in bundled mode, the wall clock in api mode."""
    mode: str                    # bundled | api (the source's mode)
    home: Path | None = None     # where the replay clock's state lives (ELECTRICITY_HOME)
    data_dir: Path | None = None  # the replay folder (its last hour is the default start)

    @property
    def replaying(self) -> bool:
        return self.mode == "bundled"

    def now(self, wall: datetime | None = None) -> datetime:
        if self.replaying:
            return replay_clock(self.home, self.data_dir).now(wall)
        return wall or datetime.now(UTC)

    def speed(self) -> float:
        """Data hours per wall-clock hour."""
        return replay_clock(self.home, self.data_dir).speed if self.replaying else 1.0


def data_clock() -> DataClock:
    """The data clock as the settings configure it, for code that has no SourceResource."""
    return DataClock(settings.source_mode(), settings.local_home(), settings.data_dir())


def current_time(wall: datetime | None = None) -> datetime:
    """`data_clock().now(wall)`."""
    return data_clock().now(wall)


def latest_complete_hour(now: datetime) -> datetime:
    """Start of the last hour that has fully elapsed at `now` (its partition is complete)."""
    return pd.Timestamp(now).tz_convert("UTC").floor("h").to_pydatetime() - timedelta(hours=1)
