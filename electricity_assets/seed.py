"""The first-run seed: the bundled history into DuckDB and the first Dagster runs.

Run by the stack in the background (`python -m electricity_assets.seed`, progress in
logs/seed.log) when ELECTRICITY_HOME has no `seeded.json` and the source is the replay, up to
the replay clock's start:
1. bulk history with the assets' own functions, outside Dagster's run history: raw demand and
   weather from the first bundled hour, features over ELECTRICITY_SEED_FEATURE_DAYS (400);
2. Dagster runs, visible in the UI: raw + features for the last 48 hours, `trained_models`,
   `demand_forecasts` for the last ELECTRICITY_SEED_FORECAST_DAYS (7), then `forecast_backtest`
   (the last 3 weeks, weekly refits) for the dashboard's backtest columns;
publishing the dashboard's snapshot after each step. The hourly schedule continues from there.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from electricity_assets import replay_clock, serving, settings

SEED_MARKER = "seeded.json"

RECENT_HOURS = 48


def seed_plan(replay_start: datetime, available: set[str], forecast_days: int = 7
              ) -> list[tuple[list[str], str | None]]:
    """Dagster runs of the first-run seed (recorded in DAGSTER_HOME), over defined assets.

    The bulk history before the last RECENT_HOURS is written by `seed_history` instead, in
    seconds: a Dagster run over the ~41k hourly partitions takes ~2 minutes, most of it recording
    a materialisation event per partition and asset (see README, Benchmarks), and the dashboard
    should have data at once. Backfilling that range from the UI records it.
    """
    from electricity_assets.partitions import hourly_partitions
    from electricity_assets.schedules import retrain_partition_key

    def since(hours: int) -> str:
        start = max(replay_start - timedelta(hours=hours), hourly_partitions.start)
        return start.strftime(hourly_partitions.fmt)

    end = (replay_start - timedelta(hours=1)).strftime(hourly_partitions.fmt)
    # The model is the week complete before the forecast window starts: the seeded forecasts are
    # out-of-sample, as live ones are.
    week = retrain_partition_key(replay_start - timedelta(days=forecast_days))
    steps: list[tuple[list[str], str | None]] = [
        (["raw_demand", "raw_weather", "demand_features", "weather_features"],
         f"{since(RECENT_HOURS)}...{end}"),
        (["trained_models"], week),
        (["demand_forecasts"], f"{since(forecast_days * 24)}...{end}"),
        # Last: the dashboard's backtest columns fill in when it lands (a few minutes of
        # weekly refits), after the forecasts they must not delay.
        (["forecast_backtest"], None),
    ]
    return [([k for k in keys if k in available], rng) for keys, rng in steps
            if any(k in available for k in keys)]


def seed_history(replay_start: datetime, feature_days: int = 400) -> dict[str, int]:
    """Bulk-load the bundled history before the recent window with the assets' own functions.

    Raw demand and weather from the first bundled hour, features over the last `feature_days`.
    """
    from electricity_assets.datasets import DEMAND, WEATHER
    from electricity_assets.features import demand, weather
    from electricity_assets.ingest import ingest_window
    from electricity_assets.partitions import hourly_partitions
    from electricity_assets.resources import ElectricityDuckDB
    from electricity_assets.sources.select import SourceConfig
    from electricity_assets.storage import replace_window

    end = replay_start - timedelta(hours=RECENT_HOURS)
    first = hourly_partitions.start
    features_from = max(end - timedelta(days=feature_days), first)
    config = SourceConfig(mode="bundled", data_dir=settings.data_dir())
    written: dict[str, int] = {}
    with ElectricityDuckDB(database=settings.duckdb_path()).get_connection() as conn:
        for dataset in (DEMAND, WEATHER):
            written[dataset.table] = ingest_window(conn, dataset, first, end, config)
        frame = demand.compute_demand_features(conn, features_from, end)
        written[demand.TABLE] = replace_window(conn, demand.SCHEMA, frame, features_from, end)
        frame = weather.compute_weather_features(conn, features_from, end)
        written[weather.TABLE] = replace_window(conn, weather.SCHEMA, frame, features_from, end)
    return written


def _defined_asset_keys() -> set[str]:
    from electricity_assets.definitions import defs

    return {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}


def _publish() -> None:
    try:
        serving.publish_snapshot()  # the dashboard shows each step as soon as it lands
    except serving.ServingUnavailableError as exc:
        print(f"seed: snapshot not published: {exc}", flush=True)


def seed(argv: Sequence[str] | None = None) -> int:
    """The documented first-run subset: bulk history, then recorded Dagster runs; publish."""
    home = settings.local_home()
    if settings.source_mode() != "bundled":
        from electricity_assets.api_backfill import backfill_hint

        print(backfill_hint(datetime.now(UTC)), flush=True)
        return 0
    clock = replay_clock.replay_clock()
    started = time.monotonic()
    written = seed_history(clock.replay_start, settings.seed_feature_days())
    print(f"seed: bulk history {written} in {time.monotonic() - started:.0f} s", flush=True)
    _publish()
    plan = seed_plan(clock.replay_start, _defined_asset_keys(), settings.seed_forecast_days())
    failed = []
    for keys, partition_range in plan:
        cmd = [sys.executable, "-m", "dagster", "asset", "materialize", "-m",
               "electricity_assets.definitions", "--select", ",".join(keys)]
        if partition_range:  # "A...B" is one single-run range; a lone key is one partition
            flag = "--partition-range" if "..." in partition_range else "--partition"
            cmd += [flag, partition_range]
        print(f"seed: {' '.join(cmd[2:])}", flush=True)
        started = time.monotonic()
        code = subprocess.call(cmd, cwd=settings.PROJECT_ROOT)
        print(f"seed: {','.join(keys)} -> exit {code} in {time.monotonic() - started:.0f} s",
              flush=True)
        if code:
            failed.append(",".join(keys))
        _publish()
    (home / SEED_MARKER).write_text(json.dumps({
        "seeded_at": datetime.now(UTC).isoformat(), "replay_start": clock.replay_start.isoformat(),
        "bulk_rows": written, "runs": [[k, r] for k, r in plan], "failed": failed}, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(seed(sys.argv[1:]))
