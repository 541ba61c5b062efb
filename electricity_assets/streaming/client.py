"""Kafka I/O without consumer groups: topic creation, end offsets and reading exact offset ranges.

Reading uses `assign()` with explicit offsets, so nothing waits on a group join (seconds on Tansu)
and nothing is committed: the position lives in the sensor cursor and in the run's config.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

from electricity_assets.settings import KafkaSettings
from electricity_assets.streaming.errors import BrokerUnavailable, KafkaAuthError, KafkaConfigError

logger = logging.getLogger(__name__)

OffsetRanges = dict[int, tuple[int, int]]  # partition -> [start, end) offsets

# librdkafka error codes that mean the broker answered but refused our credentials or TLS.
_AUTH_ERRORS = {KafkaError._AUTHENTICATION, KafkaError._SSL}


class ClientLog:
    """librdkafka's log lines and errors for one client, instead of its stderr.

    While a broker is down librdkafka retries every ~50 ms and logs each attempt (~19 lines a
    second in dagster.log). One line per client is logged (a sensor tick makes one client
    before it gives up); the errors are kept so the exception can name the cause, e.g. a SASL
    handshake failure, which the client itself reports only as "transport failure".
    """

    def __init__(self) -> None:
        self.errors: list[KafkaError] = []
        self._logged = False

    def log(self, level: int, fmt: str, *args: object) -> None:  # librdkafka's `logger`
        if not self._logged:
            self._logged = True
            logger.log(min(level, logging.WARNING), "librdkafka: " + fmt, *args)

    def error(self, error: KafkaError) -> None:  # librdkafka's `error_cb`
        self.errors.append(error)

    def config(self) -> dict[str, object]:
        return {"logger": self, "error_cb": self.error}

    def auth_failure(self) -> str | None:
        """librdkafka's own text of an authentication or TLS failure, if one happened."""
        return next((e.str() for e in self.errors if e.code() in _AUTH_ERRORS), None)


def client_config(settings: KafkaSettings, log: ClientLog | None = None) -> dict[str, object]:
    return {**settings.client_config(), **(log or ClientLog()).config()}


@dataclass(frozen=True)
class RawMessage:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None


def ensure_topics(settings: KafkaSettings, topics: Iterable[str] | None = None,
                  timeout_s: float = 15.0) -> None:
    """Create the missing topics (settings.topic_partitions partitions each)."""
    wanted = list(topics or settings.topics.values())
    log = ClientLog()
    admin = AdminClient(client_config(settings, log))
    try:
        existing = set(admin.list_topics(timeout=timeout_s).topics)
    except KafkaException as exc:
        admin.poll(0)  # deliver the queued error callbacks
        cause = log.auth_failure()
        if cause:
            raise KafkaAuthError(
                f"authentication failed on {settings.bootstrap_servers}: {cause}: check "
                "KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME, "
                "KAFKA_SASL_PASSWORD and KAFKA_SSL_CA_LOCATION") from None
        raise BrokerUnavailable(
            f"cannot list topics on {settings.bootstrap_servers}: {exc.args[0].str()}: check "
            "KAFKA_BROKER_ADDRESS and the KAFKA_SECURITY_PROTOCOL/SASL settings"
        ) from None
    missing = [t for t in wanted if t not in existing]
    if not missing:
        return
    futures = admin.create_topics(
        [NewTopic(t, num_partitions=settings.topic_partitions, replication_factor=-1)
         for t in missing], operation_timeout=timeout_s, request_timeout=timeout_s)
    for topic, future in futures.items():
        try:
            future.result()
            logger.info("created topic %s with %d partitions", topic, settings.topic_partitions)
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            raise KafkaConfigError(
                f"the broker refused to create topic {topic}: {error.str()}: create it yourself "
                "(or grant this user CREATE) or set KAFKA_DEMAND_TOPIC/KAFKA_WEATHER_TOPIC"
            ) from None


@dataclass(frozen=True)
class LostRange:
    """Offsets a run was given but the topic no longer holds: they can never be read."""

    partition: int
    start: int
    end: int  # exclusive
    reason: str


def topic_ids(settings: KafkaSettings, topics: Iterable[str]) -> dict[str, str | None]:
    """topic -> its id (changes when the topic is recreated); None when the topic is gone."""
    admin = AdminClient(client_config(settings))
    futures = admin.describe_topics(TopicCollection(list(topics)), request_timeout=10)
    ids: dict[str, str | None] = {}
    for topic, future in futures.items():
        try:
            ids[topic] = str(future.result().topic_id)
        except KafkaException as exc:
            if exc.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                ids[topic] = None
                continue
            raise KafkaConfigError(f"cannot describe topic {topic}: {exc.args[0].str()}") from None
    return ids


def split_lost(consumer: Consumer, settings: KafkaSettings, topic: str,
               ranges: Mapping[int, tuple[int, int]],
               topic_id: str | None) -> tuple[OffsetRanges, list[LostRange]]:
    """(the part of `ranges` the topic still holds, the parts it lost and why).

    `topic_id` is the id the ranges were planned on: under another id the offsets name other
    messages (the topic was recreated), so all of them are lost.
    """
    wanted = {p: (s, e) for p, (s, e) in ranges.items() if e > s}
    if not wanted:
        return {}, []
    current = topic_ids(settings, [topic])[topic]
    if current is None or (topic_id is not None and current != topic_id):
        why = ("the topic no longer exists" if current is None
               else "the topic was recreated (new topic id) before the run read them")
        return {}, [LostRange(p, s, e, why) for p, (s, e) in sorted(wanted.items())]
    stored = end_offsets(consumer, topic)
    readable: OffsetRanges = {}
    lost: list[LostRange] = []
    for partition, (start, end) in sorted(wanted.items()):
        low, high = stored.get(partition, (0, 0))
        if start < min(low, end):
            lost.append(LostRange(partition, start, min(low, end), "deleted by retention"))
        if max(start, high) < end:
            lost.append(LostRange(partition, max(start, high), end,
                                  "no longer on the topic (recreated or truncated)"))
        if max(start, low) < min(end, high):
            readable[partition] = (max(start, low), min(end, high))
    return readable, lost


def new_consumer(settings: KafkaSettings) -> Consumer:
    return Consumer({
        **client_config(settings),
        "group.id": "electricity-assets-reader",  # required by librdkafka; never joined
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": 20,  # reach end-of-partition fast (default 500 ms per empty fetch)
    })


def new_producer(settings: KafkaSettings, **overrides: object) -> Producer:
    return Producer({**client_config(settings), "linger.ms": 20, "compression.type": "lz4",
                     **overrides})


def watermarks(consumer: Consumer, topic: str, timeout_s: float = 10.0) -> OffsetRanges:
    """partition -> (low, high) offsets: what is still stored and where the next message goes."""
    try:
        metadata = consumer.list_topics(topic, timeout=timeout_s).topics[topic]
        if metadata.error is not None:
            raise KafkaException(metadata.error)
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)
                for p in sorted(metadata.partitions)}
    except KafkaException as exc:
        raise KafkaConfigError(
            f"cannot read offsets of topic {topic}: {exc.args[0].str()}: is the broker up and "
            "the topic created?"
        ) from None


def end_offsets(consumer: Consumer, topic: str, timeout_s: float = 10.0) -> OffsetRanges:
    """partition -> (low, end): the first stored offset and the offset the next message gets.

    The high watermark is not trusted as the end: Tansu reports the last record batch's base
    offset + 1. Seeking one before it and reading to end-of-partition gives the true end on any
    broker, for the price of at most one batch per partition.
    """
    marks = watermarks(consumer, topic, timeout_s)
    ends = {p: (low, high) for p, (low, high) in marks.items()}
    probing = {p: max(low, high - 1) for p, (low, high) in marks.items() if high > low}
    if not probing:
        return ends
    consumer.assign([TopicPartition(topic, p, o) for p, o in probing.items()])
    deadline = time.monotonic() + timeout_s
    try:
        while probing:
            if time.monotonic() > deadline:
                raise KafkaConfigError(
                    f"timed out after {timeout_s:.0f} s finding the end of topic {topic} "
                    f"partitions {sorted(probing)}: is the broker overloaded?")
            for msg in consumer.consume(num_messages=10_000, timeout=0.1):
                partition = msg.partition()
                error = msg.error()
                if partition not in probing:
                    continue
                if error is None:
                    ends[partition] = (ends[partition][0], max(ends[partition][1],
                                                               msg.offset() + 1))
                elif error.code() == KafkaError._PARTITION_EOF:
                    ends[partition] = (ends[partition][0], max(ends[partition][1], msg.offset()))
                    del probing[partition]
                else:
                    raise KafkaConfigError(f"reading the end of topic {topic}: {error.str()}")
    finally:
        consumer.unassign()
    return ends


def read_ranges(consumer: Consumer, topic: str, ranges: Mapping[int, tuple[int, int]],
                timeout_s: float = 60.0) -> Iterator[RawMessage]:
    """Every message of `topic` with start <= offset < end per partition, in partition order.

    Offsets deleted by retention are skipped with a warning (they cannot be re-read); anything
    else missing before `timeout_s` raises, so a run never silently writes half a range.
    """
    pending = {p: (s, e) for p, (s, e) in ranges.items() if e > s}
    if not pending:
        return
    stored = watermarks(consumer, topic)  # only the low watermarks are used
    for partition, (start, end) in list(pending.items()):
        low = stored.get(partition, (0, 0))[0]
        if low > start:
            logger.warning("topic %s partition %d: offsets %d..%d were deleted by retention "
                           "before ingestion", topic, partition, start, min(low, end) - 1)
            if low >= end:
                del pending[partition]
                continue
            pending[partition] = (low, end)
    assigned = [TopicPartition(topic, p, s) for p, (s, _) in pending.items()]
    consumer.assign(assigned)
    deadline = time.monotonic() + timeout_s
    try:
        while pending:
            if time.monotonic() > deadline:
                raise KafkaConfigError(
                    f"timed out after {timeout_s:.0f} s reading topic {topic}, still waiting on "
                    f"{ {p: list(r) for p, r in pending.items()} }: was the topic recreated?"
                )
            for msg in consumer.consume(num_messages=10_000, timeout=0.1):
                partition = msg.partition()
                if partition not in pending:
                    continue
                end = pending[partition][1]
                error = msg.error()
                if error is not None:
                    if error.code() != KafkaError._PARTITION_EOF:
                        raise KafkaConfigError(f"reading topic {topic}: {error.str()}")
                    if msg.offset() >= end:
                        _finish(consumer, topic, pending, partition)
                    continue
                if msg.offset() < end:
                    _, ts = msg.timestamp()
                    yield RawMessage(partition, msg.offset(), msg.key(), msg.value(), ts)
                if msg.offset() >= end - 1:
                    _finish(consumer, topic, pending, partition)
    finally:
        consumer.resume(assigned)  # librdkafka keeps the pause across unassign/assign
        consumer.unassign()


def _finish(consumer: Consumer, topic: str, pending: dict[int, tuple[int, int]],
            partition: int) -> None:
    del pending[partition]
    consumer.pause([TopicPartition(topic, partition)])  # stop fetching past the range
