"""Run monitoring on the project's dagster.yaml, with a real daemon: a run whose worker is killed
with SIGKILL is marked FAILURE within 2 minutes and the queue moves on (issue 19, point 2)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from devstack.run_launcher import run_worker
from devstack.stack import process_tree

pytestmark = pytest.mark.integration  # a dagster daemon and run workers
SLOW_RUNS = Path(__file__).parent / "fixtures" / "slow_runs.py"
BOUND_S = 120.0  # issue 19: a killed run failed within 2 minutes
DAGSTER = [sys.executable, "-m", "dagster"]


def _start(command: list[str], log: Path) -> subprocess.Popen:
    with log.open("ab") as out:  # own session: the test kills whole groups at teardown
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def _wait(what: str, predicate, timeout_s: float, logs: list[Path]) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if predicate():
            return time.monotonic() - started
        time.sleep(1.0)
    tail = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in logs if p.exists())
    raise AssertionError(f"{what}: not within {timeout_s:.0f} s\n{tail}")


def _runs(instance: dg.DagsterInstance, job: str) -> list[dg.DagsterRun]:
    return list(instance.get_runs(dg.RunsFilter(job_name=job)))


def test_a_killed_run_worker_fails_its_run_within_2_minutes_and_the_queue_moves_on(
        project_dagster_home: Path, tmp_path: Path) -> None:
    """Two slow `dagster job execute` runs fill both queue slots; a quick run (launched by the
    daemon through the project's run launcher) waits QUEUED. SIGKILL both workers: both runs
    FAILURE within 2 minutes, then the quick run starts and succeeds."""
    env_file = ["-f", str(SLOW_RUNS)]
    logs = [tmp_path / "daemon.log", tmp_path / "cli.log", tmp_path / "launch.log"]
    daemon = str(Path(sys.executable).parent / "dagster-daemon")
    # The instance's sqlite files are created (and their schema stamped) here, once, as `dagster
    # dev` does before its children: three processes creating them at the same time could stamp
    # the schedule storage twice ("alembic_version has more than one head").
    instance = dg.DagsterInstance.get()
    procs = [_start([daemon, "run", *env_file], logs[0])]
    try:
        # Run workers of their own, as `./dev dagster asset materialize` starts: nothing but run
        # monitoring notices their death (the code server reaps the runs it launched itself).
        for _ in range(2):
            procs.append(_start([*DAGSTER, "job", "execute", *env_file, "-j", "slow_job"],
                                logs[1]))
        workers: dict[str, int] = {}

        def both_started() -> bool:
            for run in _runs(instance, "slow_job"):
                worker = run_worker(instance, run.run_id)
                if run.status == dg.DagsterRunStatus.STARTED and worker:
                    workers[run.run_id] = worker[0]
            return len(workers) == 2

        _wait("both slow runs STARTED with a worker pid", both_started, 180, logs)
        subprocess.run([*DAGSTER, "job", "launch", *env_file, "-j", "quick_job"], check=True,
                       stdout=logs[2].open("ab"), stderr=subprocess.STDOUT, timeout=120)
        time.sleep(5)  # the queue daemon had its chance: both slots are taken
        (quick,) = _runs(instance, "quick_job")
        assert quick.status == dg.DagsterRunStatus.QUEUED

        for pid in workers.values():
            os.kill(pid, signal.SIGKILL)
        failed_s = _wait("both killed runs FAILURE", lambda: all(
            instance.get_run_by_id(r).status == dg.DagsterRunStatus.FAILURE for r in workers),
            BOUND_S, logs)
        moved_s = _wait("the queued run SUCCESS", lambda: instance.get_run_by_id(
            quick.run_id).status == dg.DagsterRunStatus.SUCCESS, 90, logs)
        print(f"killed runs FAILURE after {failed_s:.0f} s; queued run done {moved_s:.0f} s later")
        message = "\n".join(e.message for r in workers for e in instance.all_logs(
            r, of_type=dg.DagsterEventType.RUN_FAILURE))
        assert "is gone" in message
    finally:
        # the code server and run workers the daemon started may sit in sessions of their own
        pids = {pid for proc in procs for pid in process_tree(proc.pid)}
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for proc in procs:
            proc.wait(timeout=10)
