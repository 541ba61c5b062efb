"""The first-run seed: the bundled history through real Dagster runs, so the catalog shows it.

Run by the stack in the background (`python -m devstack.seed`, progress in
logs/seed.log) when ELECTRICITY_HOME has no `seeded.json` and the source is the replay. Every
step is a `dagster asset materialize` run on the stack's instance (visible in Runs, each
partition recorded), up to the replay clock's start R, ordered so the dashboard has data early:
1. raw demand + weather for the recent hours the features need as lookback (~83 days);
2. the weather statistics (station offsets, z-score mean/std), then demand + weather features
   for the last 48 hours; the dashboard shows actuals from here;
3. raw demand + weather for the rest of the bundled history, from its first hour (one ranged
   run, ~2 minutes: a materialisation event per hourly partition and asset);
4. features for the ELECTRICITY_SEED_FEATURE_DAYS (400) before that;
5. `trained_models` for the week complete before the forecast window;
6. `demand_forecasts`: the hourly issues of the last ELECTRICITY_SEED_FORECAST_DAYS (7) days
   and the day before (so the 24 h-ahead slice covers those 7 days); the newest, issued at R,
   forecasts the 48 hours after R;
7. `forecast_backtest` (the last 3 weeks, weekly refits) for the dashboard's backtest columns.
The dashboard's snapshot is published after each step; the hourly schedule continues from R.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from electricity_assets import replay_clock, serving, settings

SEED_MARKER = "seeded.json"
RECENT_HOURS = 48
RAW = ["raw_demand", "raw_weather"]
FEATURES = ["demand_features", "weather_features"]
# Fitted once, in the first features run, on the raw rows loaded by then (latest demand hour
# - 8 weeks); the later, longer feature runs reuse them.
WEATHER_STATISTICS = ["weather_station_offsets", "weather_normalisation"]


@dataclass(frozen=True)
class SeedStep:
    assets: list[str]
    partitions: str | None  # "A...B": one single-run range; a key: one partition; None: none

    def command(self) -> list[str]:
        command = [sys.executable, "-m", "dagster", "asset", "materialize", "-m",
                   "electricity_assets.definitions", "--select", ",".join(self.assets)]
        if self.partitions:
            flag = "--partition-range" if "..." in self.partitions else "--partition"
            command += [flag, self.partitions]
        return command


def seed_plan(replay_start: datetime, feature_days: int = 400, forecast_days: int = 7
              ) -> list[SeedStep]:
    """The seed's Dagster runs, in order; together they cover every hour before `replay_start`
    of the raw assets, the feature window and the forecast window."""
    from electricity_assets.features.demand import LOOKBACK
    from electricity_assets.partitions import hourly_partitions
    from electricity_assets.schedules import retrain_partition_key

    fmt = hourly_partitions.fmt
    first = hourly_partitions.start

    def hour(before: timedelta) -> datetime:
        return max(replay_start - before, first)

    def span(start: datetime, end: datetime) -> str:  # [start, end) as inclusive keys
        return f"{start.strftime(fmt)}...{(end - timedelta(hours=1)).strftime(fmt)}"

    recent_raw = hour(LOOKBACK + timedelta(hours=RECENT_HOURS))
    recent = hour(timedelta(hours=RECENT_HOURS))
    # The model is the week complete before the forecast window starts: the seeded forecasts are
    # out-of-sample, as live ones are.
    issues_from = hour(timedelta(days=forecast_days + 1))
    week = retrain_partition_key(issues_from)
    steps = [
        SeedStep(RAW, span(recent_raw, replay_start)),
        SeedStep([*WEATHER_STATISTICS, *FEATURES], span(recent, replay_start)),
        SeedStep(RAW, span(first, recent_raw)) if recent_raw > first else None,
        SeedStep(FEATURES, span(hour(timedelta(days=feature_days)), recent)),
        SeedStep(["trained_models"], week) if week else None,
        SeedStep(["demand_forecasts"], span(issues_from, replay_start)),
        # Last: the dashboard's backtest columns fill in when it lands (a few minutes of
        # weekly refits), after the forecasts they must not delay.
        SeedStep(["forecast_backtest"], None),
    ]
    return [step for step in steps if step is not None]


def _publish() -> None:
    try:
        serving.publish_snapshot()  # the dashboard shows each step as soon as it lands
    except serving.ServingUnavailableError as exc:
        print(f"seed: snapshot not published: {exc}", flush=True)


def seed() -> int:
    """Run the seed plan on the stack's instance, publishing the snapshot after each step."""
    home = settings.local_home()
    if not replay_clock.data_clock().replaying:
        from electricity_assets.api_backfill import backfill_hint

        print(backfill_hint(datetime.now(UTC)), flush=True)
        return 0
    clock = replay_clock.replay_clock()
    plan = seed_plan(clock.replay_start, settings.seed_feature_days(),
                     settings.seed_forecast_days())
    began, failed, timeline = time.monotonic(), [], []
    for step in plan:
        print(f"seed: {' '.join(step.command()[2:])}", flush=True)
        started = time.monotonic()
        code = subprocess.call(step.command(), cwd=settings.PROJECT_ROOT)
        _publish()
        done = time.monotonic()
        print(f"seed: {','.join(step.assets)} {step.partitions} -> exit {code} in "
              f"{done - started:.0f} s ({done - began:.0f} s since the seed started)", flush=True)
        timeline.append({"assets": step.assets, "partitions": step.partitions, "exit": code,
                         "seconds": round(done - started, 1),
                         "ended_at": datetime.now(UTC).isoformat()})
        if code:
            failed.append(",".join(step.assets))
    (home / SEED_MARKER).write_text(json.dumps({
        "seeded_at": datetime.now(UTC).isoformat(), "replay_start": clock.replay_start.isoformat(),
        "runs": timeline, "failed": failed}, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(seed())
