"""`electricity-stack`: the whole platform on loopback, stopped cleanly by Ctrl-C or SIGTERM.

Starts, each on a printed http://127.0.0.1 URL with its log in `ELECTRICITY_HOME/logs/`:
- the Tansu Kafka broker (skipped when KAFKA_BROKER_ADDRESS points at an existing cluster),
- `dagster dev` (DAGSTER_HOME = ELECTRICITY_HOME/dagster_home, the repo's dagster.yaml copied in;
  the hourly schedule, the retrain schedule and the sensors start switched on),
- the Streamlit dashboard, and the MLflow UI on the configured tracking URI.

On the first run (no `seeded.json` under ELECTRICITY_HOME) in replay mode it starts the seed
(`seed.py`) in the background, progress in logs/seed.log.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
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

from electricity_assets import replay_clock, settings
from electricity_assets.seed import SEED_MARKER

logger = logging.getLogger("electricity_assets.stack")



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

    def stop(self, timeout_s: float = 20.0) -> None:
        if not self.running():
            return
        assert self.process is not None
        pgid = self.process.pid  # its own process group (start_new_session)
        try:
            os.killpg(pgid, signal.SIGTERM)
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            logger.warning("%s did not stop in %.0f s: killing it", self.name, timeout_s)
            os.killpg(pgid, signal.SIGKILL)
            self.process.wait(timeout=timeout_s)
        except ProcessLookupError:
            pass


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


def prepare_dagster_home(home: Path) -> Path:
    """DAGSTER_HOME (default ELECTRICITY_HOME/dagster_home) with the repo's dagster.yaml in it.

    A DAGSTER_HOME set by the user keeps its own dagster.yaml (e.g. Postgres storage)."""
    default = home / "dagster_home"
    dagster_home = settings.dagster_home()
    dagster_home.mkdir(parents=True, exist_ok=True)
    repo_yaml = settings.PROJECT_ROOT / "dagster.yaml"
    target = dagster_home / "dagster.yaml"
    if repo_yaml.exists() and (dagster_home == default or not target.exists()):
        shutil.copy(repo_yaml, target)
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


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="electricity-stack", description=__doc__.split("\n")[0])
    parser.add_argument("--dagster-port", type=int, default=3000)
    parser.add_argument("--dashboard-port", type=int, default=8501)
    parser.add_argument("--mlflow-port", type=int, default=5000)
    parser.add_argument("--no-seed", action="store_true", help="skip the first-run data seed")
    parser.add_argument("--reseed", action="store_true", help="seed even if seeded before")
    parser.add_argument("--services", default="broker,dagster,dashboard,mlflow",
                        help="comma-separated subset to start")
    parser.add_argument("--startup-timeout", type=float, default=180.0)
    return parser.parse_args(argv)


class Stack:
    def __init__(self, services: list[Service], env: dict[str, str]) -> None:
        self.services = services
        self.env = env
        self.broker = None
        self.seeder: Service | None = None
        self._stopping = False

    def stop(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        for service in reversed([*self.services, *([self.seeder] if self.seeder else [])]):
            if service.running():
                print(f"stopping {service.name} ...", flush=True)
                service.stop()
        if self.broker is not None:
            self.broker.stop()
        print("stack stopped", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args = _parse(argv)
    wanted = {s.strip() for s in args.services.split(",") if s.strip()}
    home = settings.local_home()
    logs = home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = {**settings.dagster_process_env(), "ELECTRICITY_HOME": str(home),
           "DAGSTER_HOME": str(prepare_dagster_home(home)), "PYTHONUNBUFFERED": "1"}
    os.environ.update({"ELECTRICITY_HOME": env["ELECTRICITY_HOME"],
                       "DAGSTER_HOME": env["DAGSTER_HOME"]})
    if settings.source_mode() == "bundled":
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
    stack = Stack(services, env)

    def on_signal(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, on_signal)
    try:
        if "broker" in wanted:
            from electricity_assets.streaming.broker import start_broker

            stack.broker = start_broker(log_path=logs / "broker.log")
            env["KAFKA_BROKER_ADDRESS"] = stack.broker.address
            print(f"  kafka      {stack.broker.address}"
                  f"{'' if stack.broker.managed else ' (external)'}", flush=True)
        for service in services:
            service.start(env, settings.PROJECT_ROOT)
        for service in services:
            healthy = wait_healthy(service, args.startup_timeout)
            state = "up" if healthy else f"NOT RESPONDING (see {service.log_path})"
            print(f"  {service.name:<10} {service.url}  {state}", flush=True)
        print(f"logs: {logs}/*.log   Ctrl-C stops everything", flush=True)
        if settings.source_mode() == "api" and not (home / SEED_MARKER).exists():
            from electricity_assets.api_backfill import backfill_hint

            dagster = next((s.url for s in services if s.name == "dagster"), None)
            print(backfill_hint(datetime.now(UTC), dagster or "the Dagster UI"), flush=True)
        elif not args.no_seed and (args.reseed or not (home / SEED_MARKER).exists()):
            stack.seeder = Service("seed", [sys.executable, "-m", "electricity_assets.seed"],
                                   None, None, logs / "seed.log")
            stack.seeder.start(env, settings.PROJECT_ROOT)
            print(f"first run: seeding the bundled history in the background "
                  f"(progress: {stack.seeder.log_path})", flush=True)
        while True:
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
