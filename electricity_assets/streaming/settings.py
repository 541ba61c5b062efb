"""Kafka connection and topic settings, read from environment variables (`Settings.kafka`; the
variables are documented with every other one in `electricity_assets.settings.ENVIRONMENT`).

Variables (all optional):
- KAFKA_BROKER_ADDRESS: bootstrap servers of an existing Kafka/Redpanda; unset -> the project
  starts its own Tansu broker (see `broker.py`) and publishes its address in this variable.
- KAFKA_BROKER_PORT (19092): port of that local broker; with KAFKA_BROKER_ADDRESS unset every
  client (sensor, runs, `electricity-replay`, `electricity-live`) uses 127.0.0.1:<port>.
- KAFKA_SECURITY_PROTOCOL (PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL), KAFKA_SASL_MECHANISM
  (PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512), KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD,
  KAFKA_SSL_CA_LOCATION: credentials; never logged (`repr` redacts the password).
- KAFKA_DEMAND_TOPIC (default electricity.demand.v1), KAFKA_WEATHER_TOPIC
  (electricity.weather.v1), KAFKA_TOPIC_PARTITIONS (3): topics created if missing.
- KAFKA_MAX_BATCH_MESSAGES (50000): the most messages one sensor tick hands to one run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from electricity_assets.datasets import DEMAND, WEATHER, Dataset

DEFAULT_TOPICS = {DEMAND.name: "electricity.demand.v1", WEATHER.name: "electricity.weather.v1"}
_TOPIC_ENV = {DEMAND.name: "KAFKA_DEMAND_TOPIC", WEATHER.name: "KAFKA_WEATHER_TOPIC"}
DEFAULT_BROKER_PORT = 19092
DEFAULT_BROKER_ADDRESS = f"127.0.0.1:{DEFAULT_BROKER_PORT}"


class KafkaConfigError(RuntimeError):
    """The Kafka settings or the broker's answer make streaming impossible; message says why."""


class BrokerUnavailable(KafkaConfigError):
    """No broker answered at the configured address."""


class KafkaAuthError(BrokerUnavailable):
    """The broker answered but refused the credentials or the TLS handshake."""


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap_servers: str = DEFAULT_BROKER_ADDRESS
    topics: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_TOPICS))
    topic_partitions: int = 3
    max_batch_messages: int = 50_000
    security_protocol: str | None = None
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_ca_location: str | None = None

    @classmethod
    def from_env(cls) -> KafkaSettings:
        env = os.environ
        return cls(
            bootstrap_servers=env.get("KAFKA_BROKER_ADDRESS") or local_broker_address(),
            topics={name: env.get(var) or DEFAULT_TOPICS[name] for name, var in _TOPIC_ENV.items()},
            topic_partitions=_positive_int("KAFKA_TOPIC_PARTITIONS", 3),
            max_batch_messages=_positive_int("KAFKA_MAX_BATCH_MESSAGES", 50_000),
            security_protocol=env.get("KAFKA_SECURITY_PROTOCOL") or None,
            sasl_mechanism=env.get("KAFKA_SASL_MECHANISM") or None,
            sasl_username=env.get("KAFKA_SASL_USERNAME") or None,
            sasl_password=env.get("KAFKA_SASL_PASSWORD") or None,
            ssl_ca_location=env.get("KAFKA_SSL_CA_LOCATION") or None,
        )

    def topic(self, dataset: Dataset) -> str:
        return self.topics[dataset.name]

    def client_config(self) -> dict[str, Any]:
        """librdkafka settings shared by producer, consumer and admin client (holds the secret)."""
        conf: dict[str, Any] = {"bootstrap.servers": self.bootstrap_servers}
        optional = {
            "security.protocol": self.security_protocol,
            "sasl.mechanism": self.sasl_mechanism,
            "sasl.username": self.sasl_username,
            "sasl.password": self.sasl_password,
            "ssl.ca.location": self.ssl_ca_location,
        }
        conf.update({k: v for k, v in optional.items() if v})
        return conf


def local_broker_port() -> int:
    """KAFKA_BROKER_PORT, the port of the broker the stack starts (and every client's default)."""
    return _positive_int("KAFKA_BROKER_PORT", DEFAULT_BROKER_PORT)


def local_broker_address() -> str:
    return f"127.0.0.1:{local_broker_port()}"


def _positive_int(var: str, default: int) -> int:
    raw = os.environ.get(var)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise KafkaConfigError(f"{var}={raw!r}: expected a positive integer")
    return value
