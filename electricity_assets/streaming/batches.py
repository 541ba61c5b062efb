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
from electricity_assets.settings import KafkaSettings
from electricity_assets.streaming.acks import Incarnation, acknowledged
from electricity_assets.streaming.client import (
    OffsetRanges,
    end_offsets,
    ensure_topics,
    new_consumer,
    read_ranges,
    topic_ids,
)
from electricity_assets.streaming.errors import KafkaConfigError
from electricity_assets.streaming.ingest import format_offsets
from electricity_assets.streaming.messages import message_hour

logger = logging.getLogger(__name__)

MAX_GAP = timedelta(hours=24)  # hours further apart than this go to separate runs
MAX_SPANS = 8  # per batch: beyond, the closest spans are merged (each run re-reads the batch)

HourSpan = tuple[datetime, datetime]  # first and last hour, inclusive


@dataclass(frozen=True)
class TopicPosition:
    topic_id: str
    next_offsets: dict[int, int]
    seen: dict[int, int] = field(default_factory=dict)  # end offsets at the last tick


RETIRED_KEPT = 20  # old incarnations per topic whose late acknowledgements are still counted


@dataclass
class StreamCursor:
    topics: dict[str, TopicPosition] = field(default_factory=dict)
    # topic -> id of a lost incarnation -> partition -> offsets accounted for (handed to a run,
    # or counted as lost): what the producers acknowledged beyond is lost too.
    retired: dict[str, dict[str, dict[int, int]]] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str | None) -> StreamCursor:
        if not text:
            return cls()
        try:
            parsed = json.loads(text)
            raw = parsed["topics"]
            offsets = (lambda d: {int(p): int(o) for p, o in d.items()})  # noqa: E731
            return cls({t: TopicPosition(v["id"], offsets(v["next"]), offsets(v.get("seen", {})))
                        for t, v in raw.items()},
                       {t: {i: offsets(ends) for i, ends in ids.items()}
                        for t, ids in parsed.get("retired", {}).items()})
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise KafkaConfigError(
                f"the sensor cursor is not valid ({exc}): reset it in the UI (sensor page -> "
                "cursor) to re-read every stored message; rows are upserted, so no duplicates"
            ) from None

    def to_json(self) -> str:
        ordered = (lambda d: {str(p): o for p, o in sorted(d.items())})  # noqa: E731
        topics = {t: {"id": pos.topic_id, "next": ordered(pos.next_offsets),
                      **({"seen": ordered(pos.seen)} if pos.seen else {})}
                  for t, pos in sorted(self.topics.items())}
        retired = {t: {i: ordered(ends) for i, ends in ids.items()}
                   for t, ids in sorted(self.retired.items()) if ids}
        return json.dumps({"topics": topics, **({"retired": retired} if retired else {})},
                          separators=(",", ":"))


@dataclass
class Batch:
    """One run's worth of messages: offset ranges per dataset and the hours they touch."""

    topics: dict[str, str]                 # dataset name -> topic
    topic_ids: dict[str, str]              # dataset name -> topic id
    ranges: dict[str, OffsetRanges]        # dataset name -> partition -> [start, end)
    latest_hour: datetime | None = None    # the last plausible hour when it was planned
    messages: int = 0
    spans: list[HourSpan] = field(default_factory=list)  # empty: no plausible, readable hour
    # Offsets of a lost incarnation (the broker lost the topic before they were handed to a
    # run): the run counts them as lost; `spans` are the hours they were about, when known.
    lost: bool = False

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
        return ("kafka-lost|" if self.lost else "kafka|") + "|".join(parts)


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
        seen: dict[str, dict[int, int]] = {}
        for name, topic in topics.items():
            known = cursor.topics.get(topic)
            if known is not None and known.topic_id != ids[name]:
                logger.warning("topic %s was recreated (new topic id; the broker lost it?): "
                               "reading it from the start; offsets of the old one not ingested "
                               "yet are counted as lost", topic)
                _retire(cursor, topic, known)
                known = None
            seen[topic] = {}
            for partition, (low, end) in end_offsets(consumer, topic).items():
                start = max(known.next_offsets.get(partition, low) if known else low, low)
                position[(name, partition)] = (min(start, end), end)
                seen[topic][partition] = end
        batches: list[Batch] = _lost_batches(cursor, topics, ids, latest_hour)
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
                                               if n == name}, seen[topic])
        for name, topic in topics.items()}, cursor.retired)
    return batches, next_cursor


def _retire(cursor: StreamCursor, topic: str, known: TopicPosition) -> None:
    """Keep the lost incarnation, accounted up to what was handed to runs: the rest it was seen
    to hold, and what producers acknowledged in it, is lost (`_lost_batches`)."""
    retired = cursor.retired.setdefault(topic, {})
    retired[known.topic_id] = dict(known.next_offsets)
    while len(retired) > RETIRED_KEPT:
        del retired[next(iter(retired))]


def _lost_batches(cursor: StreamCursor, topics: dict[str, str], ids: dict[str, str],
                  latest_hour: datetime | None) -> list[Batch]:
    """One batch per lost incarnation with offsets not accounted for yet: those seen by the
    sensor before the topic was lost and those the producers acknowledged (`acks`)."""
    acked = acknowledged() if any(cursor.retired.values()) else {}
    batches = []
    for name, topic in topics.items():
        for old_id, accounted in cursor.retired.get(topic, {}).items():
            known = cursor.topics.get(topic)
            seen = known.seen if known is not None and known.topic_id == old_id else {}
            incarnation = acked.get(topic, {}).get(old_id, Incarnation())
            ranges: OffsetRanges = {}
            for partition in sorted({*accounted, *seen, *incarnation.ends}):
                start = accounted.get(partition, 0)
                end = max(seen.get(partition, 0), incarnation.ends.get(partition, 0))
                if end > start:
                    ranges[partition] = (start, end)
                    accounted[partition] = end
            if not ranges:
                continue
            lost = sum(e - s for s, e in ranges.values())
            logger.warning("topic %s incarnation %s: %d acknowledged or seen messages were lost "
                           "before ingestion (%s): counted by a run, hours re-fetched", topic,
                           old_id[:12], lost, ranges)
            # One run for the datasets' losses together (one incarnation per dataset per run).
            batch = next((b for b in batches if name not in b.ranges), None)
            if batch is None:
                batch = Batch(topics=topics, topic_ids=dict(ids), ranges={},
                              latest_hour=latest_hour, lost=True)
                batches.append(batch)
            batch.topic_ids[name] = old_id
            batch.ranges[name] = ranges
            batch.messages += lost
            if incarnation.first_hour and incarnation.last_hour:
                first, last = incarnation.first_hour, incarnation.last_hour
                if latest_hour is not None:  # a message about 2999 is a dead letter, not a span
                    last = max(min(last, latest_hour), first)
                if batch.spans:
                    first, last = min(first, batch.spans[0][0]), max(last, batch.spans[0][1])
                batch.spans = [(first, last)]
    return batches


def _scan_hours(consumer: Consumer, batch: Batch) -> None:
    hours: set[datetime] = set()
    for name, ranges in batch.ranges.items():
        for msg in read_ranges(consumer, batch.topics[name], ranges, timeout_s=30):
            batch.messages += 1
            hour = message_hour(msg.value, batch.latest_hour)
            if hour is not None:
                hours.add(hour)
    batch.spans = hour_spans(hours)
