"""A broker that loses its topics (kill -9 of the in-memory Tansu) loses messages; every message the
producer had acknowledged is then either stored or counted as lost, the runs that lost some say so
(a failing check, a run tag) and their hours are re-fetched from the source (issue 19, point 5).
On a private real broker killed and restarted on the same port, the real sensor and jobs."""

from __future__ import annotations

import os
import signal
from datetime import UTC, datetime

import dagster as dg
import duckdb
import pytest

from electricity_assets.assets.raw import lost_messages, raw_asset_checks, raw_assets
from electricity_assets.datasets import DEMAND, WEATHER
from electricity_assets.settings import PACKAGE_DATA_DIR, KafkaSettings
from electricity_assets.sources.bundled import read_bundled
from electricity_assets.streaming.broker import Broker, free_port, start_broker
from electricity_assets.streaming.client import ensure_topics
from electricity_assets.streaming.producer import Publisher
from electricity_assets_tests.test_streaming_sensor import build_defs, execute, tick

pytestmark = pytest.mark.integration  # a broker of its own, killed mid-test
HOURS = [datetime(2020, 1, 15, h, tzinfo=UTC) for h in range(7)]


def _publish(publisher: Publisher, start: datetime, end: datetime) -> int:
    sent = sum(publisher.publish_frame(d, read_bundled(d, start, end, PACKAGE_DATA_DIR), "replay")
               for d in (DEMAND, WEATHER))
    publisher.flush()
    return sent


def _count(path: str, sql: str) -> int:
    with duckdb.connect(path, read_only=True) as conn:
        return int(conn.execute(sql).fetchone()[0] or 0)


@pytest.fixture
def broker(tmp_path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("KAFKA_BROKER_ADDRESS", raising=False)
    port = free_port()
    handle = {"broker": start_broker(port=port, log_path=tmp_path / "broker.log"), "port": port}
    yield handle
    handle["broker"].stop()


def test_every_acknowledged_message_is_stored_or_counted_lost_and_its_hours_refetched(
        broker: dict, duckdb_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    b: Broker = broker["broker"]
    monkeypatch.setenv("KAFKA_BROKER_ADDRESS", b.address)
    monkeypatch.setenv("DUCKDB_PATH", duckdb_path)
    settings = KafkaSettings.from_env()
    defs = build_defs()
    ensure_topics(settings)
    publisher = Publisher(settings)
    with dg.DagsterInstance.ephemeral() as instance:
        # Handed to a run that has not read them yet when the broker dies.
        planned = _publish(publisher, HOURS[0], HOURS[2])
        first = tick(defs, instance, None)
        # Acknowledged after the sensor's last look: only the producer knows them.
        unseen = _publish(publisher, HOURS[2], HOURS[4])
        os.kill(b.process.pid, signal.SIGKILL)
        b.process.wait()  # reaped
        b.stop()
        monkeypatch.delenv("KAFKA_BROKER_ADDRESS")  # or start_broker would not start one
        broker["broker"] = start_broker(port=broker["port"])
        monkeypatch.setenv("KAFKA_BROKER_ADDRESS", b.address)
        ensure_topics(settings)  # as the sensor's next tick does
        stored_after = _publish(publisher, HOURS[4], HOURS[6])  # the new incarnation

        results = [execute(defs, instance, r) for r in first.run_requests]
        second = tick(defs, instance, first.cursor)
        lost_runs = [r for r in second.run_requests if r.tags.get("kafka/lost_batch")]
        assert len(lost_runs) == 1 and lost_runs[0].tags["kafka/messages"] == str(unseen)
        results += [execute(defs, instance, r) for r in second.run_requests]
        assert not tick(defs, instance, second.cursor).run_requests  # accounted once

        acknowledged = planned + unseen + stored_after
        stored = sum(_count(duckdb_path, f"SELECT count(*) FROM {d.table} "
                                         "WHERE source = 'kafka'") for d in (DEMAND, WEATHER))
        lost = _count(duckdb_path, "SELECT sum(messages) FROM stream_losses")
        assert (stored, lost) == (stored_after, planned + unseen)
        assert stored + lost == acknowledged
        print(f"acknowledged {acknowledged}: stored {stored}, counted lost {lost} "
              f"({planned} handed to a run, {unseen} acknowledged after the sensor's last look)")

        # Not green: the runs carry the count, the checks fail until the hours are re-fetched.
        losing = [r for r in results if lost_messages(instance.get_run_by_id(r.run_id).tags)]
        assert sum(lost_messages(instance.get_run_by_id(r.run_id).tags) for r in losing) == lost
        checks = dg.materialize([*raw_asset_checks], selection=dg.AssetSelection.checks(
            *raw_asset_checks), resources=dict(defs.resources), instance=instance)
        failed = {e.asset_check_key.name for e in checks.get_asset_check_evaluations()
                  if not e.passed}
        assert "no_lost_messages" in failed

        from electricity_assets.sensors import refetch_lost_hours

        for result in losing:
            run = instance.get_run_by_id(result.run_id)
            context = dg.build_run_status_sensor_context(
                sensor_name="refetch_lost_hours", dagster_event=result.get_run_success_event(),
                dagster_instance=instance, dagster_run=run)
            request = refetch_lost_hours(context)
            assert isinstance(request, dg.RunRequest)
            dg.materialize(raw_assets, resources=dict(defs.resources), instance=instance,
                           tags=request.tags)
        checks = dg.materialize([*raw_asset_checks], selection=dg.AssetSelection.checks(
            *raw_asset_checks), resources=dict(defs.resources), instance=instance)
        assert all(e.passed for e in checks.get_asset_check_evaluations()
                   if e.asset_check_key.name == "no_lost_messages")
        # Every lost hour is back, from the source.
        bundled = len(read_bundled(DEMAND, HOURS[0], HOURS[4], PACKAGE_DATA_DIR))
        assert _count(duckdb_path, "SELECT count(*) FROM raw_demand WHERE period_utc < "
                                   f"'{HOURS[4].isoformat()}'") == bundled
