"""Planning sensor batches: which offset ranges come next and which hours they touch.

The sensor never consumes for good: it reads end offsets, peeks at the messages of the next
bounded range to learn their hours, and hands the range itself to a run. The run re-reads exactly
that range (`ingest.ingest_offsets`), so a failed run re-executed reads the same messages, and a
range ingested twice writes the same rows (upserts on the primary key).

Cursor (JSON): {"topics": {"<topic>": {"id": "<topic id>", "next": {"<partition>": <offset>}}}}.
A topic whose id changed (recreated, or the in-memory broker restarted) restarts from its first
stored offset; the topic id is part of every run key, so new ranges never collide with old keys.

A batch's hours are grouped into spans separated by more than `MAX_GAP` (`hour_spans`): the
sensor requests one run per span, so a late correction for 2016 next to today's hours costs two
short runs, not one run over every partition in between. Implausible hours (`plausibility.py`)
are in no span: the run makes those messages dead letters.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from confluent_kafka import Consumer

from electricity_assets.datasets import DATASETS, Dataset
from electricity_assets.streaming.client import (
    OffsetRanges,
    end_offsets,
    ensure_topics,
    new_consumer,
    read_ranges,
    topic_ids,
)
from electricity_assets.streaming.ingest import format_offsets
from electricity_assets.streaming.messages import message_hour
from electricity_assets.streaming.settings import KafkaConfigError, KafkaSettings

logger = logging.getLogger(__name__)

MAX_GAP = timedelta(hours=24)  # hours further apart than this go to separate runs
MAX_SPANS = 8  # per batch: beyond, the closest spans are merged (each run re-reads the batch)

HourSpan = tuple[datetime, datetime]  # first and last hour, inclusive


@dataclass(frozen=True)
class TopicPosition:
    topic_id: str
    next_offsets: dict[int, int]


@dataclass
class StreamCursor:
    topics: dict[str, TopicPosition] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str | None) -> StreamCursor:
        if not text:
            return cls()
        try:
            raw = json.loads(text)["topics"]
            return cls({t: TopicPosition(v["id"], {int(p): int(o) for p, o in v["next"].items()})
                        for t, v in raw.items()})
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise KafkaConfigError(
                f"the sensor cursor is not valid ({exc}): reset it in the UI (sensor page -> "
                "cursor) to re-read every stored message; rows are upserted, so no duplicates"
            ) from None

    def to_json(self) -> str:
        topics = {t: {"id": pos.topic_id,
                      "next": {str(p): o for p, o in sorted(pos.next_offsets.items())}}
                  for t, pos in sorted(self.topics.items())}
        return json.dumps({"topics": topics}, separators=(",", ":"))


@dataclass
class Batch:
    """One run's worth of messages: offset ranges per dataset and the hours they touch."""

    topics: dict[str, str]                 # dataset name -> topic
    topic_ids: dict[str, str]              # dataset name -> topic id
    ranges: dict[str, OffsetRanges]        # dataset name -> partition -> [start, end)
    latest_hour: datetime | None = None    # the last plausible hour when it was planned
    messages: int = 0
    spans: list[HourSpan] = field(default_factory=list)  # empty: no plausible, readable hour

    def kafka_offsets(self, dataset: Dataset) -> str:
        return format_offsets(self.topics[dataset.name], self.ranges.get(dataset.name, {}),
                              self.topic_ids[dataset.name])

    @property
    def run_key(self) -> str:
        """Derived from the offset ranges only: the same batch always gets the same key."""
        parts = []
        for name in sorted(self.ranges):
            spans = ",".join(f"{p}:{s}-{e}" for p, (s, e) in sorted(self.ranges[name].items()))
            parts.append(f"{self.topics[name]}@{self.topic_ids[name][:12]}[{spans}]")
        return "kafka|" + "|".join(parts)


def _allocate(backlog: Mapping[tuple[str, int], tuple[int, int]],
              budget: int) -> dict[tuple[str, int], tuple[int, int]]:
    """Share `budget` messages fairly across partitions with a backlog (water-filling)."""
    left = {k: e - s for k, (s, e) in backlog.items() if e > s}
    take = dict.fromkeys(left, 0)
    while left and budget > 0:
        share = max(budget // len(left), 1)
        for key in sorted(left):
            n = min(share, left[key], budget)
            take[key] += n
            left[key] -= n
            budget -= n
            if left[key] == 0:
                del left[key]
            if budget == 0:
                break
    return {k: (backlog[k][0], backlog[k][0] + n) for k, n in take.items() if n}


def hour_spans(hours: Iterable[datetime], max_gap: timedelta = MAX_GAP,
               max_spans: int = MAX_SPANS) -> list[HourSpan]:
    """Sorted hours cut at every gap wider than `max_gap`, keeping the widest `max_spans - 1`."""
    ordered = sorted(set(hours))
    if not ordered:
        return []
    gaps = [(b - a, i) for i, (a, b) in enumerate(zip(ordered, ordered[1:], strict=False))
            if b - a > max_gap]
    cuts = sorted(i for _, i in sorted(gaps, reverse=True)[:max_spans - 1])
    if len(gaps) > len(cuts):
        logger.warning("a batch touches %d separate stretches of hours: merged into %d runs",
                       len(gaps) + 1, max_spans)
    starts = [0, *(i + 1 for i in cuts)]
    ends = [*cuts, len(ordered) - 1]
    return [(ordered[s], ordered[e]) for s, e in zip(starts, ends, strict=True)]


def plan_batches(settings: KafkaSettings, cursor_text: str | None,
                 datasets: Iterable[Dataset] = DATASETS.values(),
                 max_batches: int = 8,
                 latest_hour: datetime | None = None) -> tuple[list[Batch], StreamCursor]:
    """The next batches (each at most settings.max_batch_messages) and the cursor after them.

    `latest_hour`: the last plausible hour; later hours are left out of the batches' spans.
    """
    datasets = list(datasets)
    topics = {d.name: settings.topic(d) for d in datasets}
    ensure_topics(settings, topics.values(), timeout_s=5)  # a tick must stay short
    ids_by_topic = topic_ids(settings, topics.values())
    if None in ids_by_topic.values():
        raise KafkaConfigError(f"topics {sorted(topics.values())} vanished while planning")
    ids = {name: str(ids_by_topic[topic]) for name, topic in topics.items()}
    cursor = StreamCursor.parse(cursor_text)
    consumer = new_consumer(settings)
    try:
        position: dict[tuple[str, int], tuple[int, int]] = {}
        for name, topic in topics.items():
            known = cursor.topics.get(topic)
            if known is not None and known.topic_id != ids[name]:
                logger.warning("topic %s was recreated (new topic id): reading it from the start",
                               topic)
                known = None
            for partition, (low, end) in end_offsets(consumer, topic).items():
                start = max(known.next_offsets.get(partition, low) if known else low, low)
                position[(name, partition)] = (min(start, end), end)
        batches: list[Batch] = []
        for _ in range(max_batches):
            chosen = _allocate(position, settings.max_batch_messages)
            if not chosen:
                break
            batch = Batch(topics=topics, topic_ids=ids, ranges={},
                          latest_hour=latest_hour)
            for (name, partition), span in chosen.items():
                batch.ranges.setdefault(name, {})[partition] = span
                position[(name, partition)] = (span[1], position[(name, partition)][1])
            _scan_hours(consumer, batch)
            batches.append(batch)
    finally:
        consumer.close()
    next_cursor = StreamCursor({
        topic: TopicPosition(ids[name], {p: s for (n, p), (s, _) in position.items()
                                               if n == name})
        for name, topic in topics.items()})
    return batches, next_cursor


def _scan_hours(consumer: Consumer, batch: Batch) -> None:
    hours: set[datetime] = set()
    for name, ranges in batch.ranges.items():
        for msg in read_ranges(consumer, batch.topics[name], ranges, timeout_s=30):
            batch.messages += 1
            hour = message_hour(msg.value, batch.latest_hour)
            if hour is not None:
                hours.add(hour)
    batch.spans = hour_spans(hours)
