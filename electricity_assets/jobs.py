"""The code location's jobs, selected from the asset objects themselves."""

from __future__ import annotations

from datetime import datetime

import dagster as dg

from electricity_assets.assets.features import demand_features, weather_features
from electricity_assets.assets.forecasts import demand_forecasts
from electricity_assets.assets.models import trained_models
from electricity_assets.assets.raw import raw_demand, raw_weather
from electricity_assets.datasets import DATASETS

# raw -> features -> forecasts for a range of hours: the hourly schedule's and the stream's work.
HOURLY_CHAIN = (raw_demand, raw_weather, demand_features, weather_features, demand_forecasts)

hourly_forecast_job = dg.define_asset_job(
    "hourly_forecast_job", selection=dg.AssetSelection.assets(*HOURLY_CHAIN),
    description="Latest hours: raw demand and weather -> features -> the issues of those hours "
                "(each region's next 48 hours).")

retrain_job = dg.define_asset_job(
    "retrain_job", selection=dg.AssetSelection.assets(trained_models),
    description="Retrain the per-region models and update champion/challenger aliases.")

stream_ingest_job = dg.define_asset_job(
    name="stream_ingest_job",
    # Without the raw tables' asset checks: messages are validated one by one (bad ones go to
    # dead_letters) and upserted on the primary key, and each check step of a multi-hour run
    # costs Dagster bookkeeping that grows with the history (it lists every hourly partition of
    # the checked asset: ~0.6 s for the 41,684 of the replay), 8 of them per run. The hourly
    # schedule's runs and UI materialisations run them.
    selection=dg.AssetSelection.assets(*HOURLY_CHAIN).without_checks(),
    description=(
        "Started by kafka_stream_sensor for the hourly partitions a batch of Kafka messages "
        "touches: upserts the batch's offset range into the raw tables (bad messages into "
        "dead_letters), then recomputes features and forecasts for those hours. Asset checks "
        "run in hourly_forecast_job, not here."
    ),
    tags={"pipeline": "streaming"},
)


# The raw tables' checks (duplicates, gaps, implausible values, freshness) as their own job: the
# stream sensor's companion runs it after stream runs, off the latency path, so the checks of
# the raw assets always describe their latest materialisation.
raw_checks_job = dg.define_asset_job(
    name="raw_checks_job",
    selection=dg.AssetSelection.checks_for_assets(
        *(dg.AssetKey(d.table) for d in DATASETS.values())),
    description="Evaluates the raw tables' asset checks; requested after stream runs.",
    tags={"pipeline": "streaming"},
)


def stream_run_config(kafka_offsets: dict[str, str],
                      span: tuple[datetime, datetime] | None = None,
                      latest_hour: datetime | None = None) -> dict:
    """Run config giving each raw asset (by dataset name) its offset range JSON, the hours this
    run writes (`span`, inclusive; None = every plausible hour) and the last plausible hour."""
    extra = {}
    if span is not None:
        extra.update(kafka_first_hour=span[0].isoformat(), kafka_last_hour=span[1].isoformat())
    if latest_hour is not None:
        extra["kafka_latest_plausible_hour"] = latest_hour.isoformat()
    return {"ops": {DATASETS[name].table: {"config": {"kafka_offsets": offsets, **extra}}
                    for name, offsets in kafka_offsets.items()}}
