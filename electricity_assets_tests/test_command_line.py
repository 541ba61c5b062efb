"""What a user types: `./dev dagster`, the benches' `--help`, and the fast test tier."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.cli import quiet_warnings_env

REPO = Path(__file__).resolve().parent.parent
WRAPPER = [sys.executable, "-m", "devstack.cli", "dagster"]
SERVER_TESTS = ["test_streaming_sensor.py", "test_streaming_errors.py", "test_postgres_instance.py",
                "test_streaming_losses.py", "test_run_monitoring.py", "test_stack.py"]


@pytest.mark.integration  # no server, but two dagster CLI runs: too slow for the fast tier
def test_dev_dagster_prints_no_superseded_or_beta_warnings_but_still_the_errors(
        project_dagster_home: Path) -> None:
    done = subprocess.run(
        [*WRAPPER, "asset", "materialize", "-m", "electricity_assets.definitions",
         "--select", "raw_demand", "--partition", "2020-01-01-01:00"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "RUN_SUCCESS" in done.stdout + done.stderr
    assert "Warning" not in done.stderr, done.stderr[-3000:]
    failed = subprocess.run(
        [*WRAPPER, "asset", "materialize", "-m", "electricity_assets.definitions",
         "--select", "no_such_asset"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert failed.returncode != 0 and "no_such_asset" in failed.stderr


def test_only_the_listed_warnings_are_silenced() -> None:
    code = ("import warnings\n"
            "warnings.warn('Function `asset_materialize_command` is superseded and ...')\n"
            "warnings.warn('Parameter `other` of function `asset` is currently in beta')\n")
    env = {**os.environ, "PYTHONWARNINGS": quiet_warnings_env()}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=60)
    assert "superseded" not in done.stderr and "`other`" in done.stderr
    # A filter the user set comes last, so it wins.
    assert quiet_warnings_env("error").endswith(",error")


@pytest.mark.integration  # each bench program in a process of its own
@pytest.mark.parametrize("bench", ["dashboard_load.py", "broker_kill.py"])  # whose text was cut
def test_bench_help_says_what_it_does_in_whole_sentences(bench: str) -> None:
    done = subprocess.run([sys.executable, str(REPO / "bench" / bench), "--help"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    # argparse prints the description between the usage block and the options.
    description = " ".join(done.stdout.split("\n\n")[1].split())
    assert description.endswith((".", ")")), description


@pytest.mark.integration  # a second pytest collecting the suite
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
