"""Open the running dashboard in headless Chromium, wait for the charts, screenshot it.

Drives Debian's `chromium` over the Chrome DevTools protocol (the `websockets` client Streamlit
already depends on), because `--dump-dom` returns before Streamlit's websocket renders anything.
Used by the browser test and by `bench/dashboard_load.py` (which measures page loads and
refreshes docs/dashboard_overview.png and docs/dashboard_region.png).
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from websockets.sync.client import connect

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--hide-scrollbars"]

PAGE_STATE_JS = """JSON.stringify({
  // textContent, not innerText: st.metric labels are not in innerText in headless layouts.
  text: document.body ? document.body.innerText + " | " + document.body.textContent : "",
  charts: document.querySelectorAll('.js-plotly-plot .main-svg').length,
  sparklines: document.querySelectorAll('svg.sparkline').length,
  svg_charts: document.querySelectorAll('svg.chart').length,
  running: !!document.querySelector('[data-testid="stStatusWidget"]'),
  exceptions: document.querySelectorAll('[data-testid="stException"]').length
})"""


NAVIGATED = "Inspected target navigated or closed"  # Chrome's error for a probe cut off by it


class BrowserCheckError(RuntimeError):
    pass


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class _Cdp:
    def __init__(self, ws_url: str) -> None:
        # Entered as a context manager (a bare connect() is deprecated in websockets 17.1);
        # close() ends it.
        self._ws = connect(ws_url, max_size=64 * 1024 * 1024, open_timeout=10).__enter__()
        self._next_id = 0

    def call(self, method: str, timeout_s: float = 30.0, **params) -> dict:
        self._next_id += 1
        self._ws.send(json.dumps({"id": self._next_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout_s
        while True:
            message = json.loads(self._ws.recv(timeout=max(deadline - time.monotonic(), 0.1)))
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise BrowserCheckError(f"{method} failed: {message['error']}")
                return message.get("result", {})

    def close(self) -> None:
        self._ws.close()


@contextmanager
def chromium_page(user_data_dir: Path, width: int = 1400, height: int = 2600) -> Iterator[_Cdp]:
    binary = find_chromium()
    if binary is None:
        raise BrowserCheckError("chromium not found: install it with `apt-get install -y chromium`")
    user_data_dir.mkdir(parents=True, exist_ok=True)
    port_file = user_data_dir / "DevToolsActivePort"
    port_file.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={user_data_dir}",
         f"--window-size={width},{height}", "--remote-debugging-address=127.0.0.1",
         "--remote-debugging-port=0", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cdp = None
    try:
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BrowserCheckError("chromium did not open its DevTools port within 30 s")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as resp:
            targets = json.loads(resp.read())
        page = next(t for t in targets if t.get("type") == "page")
        cdp = _Cdp(page["webSocketDebuggerUrl"])
        yield cdp
    finally:
        if cdp is not None:
            cdp.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_for_page(cdp: _Cdp, url: str, min_charts: int = 1, expect_texts: tuple[str, ...] = (),
                  min_sparklines: int = 0, timeout_s: float = 90.0, min_svg_charts: int = 0,
                  navigate: bool = True) -> tuple[float, dict]:
    """Navigate to `url` and wait until `min_charts` Plotly charts, `min_svg_charts` SVG charts,
    `min_sparklines` small multiples and every one of `expect_texts` are rendered and the app is
    idle; the seconds from navigation to that point, and the page state. With `navigate=False`
    it only waits (after a click, say)."""
    started = time.monotonic()
    if navigate:
        cdp.call("Page.navigate", url=url)
    state: dict = {}
    while time.monotonic() - started < timeout_s:
        try:
            answer = cdp.call("Runtime.evaluate", expression=PAGE_STATE_JS, returnByValue=True)
        except BrowserCheckError as exc:
            # A probe sent while the page navigates (a clicked link) dies with it: not ready yet.
            if NAVIGATED not in str(exc):
                raise
            time.sleep(0.1)
            continue
        if "exceptionDetails" in answer:
            raise BrowserCheckError(f"page probe failed: {answer['exceptionDetails']}")
        value = answer["result"].get("value")
        state = json.loads(value) if value else {}
        if state.get("exceptions"):
            raise BrowserCheckError(f"the app shows an exception:\n{state['text'][-2000:]}")
        ready = (state.get("charts", 0) >= min_charts and not state.get("running")
                 and state.get("sparklines", 0) >= min_sparklines
                 and state.get("svg_charts", 0) >= min_svg_charts
                 and all(t in state.get("text", "") for t in expect_texts))
        if ready:
            return time.monotonic() - started, state
        time.sleep(0.1)
    missing = [t for t in expect_texts if t not in state.get("text", "")]
    raise BrowserCheckError(
        f"{url} not ready after {timeout_s:.0f} s: {state.get('charts', 0)} charts, "
        f"{state.get('svg_charts', 0)} SVG charts, {state.get('sparklines', 0)} sparklines, "
        f"missing texts {missing}; page text:\n"
        f"{state.get('text', '')[:2000]}")


def screenshot(cdp: _Cdp, path: Path) -> Path:
    time.sleep(1.0)  # let Plotly finish its transitions before the picture
    png = cdp.call("Page.captureScreenshot", format="png")["data"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(png))
    return path
