"""What the producers had acknowledged, per topic incarnation: the ground truth for lost messages.

A broker that keeps messages in memory (the bundled Tansu) forgets its topics when it dies; the
topic comes back with a new id and offsets from 0. The consumer side knows the offsets it handed
to runs and the end offsets it saw at its last tick, but not the messages acknowledged after that
tick and before the death. Each `Publisher` therefore records, per topic id and partition, the end
of the offsets the broker acknowledged (and the hours those messages are about) in a small JSON
file of its own under `ELECTRICITY_HOME/stream_acks/`; the sensor reads them all
(`acknowledged_ends`) and counts [its position, the acknowledged end) of every retired topic id as
lost, so every acknowledged message is either stored or counted.

File: {"<topic>": {"<topic id>": {"ends": {"<partition>": <end>},
                                  "first_hour": iso, "last_hour": iso}}}
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from electricity_assets import settings

logger = logging.getLogger(__name__)

WRITE_EVERY_S = 0.5
DIRECTORY = "stream_acks"


def ack_dir() -> Path:
    return settings.local_home() / DIRECTORY


@dataclass
class Incarnation:
    ends: dict[int, int] = field(default_factory=dict)
    first_hour: datetime | None = None
    last_hour: datetime | None = None

    def add(self, partition: int, offset: int, hour: datetime | None) -> None:
        self.ends[partition] = max(self.ends.get(partition, 0), offset + 1)
        self.add_hour(hour)

    def add_hour(self, hour: datetime | None) -> None:
        if hour is not None:
            self.first_hour = hour if self.first_hour is None else min(self.first_hour, hour)
            self.last_hour = hour if self.last_hour is None else max(self.last_hour, hour)

    def to_json(self) -> dict:
        return {"ends": {str(p): e for p, e in sorted(self.ends.items())},
                "first_hour": self.first_hour.isoformat() if self.first_hour else None,
                "last_hour": self.last_hour.isoformat() if self.last_hour else None}

    @classmethod
    def from_json(cls, raw: dict) -> Incarnation:
        hour = (lambda t: datetime.fromisoformat(t) if t else None)  # noqa: E731
        return cls({int(p): int(e) for p, e in raw.get("ends", {}).items()},
                   hour(raw.get("first_hour")), hour(raw.get("last_hour")))


class AckLedger:
    """One producer's acknowledged offsets, written to its own file (atomic replace)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or ack_dir() / f"producer-{os.getpid()}-{time.time_ns()}.json"
        self.topics: dict[str, dict[str, Incarnation]] = {}
        self._written = 0.0
        self._dirty = False

    def record(self, topic: str, topic_id: str, partition: int, offset: int,
               hour: datetime | None) -> None:
        self.topics.setdefault(topic, {}).setdefault(topic_id, Incarnation()).add(
            partition, offset, hour)
        self._dirty = True
        if time.monotonic() - self._written >= WRITE_EVERY_S:
            self.write()

    def end(self, topic: str, topic_id: str, partition: int) -> int:
        return self.topics.get(topic, {}).get(topic_id, Incarnation()).ends.get(partition, 0)

    def write(self) -> None:
        if not self._dirty:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps({t: {i: inc.to_json() for i, inc in ids.items()}
                                       for t, ids in self.topics.items()}))
            os.replace(tmp, self.path)
        except OSError as exc:  # accounting must never stop publishing
            logger.warning("cannot write the acknowledged offsets to %s: %s", self.path, exc)
            return
        self._written = time.monotonic()
        self._dirty = False


def acknowledged(directory: Path | None = None) -> dict[str, dict[str, Incarnation]]:
    """topic -> topic id -> what every producer had acknowledged in that incarnation (merged)."""
    merged: dict[str, dict[str, Incarnation]] = {}
    for path in sorted((directory or ack_dir()).glob("*.json")):
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError):  # being replaced right now: read next tick
            continue
        for topic, ids in raw.items():
            for topic_id, inc in ids.items():
                into = merged.setdefault(topic, {}).setdefault(topic_id, Incarnation())
                one = Incarnation.from_json(inc)
                for partition, end in one.ends.items():
                    into.ends[partition] = max(into.ends.get(partition, 0), end)
                into.add_hour(one.first_hour)
                into.add_hour(one.last_hour)
    return merged
