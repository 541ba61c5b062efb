"""How long the dashboard takes to load on the full bundled history, before and after the
overview rework, in one run. Prints figures; not a test.

    .venv/bin/python bench/dashboard_load.py [--duckdb PATH | --home DIR] [--screenshots DIR]

Without --duckdb/--home it builds a tmp database with the WHOLE bundled history (raw demand +
weather) plus forecast rows labelled "bench-fixture" (mean of the same hour 1 and 2 weeks earlier)
for the last 28 days, publishes the serving snapshot, then measures:
1. each view's queries, cold (no Streamlit cache), in-process;
2. full script runs of the app (AppTest), cold and then with warm `st.cache_data`;
3. real page loads in headless Chromium against `streamlit run`: navigation -> every chart drawn
   and every expected text shown. "before" is the single-page app of commit BASELINE (extracted
   with `git archive`), "after" the current overview and region pages. Each page is loaded once
   cold (fresh server and browser caches) and WARM_LOADS times warm (same browser, server caches
   filled); the warm figure is their median.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

BASELINE = "26e7f35"  # main before the overview rework: one page, Plotly only
WARM_LOADS = 3
WEATHER_REGIONS = {"CAL", "MIDA", "TEX"}  # the bundled weather: a second chart


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
        last = conn.execute("SELECT max(period_utc) FROM raw_demand").fetchall()[0][0]
        since = last - timedelta(days=28)
        # The 24 h-ahead slice of hourly issues (issued 23 h before the hour).
        conn.execute("""
            INSERT INTO demand_forecasts BY NAME
            WITH d AS (SELECT region, period_utc, value_mwh FROM raw_demand WHERE type = 'D')
            SELECT d.region, d.period_utc - INTERVAL 23 HOUR AS issue_utc, 24 AS horizon_h,
                   d.period_utc, (a.value_mwh + b.value_mwh) / 2 AS forecast_mwh,
                   (a.value_mwh + b.value_mwh) / 2 * 0.96 AS p10_mwh,
                   (a.value_mwh + b.value_mwh) / 2 * 1.04 AS p90_mwh,
                   'demand-horizons-' || d.region AS model_name, 'bench-fixture' AS model_version,
                   d.period_utc - INTERVAL 24 HOUR AS data_until_utc,
                   'bench fixture' AS weather_input, now() AS created_at
            FROM d JOIN d a ON a.region = d.region AND a.period_utc = d.period_utc - INTERVAL 7 DAY
                   JOIN d b ON b.region = d.region AND b.period_utc = d.period_utc - INTERVAL 14 DAY
            WHERE d.period_utc > ?""", [since])


def timed(label: str, fn, *args):
    started = time.perf_counter()
    result = fn(*args)
    print(f"{label:<62} {time.perf_counter() - started:7.3f} s", flush=True)
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def baseline_app(workdir: Path) -> Path:
    """The BASELINE commit's dashboard/ under workdir (its app puts workdir first on sys.path,
    so it imports its own queries module and today's electricity_assets)."""
    archive = subprocess.run(["git", "archive", "--format=tar", BASELINE, "dashboard"],
                             cwd=REPO, check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(workdir / "baseline", filter="data")
    return workdir / "baseline" / "dashboard" / "app.py"


@contextmanager
def streamlit_server(app: Path, log_path: Path) -> Iterator[str]:
    port = free_port()
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(app), "--server.headless", "true",
             "--server.address", "127.0.0.1", "--server.port", str(port),
             "--browser.gatherUsageStats", "false"],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)
                break
            except OSError:
                time.sleep(0.25)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _fresh_browser_load(workdir: Path, url: str, wait: dict) -> float:
    from dashboard.browser_check import chromium_page, wait_for_page

    profile = Path(tempfile.mkdtemp(prefix="profile-", dir=workdir))
    with chromium_page(profile) as cdp:
        cdp.call("Page.enable")
        return wait_for_page(cdp, url, **wait)[0]


def browser_loads(label: str, app: Path, pages: list[tuple[str, str, dict]], workdir: Path,
                  screenshots: Path | None) -> None:
    """Per page of one app: a cold load (server caches and browser empty), then WARM_LOADS
    loads in a new browser each (server caches warm: what a colleague opening a shared link
    sees), then WARM_LOADS reloads in one browser (its HTTP cache warm too)."""
    from dashboard.browser_check import chromium_page, screenshot, wait_for_page

    with streamlit_server(app, workdir / f"streamlit-{label}.log") as base:
        for name, path, wait in pages:
            cold = _fresh_browser_load(workdir, base + path, wait)
            fresh = [_fresh_browser_load(workdir, base + path, wait) for _ in range(WARM_LOADS)]
            with chromium_page(Path(tempfile.mkdtemp(prefix="profile-", dir=workdir))) as cdp:
                cdp.call("Page.enable")
                wait_for_page(cdp, base + path, **wait)
                same = [wait_for_page(cdp, base + path, **wait)[0] for _ in range(WARM_LOADS)]
                if screenshots is not None:
                    out = screenshot(cdp, screenshots / f"dashboard_{name.split()[0]}.png")
                    print(f"screenshot: {out}")
            print(f"browser {label}, {name}, navigation -> all drawn:", flush=True)
            print(f"  {'cold (new server caches, new browser)':<60} {cold:7.3f} s")
            for what, runs in (("warm server, new browser each (median)", fresh),
                               ("warm server, same browser (median)", same)):
                print(f"  {what:<60} {statistics.median(runs):7.3f} s  "
                      f"({', '.join(f'{r:.2f}' for r in runs)})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duckdb", help="measure a copy of an existing database instead")
    parser.add_argument("--home", help="measure an existing ELECTRICITY_HOME in place (e.g. "
                        ".local after `./dev run` seeded it: real forecasts and model card)")
    parser.add_argument("--screenshots", type=Path,
                        help="save the overview and region pages here (e.g. docs)")
    parser.add_argument("--region", default="CAL", help="region page to load (default CAL)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the 'before' app")
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

    if not args.home:
        print(f"snapshot: {timed('publish serving snapshot', serving.publish_snapshot)['rows']}")
    from dashboard import queries

    overview = queries.load_overview()
    region = args.region if args.region in overview.regions else overview.regions[0]

    def region_view() -> None:
        span = queries.load_region_span(region)
        view = queries.load_window(region, span.last - timedelta(days=14), span.last)
        queries.error_metrics(view.series)

    timed("queries, overview page (scoreboard + small multiples), cold", queries.load_scoreboard)
    timed(f"queries, region page ({region}, 14 days), cold", region_view)
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    for page in (None, "views/region.py"):
        at = AppTest.from_file(str(REPO / "dashboard" / "app.py"), default_timeout=120)
        at.query_params["region"] = region
        if page:  # switch_page needs the pages a first run registers
            at.run().switch_page(page)
        st.cache_data.clear()
        name = "region" if page else "overview"
        timed(f"AppTest script run, {name}, cold caches", at.run)
        timed(f"AppTest script run, {name}, warm st.cache_data", at.run)
        assert not at.exception, at.exception

    from dashboard.browser_check import find_chromium

    if find_chromium() is None:
        print("chromium not installed: browser figures skipped")
        return
    # Texts of the last elements of each page too: Streamlit shows a grey placeholder until an
    # element is drawn, so waiting for the headings alone would stop the clock early.
    footer = "Weather data by Open-Meteo.com (CC BY 4.0)"
    region_texts = ("Next 48 hours", "24 forecast hours", "Peak forecast (MWh)",
                    "Error metrics for the selected range", "MdAPE %", "Download metrics (CSV)",
                    "Champion model",
                    "Data freshness", "Dead letters", "Snapshot published (UTC)", footer)
    try:
        baseline = None if args.no_baseline else baseline_app(workdir)
    except (OSError, subprocess.CalledProcessError) as exc:  # e.g. a shallow clone
        print(f"baseline {BASELINE} not available ({exc}): 'before' skipped")
        baseline = None
    if baseline is not None:
        browser_loads("before", baseline, [
            (f"single page ({region})", "/", {
                "min_charts": 2, "expect_texts": ("MdAPE %", "Champion model", "Dead letters",
                                                  "Snapshot published (UTC)", footer)})],
            workdir, None)
    browser_loads("after", REPO / "dashboard" / "app.py", [
        ("overview", "/", {"min_charts": 0, "min_sparklines": len(overview.regions),
                           "expect_texts": ("Last 7 days", "US48", "last 3 days",
                                            "Download this table (CSV)", footer)}),
        (f"region ({region})", f"/region?region={region}",
         {"min_charts": 0, "min_svg_charts": (2 if region in WEATHER_REGIONS else 1)
          + (0 if queries.load_region_span(region).next_day.rows.empty else 1),
          "expect_texts": region_texts}),
    ], workdir, args.screenshots)
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
