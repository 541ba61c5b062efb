"""Time a first `electricity-stack` run to a full catalog, on a fresh ELECTRICITY_HOME.

Starts the stack (broker, dagster dev, dashboard, MLflow UI; the seed in the background) and
prints, relative to the launch:
  - when the dashboard's snapshot first has demand rows, the full history, and forecasts;
  - when each seed run ended (its partitions are in the catalog from then on);
then checks what the Dagster UI's catalog reads (the instance's materialised partitions): each
seeded asset must have 100 % of its seeded range (raw: every bundled hour before the replay
clock's start). Stops the stack.
Usage: .venv/bin/python bench/first_run.py [--postgres] [--timeout S] [--ports D,S,M]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devstack.seed import SEED_MARKER, seed_plan  # noqa: E402
from electricity_assets import replay_clock  # noqa: E402
from electricity_assets.partitions import hourly_partitions  # noqa: E402


def expected_partitions(replay_start: datetime) -> dict[str, set[str]]:
    """Partition keys of each asset that the seed's runs cover."""
    expected: dict[str, set[str]] = {}
    for step in seed_plan(replay_start):
        if step.partitions is None:
            continue  # unpartitioned (forecast_backtest): its run is listed with the others
        if "..." in step.partitions:
            keys = hourly_partitions.get_partition_keys_in_range(
                dg.PartitionKeyRange(*step.partitions.split("...")))
        else:
            keys = [step.partitions]
        for asset in step.assets:
            expected.setdefault(asset, set()).update(keys)
    return expected


def snapshot_rows(path: Path) -> dict[str, int]:
    try:
        with duckdb.connect(str(path), read_only=True) as conn:
            tables = {r[0] for r in conn.execute("SHOW TABLES").fetchall()}
            return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                    for t in ("raw_demand", "demand_forecasts") if t in tables}
    except duckdb.Error:
        return {}  # not there yet, or being swapped in


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--ports", default="3111,8611,5111", help="dagster,dashboard,mlflow")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="electricity-first-run-"))
    home.chmod(0o711)  # --postgres as root: the server user must reach it
    env = {**os.environ, "ELECTRICITY_HOME": str(home)}
    for name in ("DAGSTER_HOME", "DUCKDB_PATH", "SERVING_DUCKDB_PATH", "DAGSTER_POSTGRES_URL"):
        env.pop(name, None)
    dagster_port, dashboard_port, mlflow_port = args.ports.split(",")
    command = [sys.executable, "-m", "devstack.stack", "--dagster-port", dagster_port,
               "--dashboard-port", dashboard_port, "--mlflow-port", mlflow_port,
               *(["--postgres"] if args.postgres else [])]
    launched, launched_at = time.monotonic(), datetime.now(UTC)
    stack = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    seen: set[str] = set()

    def mark(what: str, at: float | None = None) -> None:
        if what not in seen:
            seen.add(what)
            print(f"{(time.monotonic() - launched) if at is None else at:6.0f} s  {what}",
                  flush=True)

    postgres_url = ""
    try:
        assert stack.stdout is not None
        for line in stack.stdout:  # the stack's start-up lines, up to "Ctrl-C stops everything"
            if "postgres" in line and "Dagster storage" in line:
                postgres_url = "postgresql+psycopg2://dagster@" + line.split()[1]
            if "Ctrl-C" in line:
                break
        while time.monotonic() - launched < args.timeout and stack.poll() is None:
            rows = snapshot_rows(home / "serving.duckdb")
            if rows.get("raw_demand"):
                mark("dashboard: first demand rows")
            if rows.get("raw_demand", 0) > 900_000:
                mark("dashboard: the whole demand history")
            if rows.get("demand_forecasts"):
                mark("dashboard: forecasts")
            if (home / SEED_MARKER).exists():
                break
            time.sleep(2)
        marker = json.loads((home / SEED_MARKER).read_text())
        for run in marker["runs"]:
            ended = (datetime.fromisoformat(run["ended_at"]) - launched_at).total_seconds()
            print(f"{ended:6.0f} s  run ended ({run['seconds']:.0f} s, exit {run['exit']}): "
                  f"{','.join(run['assets'])} {run['partitions']}", flush=True)
        os.environ.update({"DAGSTER_HOME": str(home / "dagster_home"),
                           "DAGSTER_POSTGRES_URL": postgres_url})
        start = replay_clock.replay_clock(home).replay_start
        with dg.DagsterInstance.from_config(str(home / "dagster_home")) as instance:
            for asset, keys in expected_partitions(start).items():
                done = keys & set(instance.get_materialized_partitions(dg.AssetKey(asset)))
                print(f"catalog: {asset}: {len(done):,} of {len(keys):,} seeded partitions "
                      f"materialised ({100 * len(done) / len(keys):.0f} %)", flush=True)
    finally:
        stack.send_signal(signal.SIGTERM)
        stack.communicate(timeout=120)
    print(f"state kept in {home} (delete it when done)")


if __name__ == "__main__":
    main()
