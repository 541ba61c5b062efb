"""The single Definitions object of the code location: assets, checks, jobs, schedules, sensors."""

from __future__ import annotations

import os

import dagster as dg

from electricity_assets.assets.features import feature_assets
from electricity_assets.assets.freshness import freshness_checks
from electricity_assets.assets.models import model_asset_checks, model_assets
from electricity_assets.assets.raw import raw_asset_checks, raw_assets
from electricity_assets.instance_storage import DEFAULT_EVENT_BATCH_SIZE
from electricity_assets.resources import build_resources
from electricity_assets.schedules import build_operations
from electricity_assets.sensors import stream_jobs, stream_sensors

# Run workers load this module before they emit events: a partition-range run then hands its
# per-partition materialisations to the event log in batches (see instance_storage.py).
os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", str(DEFAULT_EVENT_BATCH_SIZE))

# Each capability exposes its lists; this file only gathers them.
assets: list = [*raw_assets, *feature_assets, *model_assets]
asset_checks: list = [*raw_asset_checks, *freshness_checks, *model_asset_checks]
# Hourly/retrain jobs + schedules and the serving-snapshot sensor, over the assets defined above.
operation_jobs, operation_schedules, operation_sensors = build_operations(assets)
jobs: list = [*operation_jobs, *stream_jobs]
schedules: list = [*operation_schedules]
sensors: list = [*operation_sensors, *stream_sensors]

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
