"""How long the dashboard takes to load on the full bundled history. Prints figures; not a test.

    .venv/bin/python bench/dashboard_load.py [--duckdb PATH] [--screenshot docs/dashboard.png]

Without --duckdb it builds a tmp database with the WHOLE bundled history (raw demand + weather)
plus forecast rows labelled "bench-fixture" (mean of the same hour 1 and 2 weeks earlier) for the
last 28 days, publishes the serving snapshot, then measures:
1. the default view's queries, cold (no Streamlit cache), in-process;
2. a full script run of the app (AppTest), cold and then with warm `st.cache_data`;
3. a real page load in headless Chromium against `streamlit run`: navigation -> charts drawn.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def build_full_database(path: Path) -> None:
    import duckdb
    import pandas as pd

    from electricity_assets.datasets import DEMAND, WEATHER
    from electricity_assets.settings import PACKAGE_DATA_DIR
    from electricity_assets.sources.bundled import read_bundled
    from electricity_assets.storage import ensure_tables, replace_window

    start, end = datetime(2015, 7, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC)
    with duckdb.connect(str(path)) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        ensure_tables(conn)
        for dataset in (DEMAND, WEATHER):
            rows = read_bundled(dataset, start, end, PACKAGE_DATA_DIR)
            rows = rows.assign(source="bundled", ingested_at=pd.Timestamp.now(tz="UTC"))
            replace_window(conn, dataset.table, rows, start, end)
        last = conn.execute("SELECT max(period_utc) FROM raw_demand").fetchone()[0]
        since = last - timedelta(days=28)
        conn.execute("""
            INSERT INTO demand_forecasts
            WITH d AS (SELECT region, period_utc, value_mwh FROM raw_demand WHERE type = 'D')
            SELECT d.region, d.period_utc, (a.value_mwh + b.value_mwh) / 2,
                   (a.value_mwh + b.value_mwh) / 2 * 0.96, (a.value_mwh + b.value_mwh) / 2 * 1.04,
                   'demand-' || d.region, 'bench-fixture', d.period_utc - INTERVAL 24 HOUR, now()
            FROM d JOIN d a ON a.region = d.region AND a.period_utc = d.period_utc - INTERVAL 7 DAY
                   JOIN d b ON b.region = d.region AND b.period_utc = d.period_utc - INTERVAL 14 DAY
            WHERE d.period_utc > ?""", [since])


def timed(label: str, fn, *args):
    started = time.perf_counter()
    result = fn(*args)
    print(f"{label:<55} {time.perf_counter() - started:7.3f} s")
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def browser_load(workdir: Path, screenshot: Path) -> None:
    from dashboard.browser_check import capture_dashboard, find_chromium

    if find_chromium() is None:
        print("chromium not installed: browser figure skipped")
        return
    port = free_port()
    log = (workdir / "streamlit.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(REPO / "dashboard" / "app.py"),
         "--server.headless", "true", "--server.address", "127.0.0.1", "--server.port",
         str(port), "--browser.gatherUsageStats", "false"],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)
                break
            except OSError:
                time.sleep(0.25)
        for attempt in ("first (cold caches)", "second (warm caches)"):
            page = capture_dashboard(f"http://127.0.0.1:{port}/", screenshot,
                                     workdir / f"profile-{attempt[:5]}", min_charts=2,
                                     expect_texts=("Data freshness",))
            print(f"{'browser: navigation -> charts drawn, ' + attempt:<55} {page.seconds:7.3f} s")
        print(f"screenshot: {screenshot}")
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duckdb", help="measure a copy of an existing database instead")
    parser.add_argument("--home", help="measure an existing ELECTRICITY_HOME in place (e.g. "
                        ".local after `./dev run` seeded it: real forecasts and model card)")
    parser.add_argument("--screenshot", default=str(REPO / "bench" / "out" / "dashboard.png"))
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="dashboard-bench-"))
    os.environ["ELECTRICITY_HOME"] = args.home or str(workdir)
    live = Path(args.home or workdir) / "electricity.duckdb"
    if args.home:
        pass
    elif args.duckdb:
        shutil.copy(args.duckdb, live)
    else:
        timed("build tmp DuckDB with the full bundled history", build_full_database, live)
    os.environ["DUCKDB_PATH"] = str(live)
    from electricity_assets import serving

    print(f"snapshot: {timed('publish serving snapshot', serving.publish_snapshot)['rows']}")
    from dashboard import queries

    def default_view() -> None:
        overview = queries.load_overview()
        region = "CAL" if "CAL" in overview.regions else overview.regions[0]
        span = queries.load_region_span(region)
        view = queries.load_window(region, span.last - timedelta(days=14), span.last)
        queries.error_metrics(view.series)

    timed("default view queries, cold, in-process", default_view)
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(REPO / "dashboard" / "app.py"), default_timeout=120)
    timed("AppTest script run, cold (incl. first imports)", at.run)
    timed("AppTest script run, warm st.cache_data", at.run)
    assert not at.exception, at.exception
    browser_load(workdir, Path(args.screenshot))
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
