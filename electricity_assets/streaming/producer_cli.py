"""`electricity-replay` and `electricity-live`: publish hours to the demand and weather topics.

    electricity-replay --speed 1        # from the data clock's hour on, 1 hour of data per second
    electricity-live --interval 300                                      # needs EIA_API_KEY

Both talk to KAFKA_BROKER_ADDRESS, else to the broker `./dev run` starts on
127.0.0.1:KAFKA_BROKER_PORT (default 19092), like the stack.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from electricity_assets import settings as app_settings
from electricity_assets.datasets import DATASETS
from electricity_assets.replay_clock import data_clock
from electricity_assets.settings import KafkaSettings
from electricity_assets.streaming.errors import KafkaConfigError
from electricity_assets.streaming.producer import Publisher, replay

logger = logging.getLogger(__name__)



def default_replay_start() -> datetime:
    """The data clock's current hour: the first hour neither the first-run seed (which stops at
    the replay clock's start) nor the hourly schedule has loaded, so what is replayed is new."""
    from electricity_assets.replay_clock import current_time

    return pd.Timestamp(current_time()).tz_convert("UTC").floor("h").to_pydatetime()


def _utc_hour(text: str) -> datetime:
    try:
        value = pd.Timestamp(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a timestamp like 2020-01-01T00:00Z") from None
    value = value.tz_localize("UTC") if value.tzinfo is None else value.tz_convert("UTC")
    return value.floor("h").to_pydatetime()


def _datasets(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in DATASETS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown dataset(s) {unknown}: use {sorted(DATASETS)}")
    return names


class ProgressBar:
    """A one-line progress bar on stderr (stdout stays clean for piping)."""

    def __init__(self, start: datetime, end: datetime, width: int = 30) -> None:
        self.start, self.end, self.width = start, end, width
        self.began = time.monotonic()

    def __call__(self, done_until: datetime, messages: int) -> None:
        share = min(max((done_until - self.start) / (self.end - self.start), 0.0), 1.0)
        filled = int(share * self.width)
        rate = messages / max(time.monotonic() - self.began, 1e-9)
        sys.stderr.write(
            f"\r[{'#' * filled}{'.' * (self.width - filled)}] {share:6.1%} "
            f"{done_until:%Y-%m-%d %H:%MZ}  {messages:,} messages ({rate:,.0f}/s)")
        sys.stderr.flush()

    def close(self) -> None:
        sys.stderr.write("\n")


def _moving_the_data_clock(bar: ProgressBar) -> Callable[[datetime, int], None]:
    """Progress that also moves the replay clock to the end of each published hour: the stack's
    "now" (schedule, freshness, dashboard, forecast issue time) then agrees with the data."""
    from electricity_assets.replay_clock import advance_to

    warned = False

    def progress(done_until: datetime, messages: int) -> None:
        nonlocal warned
        if not advance_to(done_until) and not warned:
            warned = True
            logger.warning("ELECTRICITY_REPLAY_START/ANCHOR fix the data clock: published hours "
                           "may lie ahead of it")
        bar(done_until, messages)

    return progress


def _fail(message: str) -> None:
    sys.stderr.write(f"error: {message}\n")
    raise SystemExit(2)


def replay_main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="electricity-replay",
        description="Publish the replay history (package data or ELECTRICITY_DATA_DIR) to Kafka "
                    "as if it were live, hour by hour.")
    parser.add_argument("--start", type=_utc_hour, default=None,
                        help="first hour to publish, UTC (default: the data clock's current "
                             "hour, the first one the stack has not loaded)")
    parser.add_argument("--hours", type=int, default=24,
                        help="how many hours to publish (default 24)")
    parser.add_argument("--speed", type=float, default=1.0,
                        help="hours of data per second; 0 = as fast as possible (default 1)")
    parser.add_argument("--datasets", type=_datasets, default=["demand", "weather"],
                        help="comma-separated: demand,weather (default both)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="replay folder (default ELECTRICITY_DATA_DIR or the package data)")
    args = parser.parse_args(argv)
    if args.start is None:
        args.start = default_replay_start()
    if args.hours < 1 or args.speed < 0:
        _fail("--hours must be >= 1 and --speed >= 0")
    logging.basicConfig(level=logging.WARNING)
    settings = KafkaSettings.from_env()
    end = args.start + timedelta(hours=args.hours)
    bar = ProgressBar(args.start, end)
    progress = _moving_the_data_clock(bar) if data_clock().replaying else bar
    try:
        sent = replay(settings, args.start, end, args.data_dir or app_settings.data_dir(),
                      hours_per_second=args.speed, datasets=args.datasets, progress=progress)
    except KafkaConfigError as exc:
        bar.close()
        _fail(f"{exc} (start the local stack with `./dev run`, or point KAFKA_BROKER_ADDRESS "
              "at your broker)")
    except KeyboardInterrupt:
        bar.close()
        sys.stderr.write("interrupted: messages already sent stay on the topics\n")
        raise SystemExit(130) from None
    bar.close()
    print(f"published {sent:,} messages for [{args.start:%Y-%m-%dT%H:%MZ}, "
          f"{end:%Y-%m-%dT%H:%MZ}) to {settings.bootstrap_servers}")


def _series_key(dataset_name: str, row: dict) -> str:
    key_columns = [c for c in DATASETS[dataset_name].key_columns if c != "period_utc"]
    return "/".join(str(row[c]) for c in key_columns)


def publish_new_hours(publisher: Publisher, dataset_name: str, rows: pd.DataFrame,
                      last_published: dict[str, str], source: str) -> int:
    """Publish rows newer than each series' last published hour; update `last_published`."""
    if rows.empty:
        return 0
    dataset = DATASETS[dataset_name]
    rows = rows.copy()
    rows["_series"] = [_series_key(dataset_name, r) for r in rows.to_dict("records")]
    last = pd.to_datetime(rows["_series"].map(last_published), utc=True)
    fresh = rows[last.isna() | (rows["period_utc"] > last)]
    sent = publisher.publish_frame(dataset, fresh.drop(columns="_series"), source)
    for series, hours in fresh.groupby("_series")["period_utc"]:
        last_published[series] = hours.max().isoformat()
    return sent


def live_main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="electricity-live",
        description="Poll the EIA v2 and Open-Meteo forecast APIs and publish hours newer than "
                    "the last published one to Kafka.")
    parser.add_argument("--interval", type=float, default=300.0,
                        help="seconds between polls (default 300)")
    parser.add_argument("--lookback-hours", type=int, default=48,
                        help="on the first poll, how far back to publish (default 48)")
    parser.add_argument("--once", action="store_true", help="poll once and exit")
    parser.add_argument("--state-file", type=Path, default=None,
                        help="where the last published hour per series is kept "
                             "(default $ELECTRICITY_HOME/kafka/live_producer.json)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    from electricity_assets.sources.http import SourceError
    from electricity_assets.sources.live import fetch_live
    from electricity_assets.streaming.client import ensure_topics

    api_key = app_settings.env("EIA_API_KEY")
    if not api_key:
        _fail("EIA_API_KEY is not set: get a free key at https://www.eia.gov/opendata/register.php "
              "and export it, or use `electricity-replay` for the offline history")
    state_file = args.state_file or app_settings.local_home() / "kafka" / "live_producer.json"
    state: dict[str, dict[str, str]] = (json.loads(state_file.read_text())
                                        if state_file.exists() else {})
    settings = KafkaSettings.from_env()
    try:
        ensure_topics(settings)
    except KafkaConfigError as exc:
        _fail(str(exc))
    publisher = Publisher(settings)
    sources = {"demand": "eia_api", "weather": "open_meteo_forecast"}
    while True:
        now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        for name, dataset in DATASETS.items():
            known = state.setdefault(name, {})
            start = (min(pd.Timestamp(v) for v in known.values()) + timedelta(hours=1)
                     if known else now - timedelta(hours=args.lookback_hours))
            try:
                rows, rejected = fetch_live(dataset, start, now + timedelta(hours=48),
                                            eia_api_key=api_key)
            except SourceError as exc:  # messages are already redacted by the source clients
                logger.error("%s: %s; retrying at the next poll", name, exc)
                continue
            sent = publish_new_hours(publisher, name, rows, known, sources[name])
            logger.info("%s: published %d new hours-series, %d source rows rejected", name,
                        sent, len(rejected))
        try:
            publisher.flush()
        except KafkaConfigError as exc:
            _fail(str(exc))
        state_file.parent.mkdir(parents=True, exist_ok=True)
        state_file.write_text(json.dumps(state, indent=1))  # only after delivery: at-least-once
        if args.once:
            return
        time.sleep(args.interval)
