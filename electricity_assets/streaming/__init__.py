"""Kafka streaming: broker for local runs, message schemas, producers and the offset-range reader.

Data flow: producers publish one message per (region, hour[, type]) keyed by region; the sensor in
`electricity_assets/sensors.py` only reads offsets and hours, then requests a run that carries the
offset range; the raw assets call `ingest.ingest_offsets` to re-read exactly that range and upsert
it. No module here imports Dagster.
"""
