"""`electricity-stack`: the whole platform on loopback, stopped cleanly by Ctrl-C or SIGTERM.

Starts, each on a printed http://127.0.0.1 URL with its log in `ELECTRICITY_HOME/logs/`:
- the Tansu Kafka broker (skipped when KAFKA_BROKER_ADDRESS points at an existing cluster),
- `dagster dev` (DAGSTER_HOME = ELECTRICITY_HOME/dagster_home, the repo's dagster.yaml copied in;
  the hourly schedule, the retrain schedule and the sensors start switched on),
- the Streamlit dashboard, and the MLflow UI on the configured tracking URI.

On the first run (no `seeded.json` under ELECTRICITY_HOME) in replay mode it seeds the data in
the background (progress in logs/seed.log), up to the replay clock's start:
1. bulk history with the assets' own functions, outside Dagster's run history: raw demand and
   weather from the first bundled hour, features over ELECTRICITY_SEED_FEATURE_DAYS (400);
2. Dagster runs, visible in the UI: raw + features for the last 48 hours, `trained_models`,
   `demand_forecasts` for the last ELECTRICITY_SEED_FORECAST_DAYS (7);
publishing the dashboard's snapshot after each step. The hourly schedule continues from there.
"""

from __future__ import annotations

import argparse
import json
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
from datetime import UTC, datetime, timedelta
from pathlib import Path

from electricity_assets import replay_clock, serving, settings

logger = logging.getLogger("electricity_assets.stack")

SEED_MARKER = "seeded.json"


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
    dagster_home = Path(os.environ.get("DAGSTER_HOME") or default)
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


RECENT_HOURS = 48


def seed_plan(replay_start: datetime, available: set[str], forecast_days: int = 7
              ) -> list[tuple[list[str], str | None]]:
    """Dagster runs of the first-run seed (recorded in DAGSTER_HOME), over defined assets.

    The bulk history before the last RECENT_HOURS is written by `seed_history` instead, in
    seconds: a Dagster run over the ~41k hourly partitions takes ~2 minutes, most of it recording
    a materialisation event per partition and asset (see README, Benchmarks), and the dashboard
    should have data at once. Backfilling that range from the UI records it.
    """
    from electricity_assets.partitions import hourly_partitions
    from electricity_assets.schedules import retrain_partition_key

    def since(hours: int) -> str:
        start = max(replay_start - timedelta(hours=hours), hourly_partitions.start)
        return start.strftime(hourly_partitions.fmt)

    end = (replay_start - timedelta(hours=1)).strftime(hourly_partitions.fmt)
    # The model is the week complete before the forecast window starts: the seeded forecasts are
    # out-of-sample, as live ones are.
    week = retrain_partition_key(replay_start - timedelta(days=forecast_days))
    steps: list[tuple[list[str], str | None]] = [
        (["raw_demand", "raw_weather", "demand_features", "weather_features"],
         f"{since(RECENT_HOURS)}...{end}"),
        (["trained_models"], week),
        (["demand_forecasts"], f"{since(forecast_days * 24)}...{end}"),
    ]
    return [([k for k in keys if k in available], rng) for keys, rng in steps
            if any(k in available for k in keys)]


def seed_history(replay_start: datetime, feature_days: int = 400) -> dict[str, int]:
    """Bulk-load the bundled history before the recent window with the assets' own functions.

    Raw demand and weather from the first bundled hour, features over the last `feature_days`.
    """
    import pandas as pd

    from electricity_assets.datasets import DEMAND, WEATHER
    from electricity_assets.features import demand, weather
    from electricity_assets.partitions import hourly_partitions
    from electricity_assets.resources import ElectricityDuckDB
    from electricity_assets.sources.select import SourceConfig, load_window
    from electricity_assets.storage import replace_window

    end = replay_start - timedelta(hours=RECENT_HOURS)
    first = hourly_partitions.start
    features_from = max(end - timedelta(days=feature_days), first)
    config = SourceConfig(mode="bundled", data_dir=settings.data_dir())
    written: dict[str, int] = {}
    with ElectricityDuckDB(database=settings.duckdb_path()).get_connection() as conn:
        for dataset in (DEMAND, WEATHER):
            fetched = load_window(dataset, first, end, config)
            rows = fetched.rows.assign(source=fetched.source,
                                       ingested_at=pd.Timestamp(datetime.now(UTC)))
            written[dataset.table] = replace_window(conn, dataset.table, rows, first, end)
        frame = demand.compute_demand_features(conn, features_from, end)
        written[demand.TABLE] = replace_window(conn, demand.TABLE, frame, features_from, end)
        frame = weather.compute_weather_features(conn, features_from, end)
        written[weather.TABLE] = replace_window(conn, weather.TABLE, frame, features_from, end)
    return written


def _defined_asset_keys() -> set[str]:
    from electricity_assets.definitions import defs

    return {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}


def _publish() -> None:
    try:
        serving.publish_snapshot()  # the dashboard shows each step as soon as it lands
    except serving.ServingUnavailableError as exc:
        print(f"seed: snapshot not published: {exc}", flush=True)


def seed(argv: Sequence[str] | None = None) -> int:
    """The documented first-run subset: bulk history, then recorded Dagster runs; publish."""
    home = settings.local_home()
    if settings.source_mode() != "bundled":
        from electricity_assets.api_backfill import backfill_hint

        print(backfill_hint(datetime.now(UTC)), flush=True)
        return 0
    clock = replay_clock.replay_clock()
    started = time.monotonic()
    written = seed_history(clock.replay_start,
                           int(os.environ.get("ELECTRICITY_SEED_FEATURE_DAYS", "400")))
    print(f"seed: bulk history {written} in {time.monotonic() - started:.0f} s", flush=True)
    _publish()
    plan = seed_plan(clock.replay_start, _defined_asset_keys(),
                     int(os.environ.get("ELECTRICITY_SEED_FORECAST_DAYS", "7")))
    failed = []
    for keys, partition_range in plan:
        cmd = [sys.executable, "-m", "dagster", "asset", "materialize", "-m",
               "electricity_assets.definitions", "--select", ",".join(keys)]
        if partition_range:  # "A...B" is one single-run range; a lone key is one partition
            flag = "--partition-range" if "..." in partition_range else "--partition"
            cmd += [flag, partition_range]
        print(f"seed: {' '.join(cmd[2:])}", flush=True)
        started = time.monotonic()
        code = subprocess.call(cmd, cwd=settings.PROJECT_ROOT)
        print(f"seed: {','.join(keys)} -> exit {code} in {time.monotonic() - started:.0f} s",
              flush=True)
        if code:
            failed.append(",".join(keys))
        _publish()
    (home / SEED_MARKER).write_text(json.dumps({
        "seeded_at": datetime.now(UTC).isoformat(), "replay_start": clock.replay_start.isoformat(),
        "bulk_rows": written, "runs": [[k, r] for k, r in plan], "failed": failed}, indent=2))
    return 1 if failed else 0


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
    env = {**os.environ, "ELECTRICITY_HOME": str(home), "DAGSTER_HOME": str(
        prepare_dagster_home(home)), "PYTHONUNBUFFERED": "1"}
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
            stack.seeder = Service("seed", [sys.executable, "-m", "electricity_assets.stack",
                                            "seed"], None, None, logs / "seed.log")
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
    if sys.argv[1:2] == ["seed"]:
        sys.exit(seed(sys.argv[2:]))
    sys.exit(main(sys.argv[1:]))
