"""The serving snapshot: how the dashboard reads DuckDB without ever blocking a Dagster write.

DuckDB allows one writer process, and a read-only connection held by another process blocks that
writer as well. So the dashboard never opens the live database while a snapshot exists:

- writer side: after each successful run (a run-status sensor) and after seeding, the tables the
  dashboard shows are copied from the live file into `serving.duckdb.tmp`, which then replaces
  `serving.duckdb` with `os.replace` (atomic; a reader still holding the old file keeps reading it).
  The copy takes a short read-only lock on the live file (under a second on the full bundle);
  a writer that hits it retries (ElectricityDuckDB backs off), as this copy does.
- the champion model cards (MLflow `demand-<REGION>@champion`: version, metrics, feature
  importance figure) are read at publish time into the snapshot's `model_cards` table, so the
  dashboard never imports MLflow (10+ s) while a page loads.
- reader side: short-lived read-only connections to the snapshot, one per query, never cached.
  Without a snapshot (e.g. a database filled by hand) the live file is read the same way, with a
  bounded retry on the lock.

No Dagster imports: the dashboard imports this module.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import duckdb
import pandas as pd

from electricity_assets import settings
from electricity_assets.replay_clock import data_clock

T = TypeVar("T")

logger = logging.getLogger(__name__)

SERVING_TABLES = ("raw_demand", "raw_weather", "weather_features", "demand_forecasts",
                  "forecast_skips", "forecast_backtest", "dead_letters")
RECENT_ISSUE_DAYS = 3
# What the snapshot holds of a table, where not all of it: the day-ahead view the charts compare
# with EIA's DF is the 24 h horizon of every issue (one row per region and hour, as EIA's DF);
# the "Next hours" panel needs every horizon of the last days' issues only (the table grows by
# 12 regions x 48 rows an hour).
SERVING_SELECTS = {
    "forecasts_24h": ("demand_forecasts", """
        SELECT region, period_utc, forecast_mwh, p10_mwh, p90_mwh, model_name, model_version,
               issue_utc AS issued_at, created_at
        FROM live.demand_forecasts WHERE horizon_h = 24"""),
    "demand_forecasts": ("demand_forecasts", f"""
        SELECT * FROM live.demand_forecasts f
        WHERE issue_utc >= (SELECT max(issue_utc) FROM live.demand_forecasts g
                            WHERE g.region = f.region) - INTERVAL {RECENT_ISSUE_DAYS} DAY"""),
    "forecast_skips": ("forecast_skips", f"""
        SELECT * FROM live.forecast_skips
        WHERE issue_utc >= (SELECT max(issue_utc) FROM live.forecast_skips)
                           - INTERVAL {RECENT_ISSUE_DAYS} DAY"""),
}
LOCK_ERRORS = (duckdb.IOException, duckdb.ConnectionException)


class ServingUnavailableError(RuntimeError):
    pass


class CorruptDatabaseError(ServingUnavailableError):
    """The file exists but DuckDB cannot read it: no amount of waiting helps."""


def is_lock_error(exc: BaseException) -> bool:
    """True when another process holds the file lock (worth retrying); a corrupt or truncated
    file raises the same exception class with another message."""
    text = str(exc)
    return "lock" in text.lower()


def corrupt_database_error(path: str | Path, exc: BaseException) -> CorruptDatabaseError:
    """The error a reader shows: short and without file paths (the dashboard shows it to
    anyone); the log gets the file and DuckDB's own words."""
    logger.error("%s cannot be read, it is corrupt or truncated: %s", path, exc)
    return CorruptDatabaseError(
        "The database is not a valid DuckDB database (corrupt or truncated; the log names the "
        "file and the cause). Restore it from a backup, or delete it (and serving.duckdb next "
        "to it) and start again: `electricity-stack --reseed` re-seeds the bundled history")


def is_corruption(exc: BaseException) -> bool:
    """True for DuckDB's words for a damaged file (a block whose checksum does not match)."""
    text = str(exc).lower()
    return "corrupt" in text or "checksum" in text


def serving_path() -> Path:
    """Where the snapshot lives: SERVING_DUCKDB_PATH, default next to the live DuckDB file."""
    return settings.serving_duckdb_path()


def with_lock_retry(action: Callable[[], T], what: str, timeout_s: float = 10.0,
                    path: str | Path | None = None) -> T:
    """Run `action`, retrying with backoff while another process holds the DuckDB file lock.

    Any other I/O error on `path` means the file itself is unreadable: raised at once, naming it.
    """
    deadline = time.monotonic() + timeout_s
    delay = 0.05
    while True:
        try:
            return action()
        except LOCK_ERRORS as exc:
            if path is not None and not is_lock_error(exc):
                raise corrupt_database_error(path, exc) from exc
            if time.monotonic() + delay > deadline:
                raise ServingUnavailableError(
                    f"{what}: the database stayed locked for {timeout_s:.0f} s ({exc}); a long "
                    "write is running: retry shortly") from exc
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


def _existing_tables(conn: duckdb.DuckDBPyConnection, catalog: str) -> set[str]:
    rows = conn.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = ?", [catalog]
    ).fetchall()
    return {r[0] for r in rows}


def publish_snapshot(live_path: str | None = None, target: Path | None = None,
                     tables: Sequence[str] = SERVING_TABLES, lock_timeout_s: float = 60.0) -> dict:
    """Copy `tables` of the live database into a fresh snapshot file and swap it in atomically."""
    live_path = live_path or settings.duckdb_path()
    target = target or serving_path()
    if not Path(live_path).exists():
        raise ServingUnavailableError(
            f"{live_path} does not exist yet: materialise the raw assets first")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)

    def copy() -> dict[str, int]:
        counts: dict[str, int] = {}
        with duckdb.connect() as conn:
            conn.execute("SET TimeZone = 'UTC'")
            conn.execute("ATTACH ? AS live (READ_ONLY)", [live_path])
            try:
                conn.execute("ATTACH ? AS snap", [str(tmp)])
                present = _existing_tables(conn, "live")
                wanted = [*tables, *(t for t in SERVING_SELECTS if t not in tables)]
                for table in wanted:
                    source, select = SERVING_SELECTS.get(
                        table, (table, f"SELECT * FROM live.{table}"))
                    if source in present:
                        conn.execute(f"CREATE TABLE snap.{table} AS {select}")
                        counts[table] = conn.execute(
                            f"SELECT count(*) FROM snap.{table}").fetchone()[0]
                conn.execute("CREATE TABLE snap.serving_meta AS SELECT ?::TIMESTAMPTZ "
                             "AS published_at", [datetime.now(UTC)])
            finally:
                conn.execute("DETACH live")
        return counts

    started = time.monotonic()
    try:
        counts = with_lock_retry(copy, f"snapshot of {live_path}", lock_timeout_s, live_path)
        with duckdb.connect(str(tmp)) as snap:  # MLflow is read with no lock on the live file
            regions = ([r[0] for r in snap.execute(
                "SELECT DISTINCT region FROM raw_demand ORDER BY 1").fetchall()]
                if "raw_demand" in counts else [])
            cards = collect_model_cards(regions)
            snap.execute(f"CREATE TABLE model_cards ({MODEL_CARD_COLUMNS})")
            if len(cards):
                snap.register("_cards", cards)
                snap.execute("INSERT INTO model_cards SELECT * FROM _cards")
            counts["model_cards"] = len(cards)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, target)
    logger.info("published serving snapshot %s in %.2f s: %s", target,
                time.monotonic() - started, counts)
    return {"path": str(target), "seconds": time.monotonic() - started, "rows": counts}


MODEL_CARD_COLUMNS = ("region VARCHAR, model_name VARCHAR, version VARCHAR, run_id VARCHAR, "
                      "trained_at TIMESTAMPTZ, metrics_json VARCHAR, importance_png BLOB")


def registry_exists(uri: str) -> bool:
    if uri.startswith("sqlite:///"):
        return Path(uri.removeprefix("sqlite:///")).exists()
    return True


def _artifact_bytes(client, run_id: str, path: str) -> bytes | None:
    try:
        with tempfile.TemporaryDirectory() as tmp:
            return Path(client.download_artifacts(run_id, path, tmp)).read_bytes()
    except Exception:  # noqa: BLE001 - no such artifact: the card shows the rest
        return None


def _served_champion(client, region: str):
    """(name, version, run) of the champion whose forecasts are served: the multi-horizon
    family, else (older registries) the 24-hour one; None without either."""
    for name in (f"demand-horizons-{region}", f"demand-{region}"):
        try:
            version = client.get_model_version_by_alias(name, "champion")
            return name, version, client.get_run(version.run_id)
        except Exception as exc:  # noqa: BLE001 - no model or alias yet for this region
            logger.debug("no champion card for %s: %s", name, exc)
    return None


def collect_model_cards(regions: Sequence[str], tracking_uri: str | None = None) -> pd.DataFrame:
    """One row per region with a served champion in MLflow (`demand-horizons-<REGION>`, else
    `demand-<REGION>`)."""
    columns = ["region", "model_name", "version", "run_id", "trained_at", "metrics_json",
               "importance_png"]
    uri = tracking_uri or settings.mlflow_tracking_uri()
    if not regions or not registry_exists(uri):
        return pd.DataFrame(columns=columns)
    from mlflow import MlflowClient  # slow import: only when a registry exists

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    rows = []
    for region in regions:
        found = _served_champion(client, region)
        if found is None:
            continue
        name, version, run = found
        rows.append({
            "region": region, "model_name": name, "version": str(version.version),
            "run_id": version.run_id,
            "trained_at": pd.Timestamp(run.info.start_time, unit="ms", tz="UTC"),
            "metrics_json": json.dumps(dict(sorted(run.data.metrics.items()))),
            "importance_png": _artifact_bytes(client, version.run_id, "feature_importance.png"),
        })
    return pd.DataFrame(rows, columns=columns)


def no_data_message(path: Path | None = None) -> str:
    """What to do when there is nothing to show: depends on where the data comes from."""
    if not data_clock().replaying:
        from electricity_assets.api_backfill import backfill_hint

        return backfill_hint(datetime.now(UTC))
    where = f"{path} does not exist. " if path else ""
    return (f"no data yet: {where}Run `electricity-stack` (it seeds the bundled history) or "
            "materialise the raw assets in Dagster")


@contextmanager
def read_connection(timeout_s: float = 10.0) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short-lived read-only connection: the snapshot if published, else the live file."""
    path = serving_path()
    if not path.exists():
        path = Path(settings.duckdb_path())
    if not path.exists():
        raise ServingUnavailableError(no_data_message(path))
    conn = with_lock_retry(lambda: duckdb.connect(str(path), read_only=True),
                           f"opening {path}", timeout_s, path)
    try:
        conn.execute("SET TimeZone = 'UTC'")
        yield conn
    except duckdb.Error as exc:
        # A file that opens but has a damaged block fails only when a query reads that block.
        if is_corruption(exc):
            raise corrupt_database_error(path, exc) from None
        raise
    finally:
        conn.close()
