"""Kafka settings from the environment: secrets stay out of reprs, bad values fail clearly."""

from __future__ import annotations

import pytest

from electricity_assets.datasets import DEMAND, WEATHER
from electricity_assets.settings import KafkaSettings
from electricity_assets.streaming.errors import KafkaConfigError


def test_sasl_settings_reach_the_client_but_never_the_repr(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BROKER_ADDRESS", "broker-1:9093,broker-2:9093")
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "ingest")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "s3cr3t-pw")
    monkeypatch.setenv("KAFKA_DEMAND_TOPIC", "grid.demand")
    settings = KafkaSettings.from_env()
    assert settings.client_config() == {
        "bootstrap.servers": "broker-1:9093,broker-2:9093", "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "ingest",
        "sasl.password": "s3cr3t-pw"}
    assert "s3cr3t-pw" not in repr(settings) and "s3cr3t-pw" not in str(settings)
    assert (settings.topic(DEMAND), settings.topic(WEATHER)) == ("grid.demand",
                                                                  "electricity.weather.v1")


def test_defaults_need_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("KAFKA_BROKER_ADDRESS", "KAFKA_BROKER_PORT", "KAFKA_DEMAND_TOPIC",
                "KAFKA_MAX_BATCH_MESSAGES"):
        monkeypatch.delenv(var, raising=False)
    settings = KafkaSettings.from_env()
    assert settings.client_config() == {"bootstrap.servers": "127.0.0.1:19092"}
    assert settings.topic(DEMAND) == "electricity.demand.v1"
    assert settings.max_batch_messages == 50_000


def test_a_bad_number_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_MAX_BATCH_MESSAGES", "lots")
    with pytest.raises(KafkaConfigError, match="KAFKA_MAX_BATCH_MESSAGES='lots'"):
        KafkaSettings.from_env()


def test_every_client_follows_kafka_broker_port_like_the_stack(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAFKA_BROKER_ADDRESS", raising=False)
    monkeypatch.setenv("KAFKA_BROKER_PORT", "29999")
    assert KafkaSettings.from_env().bootstrap_servers == "127.0.0.1:29999"
    monkeypatch.setenv("KAFKA_BROKER_ADDRESS", "kafka-1:9092")  # an external cluster wins
    assert KafkaSettings.from_env().bootstrap_servers == "kafka-1:9092"
    monkeypatch.delenv("KAFKA_BROKER_ADDRESS")
    monkeypatch.setenv("KAFKA_BROKER_PORT", "port")
    with pytest.raises(KafkaConfigError, match="KAFKA_BROKER_PORT='port'"):
        KafkaSettings.from_env()
