"""What a user types: the fast test tier."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SERVER_TESTS = ["test_streaming_sensor.py", "test_streaming_errors.py", "test_postgres_instance.py",
                "test_streaming_losses.py", "test_run_monitoring.py", "test_stack.py"]


def test_integration_marks_every_test_that_starts_a_server() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "integration",
         "-p", "no:cacheprovider", *(f"electricity_assets_tests/{f}" for f in SERVER_TESTS)],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    marked = set(re.findall(r"^electricity_assets_tests/(\S+?)(?:\[.*)?$", done.stdout, re.M))
    for test in (
        "test_streaming_sensor.py::test_sensor_to_raw_rows_exactly_once",  # kafka_settings
        "test_streaming_errors.py::test_a_sasl_failure_says_authentication_failed_in_the_tick",
        "test_postgres_instance.py::test_two_concurrent_runs_share_the_postgres_instance",
        "test_streaming_losses.py::test_every_acknowledged_message_is_stored_or_counted_lost_"
        "and_its_hours_refetched",
        "test_run_monitoring.py::test_a_killed_run_worker_fails_its_run_within_2_minutes_and_"
        "the_queue_moves_on",
        "test_stack.py::test_a_killed_broker_is_reported_restarted_and_reaped",
    ):
        assert test in marked, test
    assert "test_stack.py::test_seed_plan_records_the_whole_history_through_dagster_runs_" \
           "recent_hours_first" not in marked
