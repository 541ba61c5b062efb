"""The instance's run launcher (dagster.yaml `run_launcher`): Dagster's default launcher, plus a
run worker health check so run monitoring fails runs whose worker died (kill -9, OOM, reboot).

The stock DefaultRunLauncher cannot tell a dead worker from a busy one, so a killed run stayed
STARTED for good and held one of the queue's slots. Every run worker logs its pid in the run's
first engine events ("Started process for run (pid: N)" from the code server, "Executing steps in
process (pid: N)" from the executor, also for `dagster asset materialize` runs); the monitoring
daemon calls `check_run_worker_health` every `poll_interval_seconds` and fails the run when that
process is gone. Pids are checked in /proc of this machine: it assumes the run workers run where
the daemon runs (the local stack; a multi-host deployment uses its platform's launcher).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from dagster import DagsterEventType, DagsterInstance, DefaultRunLauncher
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus
from dagster._core.storage.dagster_run import DagsterRun

# A run that reached STARTED logs its worker pid within seconds; past this without one, it has no
# worker to wait for.
NO_PID_GRACE_S = 120.0


def _boot_time() -> float:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    raise OSError("no btime in /proc/stat")


def process_state(pid: int) -> tuple[str, float] | None:
    """(state letter, start time as a Unix timestamp) of `pid`, None when there is no such
    process (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        started = _boot_time() + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None
    return fields[0], started


def worker_alive(pid: int, logged_at: float) -> bool:
    """True when `pid` runs and is the process that logged it at `logged_at` (not a later process
    that reused the pid); a zombie has exited."""
    state = process_state(pid)
    return state is not None and state[0] != "Z" and state[1] <= logged_at + 1.0


def run_worker(instance: DagsterInstance, run_id: str) -> tuple[int, float] | None:
    """(pid, timestamp) of the run's first engine event naming a pid: its run worker."""
    for event in instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
        data = event.dagster_event.engine_event_data if event.dagster_event else None
        pid = data.metadata.get("pid") if data is not None else None
        if pid is not None:
            return int(str(pid.value)), event.timestamp
    return None


class LocalRunLauncher(DefaultRunLauncher):
    """DefaultRunLauncher whose run workers run monitoring can check (see the module docstring)."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        worker = run_worker(self._instance, run.run_id)
        if worker is None:
            record = self._instance.get_run_record_by_id(run.run_id)
            started = record.start_time if record is not None else None
            if started is not None and time.time() - started > NO_PID_GRACE_S:
                return CheckRunHealthResult(
                    WorkerStatus.NOT_FOUND,
                    f"no run worker logged its pid within {NO_PID_GRACE_S:.0f} s of the start")
            return CheckRunHealthResult(WorkerStatus.RUNNING, "no worker pid logged yet")
        pid, logged_at = worker
        if worker_alive(pid, logged_at):
            return CheckRunHealthResult(WorkerStatus.RUNNING, run_worker_id=str(pid))
        return CheckRunHealthResult(
            WorkerStatus.FAILED,
            f"the run worker process (pid {pid}) is gone (killed or crashed): re-run the run's "
            "partitions", run_worker_id=str(pid))
