"""One configuration surface: resources from the environment, secrets only as EnvVar."""

from __future__ import annotations

import importlib
import os

import dagster as dg
import pytest

from electricity_assets.resources import KafkaResource, build_resources


def test_kafka_secret_reaches_the_client_but_never_the_resource_config(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"BROKER_ADDRESS": "broker.example:9093", "SASL_PASSWORD": "s3cret-value",
                        "SECURITY_PROTOCOL": "SASL_SSL", "DEMAND_TOPIC": "grid.demand"}.items():
        monkeypatch.setenv(f"KAFKA_{name}", value)
    kafka = build_resources()["kafka"]
    assert isinstance(kafka.sasl_password, dg.EnvVar)  # what the UI shows: the variable's name
    assert "s3cret-value" not in repr(kafka)

    @dg.op
    def read_settings(kafka: KafkaResource) -> dict:
        return kafka.kafka_settings().client_config() | {"topic": kafka.demand_topic}

    job = dg.GraphDefinition(name="g", node_defs=[read_settings]).to_job(
        resource_defs={"kafka": kafka})
    conf = job.execute_in_process().output_for_node("read_settings")
    assert conf["sasl.password"] == "s3cret-value"
    assert conf["bootstrap.servers"] == "broker.example:9093"
    assert conf["topic"] == "grid.demand"


def test_loading_the_code_location_writes_no_environment_variable(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import electricity_assets.definitions as definitions

    for name in ("DAGSTER_EVENT_BATCH_SIZE", "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"):
        monkeypatch.delenv(name, raising=False)

    before = dict(os.environ)
    importlib.reload(definitions)
    assert dict(os.environ) == before
