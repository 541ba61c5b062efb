"""The single Definitions object of the code location: assets, checks, jobs, schedules, sensors."""

from __future__ import annotations

import dagster as dg

from electricity_assets.assets.backtest import backtest_assets
from electricity_assets.assets.catalog import catalog_specs
from electricity_assets.assets.features import feature_assets
from electricity_assets.assets.freshness import freshness_checks
from electricity_assets.assets.models import model_asset_checks, model_assets
from electricity_assets.assets.raw import raw_asset_checks, raw_assets
from electricity_assets.jobs import (
    hourly_forecast_job,
    raw_checks_job,
    retrain_job,
    stream_ingest_job,
)
from electricity_assets.resources import build_resources
from electricity_assets.schedules import hourly_forecast_schedule, retrain_schedule
from electricity_assets.sensors import (
    kafka_stream_sensor,
    publish_serving_snapshot,
    raw_checks_after_stream_runs,
    refetch_lost_hours,
    reissue_after_late_inputs,
)

assets: list = [*raw_assets, *feature_assets, *model_assets, *backtest_assets,
                 *catalog_specs]
asset_checks: list = [*raw_asset_checks, *freshness_checks, *model_asset_checks]
jobs: list = [hourly_forecast_job, retrain_job, stream_ingest_job, raw_checks_job]
schedules: list = [hourly_forecast_schedule, retrain_schedule]
sensors: list = [kafka_stream_sensor, raw_checks_after_stream_runs, publish_serving_snapshot,
                 reissue_after_late_inputs, refetch_lost_hours]

defs = dg.Definitions(
    assets=assets,
    asset_checks=asset_checks,
    jobs=jobs,
    schedules=schedules,
    sensors=sensors,
    resources=build_resources(),
    # DuckDB admits one writer process: steps of a run take turns in one process instead of
    # fighting over the file lock from parallel subprocesses (the work inside is vectorised).
    executor=dg.in_process_executor,
)
