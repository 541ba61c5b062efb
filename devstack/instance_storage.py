"""Dagster instance storage: the stock sqlite storage, with asset events written in batches.

A single-run backfill over N hourly partitions makes Dagster emit one ASSET_MATERIALIZATION
event per partition. The stock `SqliteEventLogStorage` writes each event in its own two
transactions (the run's shard and the cross-run index), opening a fresh sqlite engine each time:
about 24 ms an event here, 34 minutes for the 83k events of a full-history raw backfill.

Dagster already hands such events over in batches when `DAGSTER_EVENT_BATCH_SIZE` is set (see
`dagster._core.instance.utils`), but the stock sqlite storage then stores them one by one.
`BatchedSqliteEventLogStorage.store_event_batch` writes a batch of asset events in one
transaction per shard, with the same rows the one-by-one path writes. Everything else (runs,
schedules, reads, every other event) is the stock sqlite implementation.

It subclasses private `dagster._core` classes, so it is tied to the Dagster releases it was
tested with (TESTED_DAGSTER, pinned in pyproject.toml): on any other version it logs a warning and
writes events the stock way (slow for long ranged runs, never wrong), and
`test_installed_dagster_is_a_tested_version` fails naming the version.

`dagster.yaml` selects it with `storage: custom:`; the stack starts every Dagster process with
the batch size set (`settings.DAGSTER_PROCESS_ENV`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import dagster
from dagster._core.events import ASSET_EVENTS, AssetCheckEvaluationPlanned
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.event_log.schema import (
    AssetCheckExecutionsTable,
    SqlEventLogStorageTable,
)
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._core.storage.schedules.sqlite.sqlite_schedule_storage import SqliteScheduleStorage
from dagster._core.storage.sqlite_storage import (
    DagsterSqliteStorage,
    _event_logs_directory,
    _runs_directory,
    _schedule_directory,
)
from dagster._serdes import ConfigurableClassData, serialize_value

from electricity_assets.settings import env

logger = logging.getLogger(__name__)

# The Dagster releases this module's private subclassing was tested with (pyproject pins them).
TESTED_DAGSTER = ("1.13.27",)


def untested_dagster() -> str | None:
    """The installed Dagster version when this module was not tested with it, else None."""
    return None if dagster.__version__ in TESTED_DAGSTER else dagster.__version__


def _batchable(event: EventLogEntry) -> bool:
    return (event.is_dagster_event and event.dagster_event_type in ASSET_EVENTS
            and event.get_dagster_event().asset_key is not None)


class BatchedSqliteEventLogStorage(SqliteEventLogStorage):
    """`SqliteEventLogStorage` whose `store_event_batch` writes one transaction per shard."""

    @property
    def supports_partition_subset_in_asset_materialization_planned_events(self) -> bool:
        # One "planned" event per asset for a partition-range run instead of one per hour, in
        # every process that opens this instance (the sensor daemon creates stream runs and
        # writes their plans, and it never imports the code location). Without it a run over
        # a long range spends minutes writing plans before it starts, and freezes every
        # sensor meanwhile. Dagster's trade-off: a failed range run does not mark each of its
        # partitions failed. DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS=0 opts out.
        setting = env("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", "1")
        return setting.lower() not in ("0", "false", "no")

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        run_ids = {event.run_id for event in events}
        if len(events) < 2 or len(run_ids) != 1 or not all(map(_batchable, events)):
            super().store_event_batch(events)  # the stock one-by-one path
            return
        rows = [self._event_to_row(event) for event in events]
        with self.run_connection(run_ids.pop()) as conn:
            conn.execute(SqlEventLogStorageTable.insert(), rows)
        # Mirror into the index shard as `store_event` does: one executemany, RETURNING the
        # storage ids in the rows' order, in one transaction (one fsync).
        insert = SqlEventLogStorageTable.insert().returning(
            SqlEventLogStorageTable.c.id, sort_by_parameter_order=True)
        with self.index_transaction() as conn:
            event_ids = list(conn.execute(insert, rows).scalars())
            self._store_asset_event_tags(conn, events, event_ids)
            # The asset_keys row keeps the latest event per asset: storing only each key's last
            # event leaves it exactly as storing every event in order would.
            latest: dict[str, tuple[EventLogEntry, int]] = {}
            for event, event_id in zip(events, event_ids, strict=True):
                latest[event.get_dagster_event().asset_key.to_string()] = (event, event_id)
            for event, event_id in latest.values():
                self._store_asset_event(conn, event, event_id)

    def _store_asset_check_evaluation_planned(self, event: EventLogEntry,
                                              event_id: int | None) -> None:
        # For a run over a partition range the stock method inserts one PLANNED row per
        # partition, in ONE statement: sqlite refuses that past 4,095 partitions ("too many SQL
        # variables"), so a backfill of more than ~6 months of hourly partitions with its checks
        # selected fails. And the rows would never resolve: a check evaluated once over the
        # range reports partition NULL, updates no partition row and inserts its own, leaving
        # 40k rows PLANNED (1.4 KB each) per check. One NULL-partition row is the one that
        # evaluation updates. (A partitioned check's per-partition evaluations still insert
        # their own rows; only their per-partition PLANNED state is not pre-written.)
        planned = event.get_dagster_event().event_specific_data
        assert isinstance(planned, AssetCheckEvaluationPlanned)
        subset = planned.partitions_subset
        if subset is None or len(subset) <= 1:
            super()._store_asset_check_evaluation_planned(event, event_id)
            return
        with self.index_transaction() as conn:
            conn.execute(AssetCheckExecutionsTable.insert().values(
                asset_key=planned.asset_key.to_string(), check_name=planned.check_name,
                partition=None, run_id=event.run_id,
                execution_status=AssetCheckExecutionRecordStatus.PLANNED.value,
                evaluation_event=serialize_value(event),
                evaluation_event_timestamp=self._event_insert_timestamp(event),
                evaluation_event_storage_id=event_id))


class ElectricitySqliteStorage(DagsterSqliteStorage):
    """The stock sqlite instance storage (same files under `base_dir`), batched event writes."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        # Not super().__init__: that would open a second, unbatched event log on the same files.
        self.base_dir = base_dir
        self._run_storage = SqliteRunStorage.from_local(_runs_directory(base_dir))
        untested = untested_dagster()
        if untested:
            logger.warning(
                "Dagster %s: devstack.instance_storage was tested with %s only; using "
                "the stock sqlite event log (one transaction per event: slow for long ranged "
                "runs, and a ranged run with checks fails past 4,095 partitions)",
                untested, ", ".join(TESTED_DAGSTER))
        event_log = SqliteEventLogStorage if untested else BatchedSqliteEventLogStorage
        self._event_log_storage = event_log(_event_logs_directory(base_dir))
        self._schedule_storage = SqliteScheduleStorage.from_local(_schedule_directory(base_dir))
        self._inst_data = inst_data
        super(DagsterSqliteStorage, self).__init__()

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData,
                          config_value: dict) -> ElectricitySqliteStorage:
        # The parent's version builds a DagsterSqliteStorage by name; `from_local` uses `cls`.
        return cls.from_local(inst_data=inst_data, **config_value)
