"""Why streaming cannot go on: raised by the Kafka settings and clients, shown to the user."""

from __future__ import annotations


class KafkaConfigError(RuntimeError):
    """The Kafka settings or the broker's answer make streaming impossible; message says why."""


class BrokerUnavailable(KafkaConfigError):
    """No broker answered at the configured address."""


class KafkaAuthError(BrokerUnavailable):
    """The broker answered but refused the credentials or the TLS handshake."""
