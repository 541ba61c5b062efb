"""`electricity-stack`: the whole platform on loopback, stopped by SIGINT, SIGTERM or SIGHUP.

Starts, each on a printed http://127.0.0.1 URL with its log in `ELECTRICITY_HOME/logs/`:
- the Tansu Kafka broker (skipped when KAFKA_BROKER_ADDRESS points at an existing cluster),
- `dagster dev` (DAGSTER_HOME = ELECTRICITY_HOME/dagster_home, the repo's dagster.yaml copied in;
  the hourly schedule, the retrain schedule and the sensors start switched on),
- the Streamlit dashboard, and the MLflow UI on the configured tracking URI.

On the first run (no `seeded.json` under ELECTRICITY_HOME) in replay mode it starts the seed
(`seed.py`) in the background, progress in logs/seed.log.

Stopping: Ctrl-C, SIGTERM (a service manager) or SIGHUP (the terminal closed) stop every service
within STOP_GRACE_S + a second, however the stack was started (`nohup ... &` starts it with SIGINT
ignored; the handlers are installed explicitly). All services get SIGTERM at once; whatever is
still alive after the grace period - in the service's process group or among the processes it
started in sessions of their own - is killed, so nothing is left behind.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from devstack.seed import SEED_MARKER
from electricity_assets import replay_clock, settings

logger = logging.getLogger("devstack.stack")

STOP_GRACE_S = 6.0  # SIGTERM, then SIGKILL: the whole stop stays under 10 s
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _parent_pids() -> dict[int, int]:
    """pid -> parent pid of every process (Linux /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # exited meanwhile
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return parents


def process_tree(root: int) -> set[int]:
    """`root` and every process descended from it, whatever session or group it moved to."""
    children: dict[int, list[int]] = {}
    for pid, parent in _parent_pids().items():
        children.setdefault(parent, []).append(pid)
    tree, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid not in tree:
            tree.add(pid)
            todo.extend(children.get(pid, []))
    return tree


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"  # a zombie has exited; its parent reaps it


def _signal(pids: set[int], sig: signal.Signals) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def stop_processes(processes: dict[str, subprocess.Popen],
                   grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM every process group at once, SIGKILL what is left of the trees after `grace_s`."""
    trees = {name: process_tree(p.pid) for name, p in processes.items() if p.poll() is None}
    for name in trees:
        try:
            os.killpg(processes[name].pid, signal.SIGTERM)  # own group (start_new_session)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace_s
    for name in trees:
        try:
            processes[name].wait(timeout=max(deadline - time.monotonic(), 0.01))
        except subprocess.TimeoutExpired:
            pass
    # Descendants may outlive their service's main process (re-parented to init).
    while time.monotonic() < deadline and any(alive(pid) for t in trees.values() for pid in t):
        time.sleep(0.1)
    for name, tree in trees.items():
        left = {pid for pid in tree if alive(pid)}
        if left:
            logger.warning("%s: %d process(es) still running after %.0f s: killing them",
                           name, len(left), grace_s)
            _signal(left, signal.SIGKILL)
        try:
            processes[name].wait(timeout=2)
        except subprocess.TimeoutExpired:
            pass



@dataclass
class Service:
    name: str
    command: list[str]
    url: str | None
    health_url: str | None
    log_path: Path
    process: subprocess.Popen | None = field(default=None, repr=False)

    def start(self, env: dict[str, str], cwd: Path) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            # Own session: Ctrl-C reaches only the stack, which then stops each service in turn.
            self.process = subprocess.Popen(self.command, cwd=cwd, env=env, stdout=log,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        if self.running():
            assert self.process is not None
            stop_processes({self.name: self.process}, grace_s)


def port_or_free(preferred: int) -> int:
    """`preferred` if nothing listens there, else a free loopback port."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            pass
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(service: Service, timeout_s: float) -> bool:
    if service.health_url is None:
        return service.running()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and service.running():
        try:
            with urllib.request.urlopen(service.health_url, timeout=2) as resp:
                if resp.status < 500:
                    return True
        except OSError:
            time.sleep(0.5)
    return False


def prepare_dagster_home(home: Path, postgres: bool = False) -> Path:
    """DAGSTER_HOME (default ELECTRICITY_HOME/dagster_home) with the repo's dagster.yaml in it,
    its storage switched to Postgres (DAGSTER_POSTGRES_URL) when `postgres`.

    A DAGSTER_HOME set by the user keeps its own dagster.yaml if it has one."""
    from devstack.postgres import write_instance_yaml

    dagster_home = settings.dagster_home()
    dagster_home.mkdir(parents=True, exist_ok=True)
    if dagster_home == home / "dagster_home" or not (dagster_home / "dagster.yaml").exists():
        write_instance_yaml(dagster_home, postgres)
    return dagster_home


def build_services(ports: dict[str, int], logs: Path) -> list[Service]:
    py = sys.executable
    dash, dag, mlf = ports["dashboard"], ports["dagster"], ports["mlflow"]
    uri = settings.mlflow_tracking_uri()
    services = [
        Service("dagster", [py, "-m", "dagster", "dev", "-m", "electricity_assets.definitions",
                            "-h", "127.0.0.1", "-p", str(dag)],
                f"http://127.0.0.1:{dag}", f"http://127.0.0.1:{dag}/server_info",
                logs / "dagster.log"),
        Service("dashboard", [py, "-m", "streamlit", "run",
                              str(settings.PROJECT_ROOT / "dashboard" / "app.py"),
                              "--server.headless", "true", "--server.address", "127.0.0.1",
                              "--server.port", str(dash), "--browser.gatherUsageStats", "false"],
                f"http://127.0.0.1:{dash}", f"http://127.0.0.1:{dash}/_stcore/health",
                logs / "dashboard.log"),
        Service("mlflow", [py, "-m", "mlflow", "server", "--backend-store-uri", uri,
                           "--default-artifact-root", settings.mlflow_artifact_root(),
                           "--host", "127.0.0.1", "--port", str(mlf), "--workers", "1"],
                f"http://127.0.0.1:{mlf}", f"http://127.0.0.1:{mlf}/health",
                logs / "mlflow.log"),
    ]
    if uri.startswith(("http://", "https://", "databricks")):
        # A remote tracking server has its own UI: start none locally.
        services = [s for s in services if s.name != "mlflow"]
    return services


def mlflow_link_env(services: list[Service]) -> dict[str, str]:
    """MLFLOW_UI_URL for the services: the MLflow UI this stack starts, on whatever port it got,
    so run links in asset metadata open it. A value the user set wins."""
    mlflow = next((s for s in services if s.name == "mlflow"), None)
    if mlflow is None or settings.env("MLFLOW_UI_URL"):
        return {}
    return {"MLFLOW_UI_URL": mlflow.url}


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="electricity-stack", description=__doc__.split("\n")[0])
    parser.add_argument("--dagster-port", type=int, default=3000)
    parser.add_argument("--dashboard-port", type=int, default=8501)
    parser.add_argument("--mlflow-port", type=int, default=5000)
    parser.add_argument("--no-seed", action="store_true", help="skip the first-run data seed")
    parser.add_argument("--reseed", action="store_true", help="seed even if seeded before")
    parser.add_argument("--services", default="broker,dagster,dashboard,mlflow",
                        help="comma-separated subset to start")
    parser.add_argument("--postgres", action="store_true",
                        help="Dagster storage on PostgreSQL: DAGSTER_POSTGRES_URL, or a local "
                             "server under ELECTRICITY_HOME/postgres when that is unset")
    parser.add_argument("--startup-timeout", type=float, default=180.0)
    return parser.parse_args(argv)


BROKER_RESTARTS = 3            # within BROKER_RESTART_WINDOW_S; beyond, the stack stops
BROKER_RESTART_WINDOW_S = 600.0


class Stack:
    def __init__(self, services: list[Service], env: dict[str, str]) -> None:
        self.services = services
        self.env = env
        self.broker = None
        self.postgres = None
        self.seeder: Service | None = None
        self._stopping = False
        self._broker_restarts: list[float] = []

    def supervise_broker(self) -> bool:
        """Restart the bundled broker if it died (reaping it: no zombie); False when it keeps
        dying (BROKER_RESTARTS within BROKER_RESTART_WINDOW_S) and the stack should stop."""
        broker = self.broker
        if broker is None or broker.process is None or broker.process.poll() is None:
            return True  # external broker, or running (poll() reaps a dead child)
        code = broker.process.returncode
        how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        now = time.monotonic()
        self._broker_restarts = [t for t in self._broker_restarts
                                 if now - t < BROKER_RESTART_WINDOW_S]
        message = (f"kafka broker (Tansu) at {broker.address} died ({how}); it kept messages in "
                   "memory only: those not yet ingested are lost (counted as lost_messages by "
                   "the stream runs, and their hours re-fetched from the source)")
        logger.error(message)
        print(message, flush=True)
        broker.stop()  # closes its log file
        if broker.log_path is not None:
            with broker.log_path.open("a") as log:
                log.write(f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S} electricity-stack: {message}\n")
        if len(self._broker_restarts) >= BROKER_RESTARTS:
            print(f"the broker died {BROKER_RESTARTS + 1} times within "
                  f"{BROKER_RESTART_WINDOW_S:.0f} s: stopping the stack (see {broker.log_path})",
                  flush=True)
            return False
        from electricity_assets.streaming.broker import start_local_broker

        port = int(broker.address.rsplit(":", 1)[1])
        try:
            self.broker = start_local_broker(port, broker.log_path)
        except Exception as exc:  # KafkaConfigError: the port was taken meanwhile, ...
            print(f"cannot restart the kafka broker: {exc}: stopping the stack", flush=True)
            self.broker = None
            return False
        self._broker_restarts.append(now)
        print(f"  kafka      {self.broker.address} restarted (pid {self.broker.process.pid})",
              flush=True)
        logger.warning("kafka broker restarted at %s", self.broker.address)
        return True

    def stop(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        for sig in STOP_SIGNALS:  # a second Ctrl-C must not abort the stop half-way
            signal.signal(sig, signal.SIG_IGN)
        started = time.monotonic()
        running = {s.name: s.process for s in [*self.services, self.seeder]
                   if s is not None and s.running() and s.process is not None}
        if self.broker is not None and self.broker.process is not None:
            running["broker"] = self.broker.process
        if running:
            print(f"stopping {', '.join(running)} ...", flush=True)
        stop_processes(running)
        if self.broker is not None:
            self.broker.stop()  # closes its log file; the process is already gone
        if self.postgres is not None:
            self.postgres.stop()  # after Dagster, which holds connections to it
        print(f"stack stopped in {time.monotonic() - started:.1f} s", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args = _parse(argv)
    wanted = {s.strip() for s in args.services.split(",") if s.strip()}
    home = settings.local_home()
    logs = home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    postgres = args.postgres or bool(settings.dagster_postgres_url())
    env = {**settings.dagster_process_env(), "ELECTRICITY_HOME": str(home),
           "DAGSTER_HOME": str(prepare_dagster_home(home, postgres)), "PYTHONUNBUFFERED": "1"}
    os.environ.update({"ELECTRICITY_HOME": env["ELECTRICITY_HOME"],
                       "DAGSTER_HOME": env["DAGSTER_HOME"]})
    data_clock = replay_clock.data_clock()
    if data_clock.replaying:
        clock = replay_clock.replay_clock()  # persisted now, so every service reads one clock
        print(f"replay clock: {clock.now():%Y-%m-%d %H:%M} UTC of the bundled history, "
              f"x{clock.speed:g} ({home / replay_clock.STATE_FILE})")
    uri = settings.mlflow_tracking_uri()
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    ports = {"dagster": port_or_free(args.dagster_port),
             "dashboard": port_or_free(args.dashboard_port),
             "mlflow": port_or_free(args.mlflow_port)}
    services = [s for s in build_services(ports, logs) if s.name in wanted]
    env.update(mlflow_link_env(services))
    stack = Stack(services, env)

    def on_signal(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    # Explicitly, SIGINT included: started with `&` from a script (or `nohup`), the stack
    # inherits SIGINT (and SIGHUP) ignored, and Ctrl-C / kill -INT would do nothing.
    for sig in STOP_SIGNALS:
        signal.signal(sig, on_signal)
    try:
        if postgres and not settings.dagster_postgres_url():
            from devstack.postgres import LocalPostgres

            stack.postgres = LocalPostgres(home / "postgres", port_or_free(
                settings.local_postgres_port()), logs / "postgres.log").start()
            env["DAGSTER_POSTGRES_URL"] = os.environ["DAGSTER_POSTGRES_URL"] = stack.postgres.url
        if postgres:
            print(f"  postgres   {env['DAGSTER_POSTGRES_URL'].split('@')[-1]} (Dagster storage)",
                  flush=True)
        if "broker" in wanted:
            from electricity_assets.streaming.broker import start_broker

            stack.broker = start_broker(log_path=logs / "broker.log")
            env["KAFKA_BROKER_ADDRESS"] = stack.broker.address
            print(f"  kafka      {stack.broker.address}"
                  f"{'' if stack.broker.managed else ' (external)'}", flush=True)
        for service in services:
            service.start(env, settings.PROJECT_ROOT)
        seeding = (data_clock.replaying and not args.no_seed
                   and (args.reseed or not (home / SEED_MARKER).exists()))
        if seeding:
            # At once, not after the health checks: its runs need no service, and the
            # dashboard gets data sooner.
            stack.seeder = Service("seed", [sys.executable, "-m", "devstack.seed"],
                                   None, None, logs / "seed.log")
            stack.seeder.start(env, settings.PROJECT_ROOT)
            print(f"first run: seeding the bundled history in the background "
                  f"(progress: {stack.seeder.log_path})", flush=True)
        for service in services:
            healthy = wait_healthy(service, args.startup_timeout)
            state = "up" if healthy else f"NOT RESPONDING (see {service.log_path})"
            print(f"  {service.name:<10} {service.url}  {state}", flush=True)
        print(f"logs: {logs}/*.log   Ctrl-C stops everything", flush=True)
        if not data_clock.replaying and not (home / SEED_MARKER).exists():
            from electricity_assets.api_backfill import backfill_hint

            dagster = next((s.url for s in services if s.name == "dagster"), None)
            print(backfill_hint(datetime.now(UTC), dagster or "the Dagster UI"), flush=True)
        while True:
            if not stack.supervise_broker():
                return 1
            for service in services:
                if not service.running():
                    print(f"{service.name} exited (code {service.process.returncode}); "
                          f"see {service.log_path}", flush=True)
                    return 1
            if stack.seeder is not None and not stack.seeder.running():
                code = stack.seeder.process.returncode
                print("seed finished" + ("" if code == 0 else f" with failures (exit {code}), "
                                         f"see {stack.seeder.log_path}"), flush=True)
                stack.seeder = None
            time.sleep(1.0)
    except KeyboardInterrupt:
        return 0
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
