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

from dashboard.browser_check import capture_dashboard, find_chromium
from electricity_assets import serving
from electricity_assets_tests.dashboard_seed import seeded_database

REPO = Path(__file__).resolve().parent.parent

if find_chromium() is None and not os.environ.get("CI"):
    pytest.skip("chromium is not installed (./dev installs it; CI requires it)",
                allow_module_level=True)


EXPECTED_TEXTS = (
    "CAL - California", "seasonal naive (t-168 h)", "Data freshness", "actual demand",
    "EIA day-ahead (DF)", "model forecast", "model P10-P90", "MdAPE %", "MAPE %", "MAE MWh",
    "Backtest", "temperature vs demand", "No champion model for CAL yet", "Dead letters",
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


def test_dashboard_renders_real_forecasts_in_chromium(
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
    try:
        _wait_healthy(url, proc, log)
        # Wait for every text, not assert after the first few: Streamlit streams elements in,
        # so a metric label can land a moment after the subheader above it.
        page = capture_dashboard(
            url, tmp_path / "dashboard.png", tmp_path / "chromium-profile", min_charts=2,
            expect_texts=EXPECTED_TEXTS)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    text = page.text
    for expected in EXPECTED_TEXTS:
        assert expected in text, f"{expected!r} missing from the rendered page"
    assert "Traceback" not in text and "Error" not in text.replace("Error metrics", "")
    png = page.screenshot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 50_000  # a real picture, not blank
