"""The Streamlit app's pages through AppTest, on a tmp DuckDB seeded with real bundled data."""

from __future__ import annotations

import functools
import json
import re
import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from dashboard import queries
from electricity_assets import serving
from electricity_assets_tests.dashboard_seed import seeded_database

APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")
REGION_PAGE = "views/region.py"


@pytest.fixture(autouse=True, scope="module")
def _scan_components_once() -> Iterator[None]:
    """Every AppTest run scans all installed packages for Streamlit components (0.3 s each);
    the packages do not change during the tests, so the module scans once."""
    from streamlit.components.v2 import manifest_scanner

    scan = manifest_scanner.scan_component_manifests
    manifest_scanner.scan_component_manifests = functools.cache(scan)
    yield
    manifest_scanner.scan_component_manifests = scan


@pytest.fixture
def live_db(tmp_path_factory: pytest.TempPathFactory, isolated_home: Path,
            monkeypatch: pytest.MonkeyPatch) -> Path:
    live = isolated_home / "electricity.duckdb"
    shutil.copy(seeded_database(tmp_path_factory.mktemp("seed")), live)
    # The data clock 4 hours after the seeded history ends.
    monkeypatch.setenv("ELECTRICITY_REPLAY_START", "2020-04-02T03:00:00Z")
    return live


def _open(query_params: dict[str, str] | None = None, page: str | None = None) -> AppTest:
    st.cache_data.clear()  # the cache is per process: an earlier test's database must not leak
    at = AppTest.from_file(APP, default_timeout=90)
    at.query_params.update(query_params or {})
    at.run()
    assert not at.exception, at.exception
    if page:
        at.switch_page(page).run()
        assert not at.exception, at.exception
    return at


@pytest.fixture
def app(live_db: Path) -> AppTest:
    serving.publish_snapshot()
    return _open()


def _texts(at: AppTest) -> str:
    parts = [e.value for kind in ("title", "subheader", "info", "warning", "caption", "markdown")
             for e in at.get(kind)]
    return "\n".join(str(p) for p in parts)


def _scoreboard_rows(at: AppTest) -> dict[str, list[str]]:
    """The overview table's cells per region code, read back from the page's HTML."""
    html = next(m.value for m in at.markdown if 'class="scoreboard"' in m.value)
    rows = {}
    for row in re.findall(r"<tr>(.*?)</tr>", html.split("<tbody>")[1]):
        code = re.search(r'href="region\?region=([A-Z0-9]+)"', row).group(1)
        rows[code] = [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row)]
    return rows


def _svg_charts(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown if 'class="chart"' in m.value]


def test_overview_is_the_landing_page_and_shows_what_the_query_returns(app: AppTest) -> None:
    assert app.title[0].value.startswith("US hourly electricity demand: every region")
    with serving.read_connection() as conn:
        table = queries.overview_table(conn).set_index("region")
    rows = _scoreboard_rows(app)
    assert sorted(rows) == sorted(table.index) and len(rows) == 12
    for code, cells in rows.items():
        expected = table.loc[code]
        assert cells[0].startswith(code)
        # model, EIA DF, naive, best, coverage | backtest: the same | data lag | champion
        assert cells[1:4] == [f"{expected[c]:.2f}" for c in ("model_mdape", "df_mdape",
                                                                "naive_mdape")]
        assert cells[4] == expected["winner"] and cells[9] == expected["bt_winner"]
        assert cells[5] == f"{expected['coverage_p10_p90']:.0f}"
        assert cells[6] == "3.10" and cells[7] == "1.90"  # the fixture backtest row
        assert cells[11] == "4" and cells[12] == "–"  # 4 h behind the clock; no registry
    wins = int((table["model_mdape"] < table["df_mdape"]).sum())
    assert (f"below EIA's day-ahead forecast in **{wins} of 12** regions"
            in _texts(app))
    svgs = [m.value for m in app.markdown if m.value.startswith("<svg")]
    assert len(svgs) == 12 and all("<polyline" in s for s in svgs)
    assert "No backtest yet" not in _texts(app) and "No model forecasts yet" not in _texts(app)
    assert "Weather data by Open-Meteo.com (CC BY 4.0)" in _texts(app)
    assert "NOAA NCEI Local Climatological Data" in _texts(app)


def test_region_page_opens_the_view_in_the_url(live_db: Path) -> None:
    serving.publish_snapshot()
    at = _open({"region": "TEN", "start": "2020-03-25", "end": "2020-03-27"}, REGION_PAGE)
    assert at.selectbox(key="region").value == "TEN"
    assert at.date_input(key="dates").value == (date(2020, 3, 25), date(2020, 3, 27))
    metrics = at.table[3].value  # after the next hours', their vintages' and the 24-hour tables
    # Three local days; TEN's DF has gaps, so at most 72 scored hours.
    assert 48 < metrics.loc["EIA day-ahead (DF)", "hours"] <= 72
    assert at.query_params == {"region": "TEN", "start": "2020-03-25", "end": "2020-03-27"}
    # Next day, demand, and TEN's weather from its three NOAA stations.
    assert len(_svg_charts(at)) == 3
    at = _open({"region": "SE", "start": "2020-03-25", "end": "2020-03-27"}, REGION_PAGE)
    # SE has no station in the bundle: the weather panel says so (its next hours come from
    # the issue before the newest, which skipped it).
    assert len(_svg_charts(at)) == 2 and "No weather for SE" in _texts(at)


def test_page_query_parameter_opens_the_region_page(live_db: Path) -> None:
    serving.publish_snapshot()
    at = _open({"page": "region", "region": "MIDA", "start": "2020-03-28", "end": "2020-03-29"})
    assert at.title[0].value == "MIDA - Mid-Atlantic: actual vs forecasts"
    assert at.query_params == {"region": "MIDA", "start": "2020-03-28", "end": "2020-03-29"}


def test_region_page_defaults_and_writes_its_state_to_the_url(live_db: Path) -> None:
    serving.publish_snapshot()
    at = _open({"start": "not-a-date"}, REGION_PAGE)
    assert at.selectbox(key="region").value == "CAL"
    # The default range: 14 days up to the newest forecast, in the URL for sharing.
    assert at.query_params == {"region": "CAL", "start": "2020-03-18", "end": "2020-04-01"}
    next_day, demand, weather = _svg_charts(at)  # drawn as SVG: no chart library to load
    assert "Hourly demand, CAL - California" in demand and demand.count("<polyline") >= 3
    assert weather.count("h0M") > 300 and not at.get("plotly_chart")  # one dot per hour
    labels = {m.label: m.value for m in at.metric}
    assert labels["Peak forecast (MWh)"].replace(",", "").isdigit()
    assert " - " in labels["P10-P90 at the peak (MWh)"]
    # The 24 h-ahead forecasts of the newest issue's hours: after the last actual.
    assert labels["Hours awaiting actuals"] == "24" and labels["Dead letters"] == "1"
    assert labels["Snapshot published (UTC)"] != "live file"
    horizon = at.table[2].value  # after the next hours' and their vintages' tables
    assert len(horizon) == 24 and list(horizon.columns) == [
        "forecast (MWh)", "P10 - P90 (MWh)", "actual (MWh)", "error (%)"]
    metrics = at.table[3].value
    assert list(metrics.index) == ["model", "EIA day-ahead (DF)", "seasonal naive (t-168 h)"]
    assert (metrics["hours"] > 300).all()
    assert metrics.loc["EIA day-ahead (DF)", "MdAPE %"] < metrics.loc[
        "seasonal naive (t-168 h)", "MdAPE %"]
    assert "No champion model for CAL yet" in _texts(at)
    at.toggle(key="interactive").set_value(True).run()
    assert len(at.get("plotly_chart")) == 3 and not _svg_charts(at)
    at.selectbox(key="region").set_value("TEX").run()
    at.date_input(key="dates").set_value((date(2020, 3, 20), date(2020, 3, 21))).run()
    assert not at.exception
    assert at.query_params == {"region": "TEX", "start": "2020-03-20", "end": "2020-03-21"}
    assert at.table[3].value.loc["model", "hours"] == 48


def test_a_url_range_partly_outside_the_data_is_clipped_to_it_and_said(live_db: Path) -> None:
    """The README's link outlives the data it was made on: keep what overlaps, say so."""
    serving.publish_snapshot()
    span = queries.load_region_span("CAL")
    first, last = (pd.Timestamp(t).tz_convert("America/Los_Angeles").date()
                   for t in (span.first, span.last))
    at = _open({"region": "CAL", "start": "2020-03-25", "end": "2020-06-30"}, REGION_PAGE)
    assert at.date_input(key="dates").value == (date(2020, 3, 25), last)
    assert at.query_params == {"region": "CAL", "start": "2020-03-25", "end": last.isoformat()}
    assert (f"The link's dates 2020-03-25 .. 2020-06-30 reach outside the data ({first} .. "
            f"{last}): showing 2020-03-25 .. {last}.") in _texts(at)
    at = _open({"region": "CAL", "start": "2019-12-01", "end": "2020-03-01"}, REGION_PAGE)
    assert at.date_input(key="dates").value == (first, date(2020, 3, 1))
    # No overlap at all: the default range, and the page says so too.
    at = _open({"region": "CAL", "start": "2021-01-01", "end": "2021-01-07"}, REGION_PAGE)
    assert at.query_params == {"region": "CAL", "start": "2020-03-18", "end": "2020-04-01"}
    assert "showing 2020-03-18 .. 2020-04-01" in _texts(at)
    # A range inside the data says nothing.
    at = _open({"region": "CAL", "start": "2020-03-25", "end": "2020-03-27"}, REGION_PAGE)
    assert "reach outside the data" not in _texts(at)


def test_region_page_downloads_the_forecasts_and_metrics(live_db: Path) -> None:
    serving.publish_snapshot()
    at = _open({"region": "CAL", "start": "2020-03-30", "end": "2020-03-31"}, REGION_PAGE)
    buttons = {b.proto.label: b for b in at.get("download_button")}
    assert set(buttons) == {"Download forecasts (CSV, hourly)", "Download metrics (CSV)"}
    assert buttons["Download forecasts (CSV, hourly)"].proto.url  # served by the media manager


def test_partial_state_leaves_out_empty_rows_and_says_why(live_db: Path) -> None:
    """What the first minutes of the seed look like: raw data, no forecasts, no backtest."""
    with duckdb.connect(str(live_db)) as conn:
        for table in ("demand_forecasts", "forecast_backtest", "forecast_skips"):
            # Emptied by re-creating it: DuckDB deletes every row of a table with a primary key
            # one index entry at a time (10 s for the seeded forecasts).
            (ddl,) = conn.execute("SELECT sql FROM duckdb_tables() WHERE table_name = ?",
                                  [table]).fetchone()
            conn.execute(f"DROP TABLE {table}")
            conn.execute(ddl)
    serving.publish_snapshot()
    at = _open()
    text = _texts(at)
    assert "No model forecasts yet" in text and "No backtest yet" in text
    assert "**Next hours**" not in text  # no overview line without an issue
    cells = _scoreboard_rows(at)["CAL"]
    assert cells[1] == "–" and cells[4] in ("EIA DF", "seasonal naive") and cells[9] == "–"
    at.switch_page(REGION_PAGE).run()
    assert not at.exception
    metrics = at.table[0].value
    assert "model" not in metrics.index and (metrics["hours"] > 0).all()
    text = _texts(at)
    assert "No model forecasts in this range yet" in text
    assert "No model forecasts for this region yet" in text
    assert "No backtest for this region yet" in text
    assert "No forecast issued yet: `demand_forecasts` issues every hour" in text


def test_region_page_calls_out_the_next_hours_of_the_newest_issue(live_db: Path) -> None:
    serving.publish_snapshot()
    at = _open({"region": "CAL"}, REGION_PAGE)
    with serving.read_connection() as conn:
        expected = queries.next_day(conn, "CAL").rows
    # Data up to 2020-04-01 23:00 UTC, issued at 2020-04-02 00:00 UTC (Pacific: 17:00).
    assert ("Next 48 hours (issued Wed 01 Apr 17:00 Los Angeles time, data up to "
            "Wed 01 Apr 16:00 Los Angeles time)") in [h.value for h in at.subheader]
    table = at.table[0].value
    assert len(table) == 48 and list(table.columns) == ["ahead (h)", "forecast (MWh)",
                                                         "P10 (MWh)", "P90 (MWh)"]
    assert table.index[0] == "Wed 01 Apr 17:00"  # the hour after the latest actual
    assert list(table["ahead (h)"]) == list(range(1, 49))
    peak = expected.loc[expected["forecast_mwh"].idxmax()]
    labels = {m.label: m.value for m in at.metric}
    assert labels["Peak ahead (MWh)"] == f"{peak['forecast_mwh']:,.0f}"
    assert labels["P10-P90 at the peak ahead (MWh)"] == (
        f"{peak['p10_mwh']:,.0f} - {peak['p90_mwh']:,.0f}")
    assert labels["Peak hour ahead (local)"] == (
        f"{peak['period_utc'].tz_convert('America/Los_Angeles'):%a %H:%M}")
    # How the last issues forecast the coming hours: the 6 issues before it, and it.
    vintages = at.table[1].value
    assert len(vintages) == 7 and vintages.index[-1] == "Wed 17:00"
    assert vintages.columns[0].startswith("Wed 17:00")
    assert sum(c.endswith("(peak)") for c in vintages.columns) == 1  # the 6 hours and the peak
    assert vintages.iloc[:-1].notna().all().all()  # each earlier issue forecast these hours
    chart = next(c for c in _svg_charts(at) if "Next hours, CAL" in c)
    assert "<polygon" in chart and chart.count("<polyline") >= 2  # band, forecast, actuals
    assert "simulated forecast error that grows with the lead time" in _texts(at)
    # SE was skipped in the newest issue: its page says why, and shows its newest issue.
    se = _open({"region": "SE"}, REGION_PAGE)
    assert ("A newer issue has no forecast for SE: no champion for demand-SE") in _texts(se)
    overview = _open()
    assert ("**Next hours**: the newest issue (2020-04-02 00:00 UTC, 1-48 h ahead) forecasts "
            "**11 of 12**") in _texts(overview)


def test_model_card_uses_readable_labels(live_db: Path) -> None:
    published = serving.publish_snapshot()
    metrics = {"val_model_mdape": 2.51, "val_df_mdape": 1.93, "val_naive_mdape": 4.0,
               "val_model_mae": 712.0, "val_df_mae": 540.0, "val_naive_mae": 1100.0,
               "val_model_coverage_p10_p90": 78.4, "val_hours": 336.0, "best_iteration": 412.0}
    with duckdb.connect(published["path"]) as snap:
        snap.execute("INSERT INTO model_cards VALUES ('CAL', 'demand-CAL', '7', 'abc', "
                     "'2020-03-29T03:00Z', ?, NULL)", [json.dumps(metrics)])
    at = _open({"region": "CAL"}, REGION_PAGE)
    labels = {m.label: m.value for m in at.metric}
    assert labels["Champion version"] == "7" and labels["Registered model"] == "demand-CAL"
    card = at.table[-2].value
    assert card.loc["median APE (%)", "EIA day-ahead (DF)"] == pytest.approx(1.93)
    assert card.loc["MAE (MWh)", "model"] == pytest.approx(712.0)
    assert pd.isna(card.loc["RMSE (MWh)", "model"])
    text = _texts(at)
    assert "P10-P90 coverage on validation (%, nominal 80): 78.4" in text
    assert "val_" not in text
    overview = _open()
    assert _scoreboard_rows(overview)["CAL"][12] == "7"
