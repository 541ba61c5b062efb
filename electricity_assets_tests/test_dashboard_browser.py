"""The real thing: `streamlit run` on a loopback port, opened by headless Chromium."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from dashboard.browser_check import chromium_page, find_chromium, screenshot, wait_for_page
from electricity_assets import serving
from electricity_assets_tests.dashboard_seed import seeded_database

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.integration  # streamlit run + headless Chromium

if find_chromium() is None and not os.environ.get("CI"):
    pytest.skip("chromium is not installed (./dev installs it; CI requires it)",
                allow_module_level=True)


OVERVIEW_TEXTS = (
    "every region at a glance", "last 7 days: median APE %", "latest backtest: median APE %",
    "CAL - California", "US48 - United States Lower 48", "seasonal naive", "champion version",
    "Actual vs model forecast, last 3 days", "Download this table (CSV)",
    "Next hours: the newest issue (2020-04-02 00:00 UTC, 1-48 h ahead) forecasts 11 of 12",
    "Weather data by Open-Meteo.com (CC BY 4.0)")
REGION_TEXTS = (
    "TEX - Texas: actual vs forecasts", "Next 48 hours (issued", "Peak hour ahead (local)",
    "P10-P90 at the peak ahead (MWh)", "Next hours, TEX - Texas: the last day's actuals",
    "Latest 24 forecast hours", "Peak forecast (MWh)",
    "P10-P90 at the peak (MWh)", "Hourly demand, TEX - Texas", "actual demand (MWh)",
    "EIA day-ahead DF (MWh)", "model forecast (MWh)", "model P10-P90 (MWh)",
    "Error metrics for the selected range", "seasonal naive (t-168 h)", "MdAPE %", "MAE MWh",
    "Download forecasts (CSV, hourly)", "Download metrics (CSV)",
    "Backtest (rolling origin, weekly refits)", "Temperature vs demand",
    "No champion model for TEX yet", "Dead letters", "Snapshot published (UTC)",
    "Weather data by Open-Meteo.com (CC BY 4.0)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"streamlit exited early:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"streamlit not healthy after {timeout_s} s:\n{log.read_text()[-3000:]}")


def test_overview_and_a_region_open_from_urls_in_chromium(
        tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, isolated_home: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copy(seeded_database(tmp_path_factory.mktemp("seed")),
                isolated_home / "electricity.duckdb")
    serving.publish_snapshot()
    # The replay clock just after the seeded history ends: every region is fresh.
    monkeypatch.setenv("ELECTRICITY_REPLAY_START", "2020-04-02T00:00:00Z")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "streamlit.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(REPO / "dashboard" / "app.py"),
             "--server.headless", "true", "--server.address", "127.0.0.1",
             "--server.port", str(port), "--browser.gatherUsageStats", "false"],
            cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=os.environ.copy())
    # DASHBOARD_SCREENSHOT_DIR=docs refreshes the pictures; by default they stay in tmp.
    pictures = Path(os.environ.get("DASHBOARD_SCREENSHOT_DIR") or tmp_path)
    try:
        _wait_healthy(url, proc, log)
        # Wait for every text, not assert after the first few: Streamlit streams elements in,
        # so a metric label can land a moment after the subheader above it.
        with chromium_page(tmp_path / "chromium-profile") as cdp:
            cdp.call("Page.enable")
            _, overview = wait_for_page(cdp, url + "/", min_charts=0, min_sparklines=12,
                                        expect_texts=OVERVIEW_TEXTS)
            overview_png = screenshot(cdp, pictures / "dashboard_overview.png")
            # A region's link in the table opens its page.
            cdp.call("Runtime.evaluate", expression=(
                "document.querySelector('table.scoreboard a[href=\"region?region=NW\"]').click()"))
            # Waits for a text below the first chart too: the "Next hours" chart alone is
            # drawn while the rest of the page still streams in.
            _, clicked = wait_for_page(cdp, "", min_charts=0, min_svg_charts=1,
                                       expect_texts=("NW - Northwest: actual vs forecasts",
                                                     "Latest 24 forecast hours"),
                                       navigate=False)
            _, region = wait_for_page(
                cdp, url + "/region?region=TEX&start=2020-03-20&end=2020-04-01", min_charts=0,
                min_svg_charts=3, expect_texts=REGION_TEXTS)
            region_png = screenshot(cdp, pictures / "dashboard_region.png")
            # The region page's state is back in the address bar for sharing.
            address = cdp.call("Runtime.evaluate", expression="location.search",
                               returnByValue=True)["result"]["value"]
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    # .streamlit/config.toml: a viewer's toolbar, no "Deploy" button.
    assert "Deploy" not in overview["text"] + clicked["text"]
    for text in OVERVIEW_TEXTS:
        assert text in overview["text"], f"{text!r} missing from the overview"
    for text in REGION_TEXTS:
        assert text in region["text"], f"{text!r} missing from the region page"
    assert address == "?region=TEX&start=2020-03-20&end=2020-04-01"
    assert "Latest 24 forecast hours" in clicked["text"]
    assert region["text"].count("Mar 2") > 10  # the date range's days on the chart axis
    for page in (overview, region):
        assert "Traceback" not in page["text"] and "Error" not in page["text"].replace(
            "Error metrics", "")
    for png in (overview_png, region_png):
        data = png.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000  # a real picture
