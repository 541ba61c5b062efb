"""Publishing hourly rows to Kafka: the shared mechanism behind the replay and live producers."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
from confluent_kafka import KafkaError, Message, Producer

from electricity_assets.datasets import DATASETS, Dataset
from electricity_assets.settings import KafkaSettings
from electricity_assets.sources.bundled import read_bundled
from electricity_assets.streaming.acks import AckLedger
from electricity_assets.streaming.client import ensure_topics, new_producer, topic_ids
from electricity_assets.streaming.errors import KafkaConfigError
from electricity_assets.streaming.messages import encode_frame, message_hour

logger = logging.getLogger(__name__)


class Publisher:
    """A producer that surfaces delivery failures instead of dropping messages silently, and
    records what the broker acknowledged per topic incarnation (`acks.AckLedger`)."""

    def __init__(self, settings: KafkaSettings, ledger: AckLedger | None = None,
                 **overrides: object) -> None:
        self.settings = settings
        self.producer: Producer = new_producer(settings, **overrides)
        self.delivered = 0
        self.failures: list[str] = []
        self.ledger = ledger if ledger is not None else AckLedger()
        self._topic_ids: dict[str, str] = {}

    def _topic_id(self, topic: str, refresh: bool = False) -> str:
        if refresh or topic not in self._topic_ids:
            try:
                found = topic_ids(self.settings, [topic])[topic]
            except Exception as exc:  # noqa: BLE001 - the broker is down: keep the last id
                logger.warning("cannot describe topic %s: %s", topic, exc)
                found = None
            if found is not None:
                self._topic_ids[topic] = found
        return self._topic_ids.get(topic, "unknown")

    def _on_delivery(self, error: KafkaError | None, msg: Message) -> None:
        if error is not None:
            if len(self.failures) < 10:
                self.failures.append(error.str())
            return
        self.delivered += 1
        topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
        topic_id = self._topic_id(topic)
        if offset < self.ledger.end(topic, topic_id, partition):
            # An offset acknowledged before, again: the broker lost the topic and it was
            # recreated (a new id); what the old one held is accounted under the old id.
            topic_id = self._topic_id(topic, refresh=True)
        self.ledger.record(topic, topic_id, partition, offset, message_hour(msg.value()))

    def publish(self, topic: str, messages: Iterable[tuple[bytes, bytes]]) -> int:
        sent = 0
        for key, value in messages:
            while True:
                try:
                    self.producer.produce(topic, value=value, key=key,
                                          on_delivery=self._on_delivery)
                    break
                except BufferError:  # local queue full: let librdkafka send, then retry
                    self.producer.poll(0.05)
            sent += 1
            if sent % 5000 == 0:
                self.producer.poll(0)
        self.producer.poll(0)
        self.ledger.write()  # the acknowledgements so far, for the sensor's accounting
        return sent

    def publish_frame(self, dataset: Dataset, frame: pd.DataFrame, source: str) -> int:
        return self.publish(self.settings.topic(dataset), encode_frame(dataset, frame, source))

    def flush(self, timeout_s: float = 60.0) -> None:
        left = self.producer.flush(timeout_s)
        self.ledger.write()
        if left or self.failures:
            raise KafkaConfigError(
                f"{left} messages not delivered to {self.settings.bootstrap_servers} within "
                f"{timeout_s:.0f} s; errors: {self.failures or 'none reported'}: check the broker"
            )


def hour_chunks(start: datetime, end: datetime, step: timedelta) -> Iterator[tuple[datetime,
                                                                                     datetime]]:
    cursor = start
    while cursor < end:
        yield cursor, min(cursor + step, end)
        cursor += step


def replay(settings: KafkaSettings, start: datetime, end: datetime, data_dir: Path,
           hours_per_second: float = 0.0, datasets: Iterable[str] = ("demand", "weather"),
           progress: Callable[[datetime, int], None] | None = None) -> int:
    """Publish the replay files' rows with start <= period_utc < end, hour by hour.

    `hours_per_second` paces publication (1.0 = one hour of data per second); 0 = as fast as
    possible. Returns the number of messages published. `progress(hour_done, messages)` is called
    after every published hour.
    """
    chosen = [DATASETS[name] for name in datasets]
    ensure_topics(settings, [settings.topic(d) for d in chosen])
    publisher = Publisher(settings)
    published = 0
    began = time.monotonic()
    hours_done = 0
    # Read a day at a time when paced, a month when not: reading the CSV dominates otherwise.
    step = timedelta(days=1 if hours_per_second else 31)
    for chunk_start, chunk_end in hour_chunks(start, end, step):
        frames = {d.name: read_bundled(d, chunk_start, chunk_end, data_dir) for d in chosen}
        if not hours_per_second:
            for dataset in chosen:
                published += publisher.publish_frame(dataset, frames[dataset.name], "replay")
            hours_done += int((chunk_end - chunk_start) / timedelta(hours=1))
            if progress:
                progress(chunk_end, published)
            continue
        for hour, _ in hour_chunks(chunk_start, chunk_end, timedelta(hours=1)):
            for dataset in chosen:
                frame = frames[dataset.name]
                published += publisher.publish_frame(
                    dataset, frame[frame["period_utc"] == pd.Timestamp(hour)], "replay")
            publisher.producer.flush(10)
            hours_done += 1
            if progress:
                progress(hour + timedelta(hours=1), published)
            wait = began + hours_done / hours_per_second - time.monotonic()
            if wait > 0:
                time.sleep(wait)
    publisher.flush()
    logger.info("replayed %d messages for [%s, %s)", published, start, end)
    return published
