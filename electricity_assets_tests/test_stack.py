"""`electricity-stack`: the seed plan, and a real start/stop of a subset of the services."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest

from devstack.seed import seed_plan
from devstack.stack import alive, build_services, mlflow_link_env, process_tree

REPO = Path(__file__).resolve().parent.parent


def test_seed_plan_records_the_whole_history_through_dagster_runs_recent_hours_first() -> None:
    start = datetime(2020, 3, 25, 23, tzinfo=UTC)
    plan = [(step.assets, step.partitions) for step in seed_plan(start, 400, 7)]
    raw, features = ["raw_demand", "raw_weather"], ["demand_features", "weather_features"]
    assert plan == [
        # Raw for the features' lookback (81 days) + 48 h, then the last 48 h of features:
        # the dashboard has data before the long history run.
        (raw, "2020-01-02-23:00...2020-03-25-22:00"),
        (["weather_station_offsets", "weather_normalisation", *features],
         "2020-03-23-23:00...2020-03-25-22:00"),  # fitted once, on the raw loaded so far
        # Every earlier bundled hour, from the first partition, in one run.
        (raw, "2015-07-01-05:00...2020-01-02-22:00"),
        (features, "2019-02-19-23:00...2020-03-23-22:00"),
        # Week 2020-03-08..15: complete before the first forecast hour (out-of-sample).
        (["trained_models"], "2020-03-08"),
        # The issues of 8 days: their 24 h-ahead slice covers the last 7; the newest, issued
        # at R, forecasts the 48 hours after R.
        (["demand_forecasts"], "2020-03-17-23:00...2020-03-25-22:00"),
        (["forecast_backtest"], None),  # unpartitioned: the last weeks of the features
    ]
    assert seed_plan(start)[-1].command()[-2:] == ["--select", "forecast_backtest"]
    assert seed_plan(start)[0].command()[-2:] == ["--partition-range",
                                                  "2020-01-02-23:00...2020-03-25-22:00"]
    assert seed_plan(start)[4].command()[-2:] == ["--partition", "2020-03-08"]


def test_mlflow_links_point_at_the_port_the_stack_gave_the_mlflow_ui(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from electricity_assets.modeling.registry import MlflowConfig
    from electricity_assets.resources import build_resources

    ports = {"dagster": 3123, "dashboard": 8123, "mlflow": 5123}
    services = build_services(ports, tmp_path)
    for name, value in mlflow_link_env(services).items():
        monkeypatch.setenv(name, value)  # as the stack hands it to dagster and its run workers
    assert build_resources()["mlflow"].ui_url == "http://127.0.0.1:5123"
    assert MlflowConfig.from_settings().ui_url == "http://127.0.0.1:5123"
    # A URL the user set wins; a remote tracking server (no local UI) sets nothing.
    monkeypatch.setenv("MLFLOW_UI_URL", "https://mlflow.example")
    assert mlflow_link_env(services) == {}
    monkeypatch.delenv("MLFLOW_UI_URL")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:80")
    assert mlflow_link_env(build_services(ports, tmp_path)) == {}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


@pytest.mark.integration
def test_stack_starts_prints_urls_and_stops_everything_on_sigterm(isolated_home: Path) -> None:
    dash_port, kafka_port = _free_port(), _free_port()
    env = {**os.environ, "KAFKA_BROKER_PORT": str(kafka_port)}
    env.pop("KAFKA_BROKER_ADDRESS", None)
    env.pop("DAGSTER_HOME", None)  # the stack derives it from the tmp ELECTRICITY_HOME
    proc = subprocess.Popen(
        [sys.executable, "-m", "devstack.stack", "--services", "broker,dashboard",
         "--no-seed", "--dashboard-port", str(dash_port), "--startup-timeout", "60"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Ctrl-C stops everything" in line:
                break
        out = "".join(lines)
        assert f"dashboard  http://127.0.0.1:{dash_port}  up" in out, out
        assert f"kafka      127.0.0.1:{kafka_port}" in out, out
        assert _answers(f"http://127.0.0.1:{dash_port}/_stcore/health")
        with socket.create_connection(("127.0.0.1", kafka_port), timeout=2):
            pass
    finally:
        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)  # what a service manager sends
        rest, _ = proc.communicate(timeout=60)
        stop_s = time.monotonic() - began
    assert proc.returncode == 0, rest
    assert "stack stopped" in rest and stop_s < 10, (stop_s, rest)
    assert not _answers(f"http://127.0.0.1:{dash_port}/_stcore/health")
    try:
        socket.create_connection(("127.0.0.1", kafka_port), timeout=1).close()
        raise AssertionError("the broker still listens after the stack stopped")
    except OSError:
        pass
    logs = isolated_home / "logs"
    assert (logs / "dashboard.log").stat().st_size > 0 and (logs / "broker.log").exists()
    assert (isolated_home / "replay_clock.json").exists()
    assert (isolated_home / "dagster_home" / "dagster.yaml").exists()


@pytest.mark.integration
def test_stack_postgres_runs_dagster_storage_on_a_local_server_and_stops_it() -> None:
    import shutil
    import tempfile

    import psycopg2

    # A home the `postgres` user can reach (as root the server runs as that user).
    home = Path(tempfile.mkdtemp(prefix="electricity-stack-pg-"))
    home.chmod(0o711)
    port = _free_port()
    env = {**os.environ, "ELECTRICITY_HOME": str(home), "ELECTRICITY_POSTGRES_PORT": str(port)}
    for name in ("DAGSTER_HOME", "DAGSTER_POSTGRES_URL"):
        env.pop(name, None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "devstack.stack", "--services", "none", "--no-seed",
         "--postgres"], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    try:
        lines = []
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "Ctrl-C stops everything" in line:
                break
        assert f"postgres   127.0.0.1:{port}/dagster (Dagster storage)" in "".join(lines), lines
        with psycopg2.connect(host="127.0.0.1", port=port, user="dagster", dbname="dagster"):
            pass
        assert "DAGSTER_POSTGRES_URL" in (home / "dagster_home" / "dagster.yaml").read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=60)
        try:
            assert proc.returncode == 0, rest
            assert not (home / "postgres" / "postmaster.pid").exists(), "server left running"
        finally:
            shutil.rmtree(home, ignore_errors=True)


def _start_in_background(services: str, env: dict[str, str], out: Path) -> int:
    """`nohup electricity-stack ... &` from a script: it starts with SIGINT and SIGHUP ignored."""
    ports = " ".join(f"--{name}-port {_free_port()}" for name in ("dagster", "dashboard",
                                                                  "mlflow"))
    command = (f"nohup {sys.executable} -m devstack.stack --services {services} "
               f"--no-seed {ports} --startup-timeout 120 > {out} 2>&1 & echo $!")
    started = subprocess.run(["bash", "-c", command], cwd=REPO, env=env, capture_output=True,
                             text=True, timeout=30, check=True)
    return int(started.stdout.strip())


def _wait_for(out: Path, text: str, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        content = out.read_text() if out.exists() else ""
        if text in content:
            return content
        time.sleep(0.5)
    raise AssertionError(f"{text!r} not printed within {timeout_s:.0f} s:\n{content}")


def _stop_seconds(pid: int, sig: signal.Signals) -> tuple[float, set[int]]:
    """Send `sig` to the stack; seconds until it and every process it started are gone."""
    tree = process_tree(pid)
    began = time.monotonic()
    os.kill(pid, sig)
    while any(alive(p) for p in tree) and time.monotonic() - began < 60:
        time.sleep(0.1)
    return time.monotonic() - began, {p for p in tree if alive(p)}


@pytest.mark.parametrize(("services", "sig"), [
    # The slow one: dagster dev took 24-35 s on SIGTERM and ignored SIGINT under `nohup &`.
    ("broker,dagster,dashboard,mlflow", signal.SIGINT),
    ("broker,dashboard", signal.SIGHUP),
])
@pytest.mark.integration
def test_a_background_stack_stops_everything_within_10_s(
        isolated_home: Path, services: str, sig: signal.Signals) -> None:
    env = {**os.environ, "KAFKA_BROKER_PORT": str(_free_port())}
    env.pop("KAFKA_BROKER_ADDRESS", None)
    env.pop("DAGSTER_HOME", None)
    out = isolated_home / "stack.out"
    pid = _start_in_background(services, env, out)
    try:
        started = _wait_for(out, "Ctrl-C stops everything", 240)
        assert started.count("  up") == len(services.split(",")) - 1, started  # broker: no "up"
        tree = process_tree(pid)
        assert len(tree) > len(services.split(","))  # the services and their own children
        seconds, left = _stop_seconds(pid, sig)
    finally:
        for p in process_tree(pid):
            if alive(p):
                os.kill(p, signal.SIGKILL)
    assert not left, f"left behind: {left}"
    assert seconds < 10, f"stopping took {seconds:.1f} s"
    print(f"{sig.name} stopped {services} in {seconds:.1f} s")  # the figure for the README
    assert "stack stopped in" in out.read_text()


@pytest.mark.integration
def test_a_killed_broker_is_reported_restarted_and_reaped(isolated_home: Path) -> None:
    """Issue 19 point 5: kill -9 the bundled broker; the stack says so on the console and in
    broker.log, leaves no zombie, and a broker answers again on the same address."""
    from electricity_assets.settings import KafkaSettings
    from electricity_assets.streaming.broker import wait_until_ready

    kafka_port = _free_port()
    env = {**os.environ, "KAFKA_BROKER_PORT": str(kafka_port)}
    env.pop("KAFKA_BROKER_ADDRESS", None)
    env.pop("DAGSTER_HOME", None)
    out = isolated_home / "stack.out"
    pid = _start_in_background("broker", env, out)
    try:
        _wait_for(out, "Ctrl-C stops everything", 60)
        (broker,) = [p for p in process_tree(pid) - {pid} if alive(p)]
        os.kill(broker, signal.SIGKILL)
        said = _wait_for(out, "restarted (pid", 30)
        assert f"kafka broker (Tansu) at 127.0.0.1:{kafka_port} died (killed by SIGKILL)" in said
        assert "died (killed by SIGKILL)" in (isolated_home / "logs" / "broker.log").read_text()
        wait_until_ready(KafkaSettings(bootstrap_servers=f"127.0.0.1:{kafka_port}"), 20)
        states = {p: Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0]
                  for p in process_tree(pid) - {pid}}
        assert broker not in states and "Z" not in states.values(), states  # reaped
        seconds, left = _stop_seconds(pid, signal.SIGTERM)
    finally:
        for p in process_tree(pid):
            if alive(p):
                os.kill(p, signal.SIGKILL)
    assert not left and seconds < 10
