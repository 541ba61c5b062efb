"""Region page: the next 24 hours (forecast issued at the data clock, P10-P90, peak, table), the
newest 24 scored forecast hours, actual vs forecasts over a date range,
errors, backtest, weather, the champion model and data freshness. Region and dates are in the
URL (`?region=CAL&start=2020-03-18&end=2020-04-01`, local dates, end inclusive)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import streamlit as st

from dashboard import charts, queries, ui
from electricity_assets.regions import get_region
from electricity_assets.replay_clock import current_time
from electricity_assets.serving import ServingUnavailableError, no_data_message

DEFAULT_DAYS = 14
BACKTEST_COLUMNS = {
    "window": "window (UTC dates)", "hours": "hours",
    "model_mdape": "model median APE %", "df_mdape": "EIA DF median APE %",
    "naive_mdape": "seasonal naive median APE %", "model_mae": "model MAE (MWh)",
    "df_mae": "EIA DF MAE (MWh)", "coverage_p10_p90": "P10-P90 coverage %",
}


def pick_region(codes: list[str]) -> str:
    wanted = st.query_params.get("region")
    default = wanted if wanted in codes else ("CAL" if "CAL" in codes else codes[0])
    region = st.sidebar.selectbox("Region", codes, index=codes.index(default),
                                  format_func=ui.region_label, key="region")
    st.query_params["region"] = region
    return region


def pick_window(span: queries.RegionSpan, tz: str) -> tuple[datetime, datetime] | None:
    """Sidebar date range in the region's local dates, from/to the URL; the UTC [start, end)."""
    first, last = (pd.Timestamp(t).tz_convert(tz).date() for t in (span.first, span.last))
    focus = span.latest_forecast
    end_default = min(pd.Timestamp(focus).tz_convert(tz).date(), last) if focus else last
    default = (max(end_default - timedelta(days=DEFAULT_DAYS), first), end_default)
    start_q, end_q = ui.param_date("start"), ui.param_date("end")
    if start_q and end_q and start_q <= end_q:
        clipped = ui.clip_dates(start_q, end_q, first, last)
        if clipped != (start_q, end_q):
            # A shared link outlives the data it was made on: say what is shown instead.
            shown = clipped or default
            st.info(f"The link's dates {start_q} .. {end_q} reach outside the data "
                    f"({first} .. {last}): showing {shown[0]} .. {shown[1]}.")
        default = clipped or default
    picked = st.sidebar.date_input("Date range (local dates)", value=default, min_value=first,
                                   max_value=last, key="dates")
    if not isinstance(picked, tuple | list) or len(picked) != 2:
        st.sidebar.caption("Pick an end date too.")
        return None
    st.query_params["start"], st.query_params["end"] = (d.isoformat() for d in picked)
    return ui.local_window(*picked, tz)


def _local_time(value: datetime, tz: str) -> str:
    place = tz.split("/")[-1].replace("_", " ")
    return f"{pd.Timestamp(value).tz_convert(tz):%a %d %b %H:%M} {place} time"


def next_day_section(region: str, nd: queries.NextDay, tz: str, interactive: bool) -> None:
    """The newest issue's 1-48 h path: forecast, P10-P90, peak, the hourly table, and how the
    last issues forecast the same hours."""
    if nd.rows.empty:
        st.subheader("Next hours")
        if nd.reason:
            st.info(f"No forecast for {region} in the newest issue "
                    f"({_local_time(nd.issued_at, tz)}): {nd.reason}.")
        elif nd.issued_at is not None:
            st.info(f"No forecast for {region} in the newest issue "
                    f"({_local_time(nd.issued_at, tz)}).")
        else:
            st.info("No forecast issued yet: `demand_forecasts` issues every hour once a "
                    "model is registered (the first run's seed does both).")
        return
    rows = nd.rows
    st.subheader(f"Next {len(rows)} hours (issued {_local_time(nd.issued_at, tz)}, data up to "
                 f"{_local_time(nd.data_until, tz)})")
    if nd.reason:
        st.warning(f"A newer issue has no forecast for {region}: {nd.reason}. Shown: the newest "
                   "issue that has one.")
    peak = rows.loc[rows["forecast_mwh"].idxmax()]
    cols = st.columns(4)
    cols[0].metric("Peak ahead (MWh)", ui.fmt_mwh(peak["forecast_mwh"]))
    cols[1].metric("Peak hour ahead (local)",
                   f"{pd.Timestamp(peak['period_utc']).tz_convert(tz):%a %H:%M}")
    cols[2].metric("P10-P90 at the peak ahead (MWh)",
                   f"{ui.fmt_mwh(peak['p10_mwh'])} - {ui.fmt_mwh(peak['p90_mwh'])}")
    cols[3].metric("Next hour (MWh)", ui.fmt_mwh(rows["forecast_mwh"].iloc[0]))
    series = pd.concat([nd.context, rows], ignore_index=True).reindex(
        columns=["period_utc", "actual_mwh", "eia_df_mwh", "forecast_mwh", "p10_mwh", "p90_mwh"])
    title = (f"Next hours, {ui.region_label(region)}: the last day's actuals, then the newest "
             "issue's forecast")
    if interactive:
        st.plotly_chart(charts.demand_chart(series, tz, title), width="stretch")
    else:
        st.markdown(charts.demand_chart_svg(series, tz, title), unsafe_allow_html=True)
    table = pd.DataFrame({
        "hour ending (local)": rows["period_utc"].dt.tz_convert(tz).dt.strftime("%a %d %b %H:%M"),
        "ahead (h)": rows["horizon_h"].astype(int),
        "forecast (MWh)": rows["forecast_mwh"].map(ui.fmt_mwh),
        "P10 (MWh)": rows["p10_mwh"].map(ui.fmt_mwh),
        "P90 (MWh)": rows["p90_mwh"].map(ui.fmt_mwh),
    })
    with st.expander(f"Next hours, hour by hour ({len(rows)} rows)", expanded=False):
        st.table(table.set_index("hour ending (local)"))
    vintage_section(nd, tz)
    weather = rows["weather_input"].iloc[0]
    note = (" The replay has no weather forecasts: the observed weather of these hours plus a "
            "simulated forecast error that grows with the lead time stands in for one (see "
            "README)." if "simulated" in str(weather) else "")
    st.caption(f"Issued every hour with data before the issue time only; model version "
               f"{rows['model_version'].iloc[0]}. Weather for these hours: {weather}.{note} "
               "EIA's posted day-ahead forecast (DF) is an input too: of the rest of the day "
               "from 11:00 Eastern (it is posted about 10:00 Eastern), and of the same hour a "
               "day earlier.")


VINTAGE_HOURS = 6  # the coming hours whose forecast history the table shows


def vintage_section(nd: queries.NextDay, tz: str) -> None:
    """How the forecast of the coming hours (and of the peak) moved over the last issues: a
    static table (one row per issue, newest last), no chart library to load."""
    if nd.vintages.empty:
        return
    rows = nd.rows
    peak_hour = rows.loc[rows["forecast_mwh"].idxmax(), "period_utc"]
    hours = [*rows["period_utc"].head(VINTAGE_HOURS), peak_hour]
    newest = rows.assign(issue_utc=pd.Timestamp(nd.issued_at))
    lines = pd.concat([nd.vintages, newest[["issue_utc", "period_utc", "forecast_mwh"]]])
    lines = lines[lines["period_utc"].isin(hours)]
    wide = lines.pivot_table(index="issue_utc", columns="period_utc", values="forecast_mwh")
    wide = wide.reindex(columns=list(dict.fromkeys(hours)))
    labels = {h: f"{pd.Timestamp(h).tz_convert(tz):%a %H:%M}" for h in wide.columns}
    labels[peak_hour] += " (peak)"
    table = wide.rename(columns=labels).map(ui.fmt_mwh)
    table.index = [f"{pd.Timestamp(i).tz_convert(tz):%a %H:%M}" for i in table.index]
    table.index.name = "issued (local)"
    with st.expander(f"How the forecast of the coming hours moved over the last "
                     f"{len(table)} issues (MWh)", expanded=False):
        st.table(table)


def horizon_section(horizon: pd.DataFrame, tz: str) -> None:
    if horizon.empty:
        st.subheader("Latest 24 forecast hours")
        st.info("No model forecasts for this region yet: they appear once `demand_forecasts` "
                "has run with a champion model.")
        return
    local = horizon["period_utc"].dt.tz_convert(tz)
    waiting = int(horizon["actual_mwh"].isna().sum())
    st.subheader("Latest 24 forecast hours")
    peak = horizon.loc[horizon["forecast_mwh"].idxmax()]
    cols = st.columns(4)
    peak_hour = pd.Timestamp(peak["period_utc"]).tz_convert(tz)
    cols[0].metric("Peak forecast (MWh)", ui.fmt_mwh(peak["forecast_mwh"]))
    cols[1].metric("P10-P90 at the peak (MWh)",
                   f"{ui.fmt_mwh(peak['p10_mwh'])} - {ui.fmt_mwh(peak['p90_mwh'])}")
    cols[2].metric("Peak hour (local)", f"{peak_hour:%d %b %H:%M}")
    cols[3].metric("Hours awaiting actuals", waiting)
    error = (horizon["forecast_mwh"] - horizon["actual_mwh"]) / horizon["actual_mwh"] * 100
    table = pd.DataFrame({
        "hour ending (local)": local.dt.strftime("%a %d %b %H:%M"),
        "forecast (MWh)": horizon["forecast_mwh"].map(ui.fmt_mwh),
        "P10 - P90 (MWh)": [f"{ui.fmt_mwh(a)} - {ui.fmt_mwh(b)}"
                            for a, b in zip(horizon["p10_mwh"], horizon["p90_mwh"], strict=True)],
        "actual (MWh)": horizon["actual_mwh"].map(lambda v: ui.fmt_mwh(v, "not yet")),
        "error (%)": error.map(lambda v: ui.fmt(v, "{:+.1f}")),
    })
    with st.expander("All 24 hours", expanded=False):
        st.table(table.set_index("hour ending (local)"))
    version = horizon["model_version"].iloc[-1]
    st.caption(f"Each hour's forecast uses data up to 24 h before it (issued "
               f"{pd.Timestamp(horizon['issued_at'].iloc[-1]).tz_convert(tz):%d %b %H:%M} local "
               f"for the last hour); model version {version}; times in {tz}.")


def metrics_section(series: pd.DataFrame) -> pd.DataFrame:
    st.subheader("Error metrics for the selected range")
    table = queries.error_metrics(series)
    shown = table[table["hours"] > 0]
    if shown.empty:
        st.info("No hour in this range has an actual and a forecast to score.")
        return table
    # st.table renders HTML (readable by screen readers and the browser test), fine for 3 rows.
    st.table(shown.set_index("forecast").style.format(
        {"MdAPE %": "{:.2f}", "MAPE %": "{:.2f}", "MAE MWh": "{:,.0f}"}, na_rep=ui.MISSING))
    if table.loc[0, "hours"] == 0:
        st.caption("No model forecasts in this range yet: the model row appears once "
                   "`demand_forecasts` has been materialised for these hours.")
    else:
        st.caption("All three are scored on the same hours: those with a model forecast. "
                   "MdAPE / MAPE: median / mean absolute percentage error.")
    return table


def backtest_section(bt: pd.DataFrame) -> None:
    st.subheader("Backtest (rolling origin, weekly refits)")
    if bt.empty:
        st.info("No backtest for this region yet: the first run's `forecast_backtest` asset "
                "fills it in after the forecasts (see the Dagster UI).")
        return
    bt = bt.head(5).copy()
    bt["window"] = [f"{pd.Timestamp(a):%Y-%m-%d} to {pd.Timestamp(b):%Y-%m-%d}"
                    for a, b in zip(bt["window_start"], bt["window_end"], strict=True)]
    table = bt[list(BACKTEST_COLUMNS)].rename(columns=BACKTEST_COLUMNS).set_index(
        BACKTEST_COLUMNS["window"])
    st.table(table.style.format(precision=2, thousands=",", na_rep=ui.MISSING))
    st.caption("Each week of the window is forecast 24 h ahead by a model refitted on everything "
               "before that week; newest run first.")


def weather_section(region: str, frame: pd.DataFrame, interactive: bool) -> None:
    st.subheader("Weather: temperature vs demand")
    if frame.empty:
        st.info(f"No weather for {region} in this range: materialise raw_weather and "
                "weather_features for it, or add stations or points to its catalogue entry "
                "(electricity_assets/regions.py).")
        return
    st.caption(queries.weather_provenance(region))
    if interactive:
        st.plotly_chart(charts.weather_chart(frame), width="stretch")
    else:
        st.markdown(charts.weather_chart_svg(frame), unsafe_allow_html=True)


def model_card_section(card: queries.ModelCard) -> None:
    st.subheader("Champion model")
    if not card.available:
        st.info(card.message)
        return
    cols = st.columns(3)
    cols[0].metric("Registered model", card.model_name)
    cols[1].metric("Champion version", card.version)
    cols[2].metric("Trained at (UTC)", f"{card.trained_at:%Y-%m-%d %H:%M}"
                   if card.trained_at else ui.MISSING)
    if card.metrics:
        weeks = card.metrics.get("val_weeks", 2)
        st.markdown(f"**Validation (the last {weeks:g} weeks before the training cut-off, "
                    "forecast by the early-stopped model before its refit on them): model vs EIA "
                    "DF vs seasonal naive**")
        st.table(queries.validation_table(card.metrics).style.format(
            precision=2, thousands=",", na_rep=ui.MISSING))
        facts = queries.validation_facts(card.metrics)
        st.caption(" · ".join(f"{k}: {v}" for k, v in facts.items()))
    if card.importance_png:
        st.image(card.importance_png, caption="Feature importance (share of gain), from MLflow",
                 width=560)


def operations_section(overview: queries.Overview, region: str) -> None:
    st.subheader("Data freshness")
    cols = st.columns(3)
    cols[0].metric("Data clock (UTC)", f"{current_time():%Y-%m-%d %H:%M}")
    cols[1].metric("Dead letters", overview.dead_letters)
    published = overview.published_at
    cols[2].metric("Snapshot published (UTC)",
                   f"{pd.Timestamp(published):%Y-%m-%d %H:%M:%S}" if published is not None
                   else "live file")
    fresh = overview.freshness
    fresh = fresh[fresh["region"] == region].copy()
    for column in ("latest_hour", "last_ingested_at", "last_streamed_at"):
        # As text: a missing time (never streamed) would otherwise render as a stray marker.
        fresh[column] = fresh[column].map(
            lambda t: ui.MISSING if pd.isna(t) else f"{pd.Timestamp(t):%Y-%m-%d %H:%M}")
    for column in ("lag_hours", "sensor_lag_min"):
        fresh[column] = fresh[column].map(lambda v: ui.fmt(v, "{:,.1f}"))
    fresh = fresh.rename(columns={
        "latest_hour": "newest hour (UTC)", "last_ingested_at": "last written (UTC)",
        "last_streamed_at": "last streamed (UTC)", "lag_hours": "lag behind data clock (h)",
        "sensor_lag_min": "since last stream write (min)"})
    st.table(fresh.drop(columns=["region"]).set_index("dataset"))


def downloads(region: str, series: pd.DataFrame, metrics: pd.DataFrame, bt: pd.DataFrame,
              tz: str) -> None:
    cols = st.columns(2)
    cols[0].download_button("Download forecasts (CSV, hourly)", queries.forecasts_csv(series, tz),
                            file_name=f"forecasts_{region}.csv", mime="text/csv",
                            on_click="ignore")
    cols[1].download_button("Download metrics (CSV)", queries.metrics_csv(metrics, bt),
                            file_name=f"metrics_{region}.csv", mime="text/csv",
                            on_click="ignore")


def main() -> None:
    try:
        overview = ui.load_overview()
    except ServingUnavailableError as exc:
        st.warning(str(exc))
        ui.footer()
        return
    codes = overview.regions
    if not codes:
        st.warning(no_data_message())
        ui.footer()
        return
    region = pick_region(codes)
    tz = get_region(region).timezone
    st.title(f"{ui.region_label(region)}: actual vs forecasts")
    st.page_link(ui.OVERVIEW_PATH, label="All regions (overview)", icon=":material/arrow_back:")
    span = ui.load_region_span(region)
    if span is None:
        st.info(f"No demand for {region} yet.")
        ui.footer()
        return
    interactive = st.sidebar.toggle(
        "Interactive charts", key="interactive",
        help="Plotly charts with zoom and hover; they take a few seconds longer to draw.")
    next_day_section(region, span.next_day, tz, interactive)
    horizon_section(span.horizon, tz)
    window = pick_window(span, tz)
    if window is not None:
        view = ui.load_window(region, *window, tz)
        if view.series.empty:
            st.info("No demand in this range.")
        else:
            title = f"Hourly demand, {ui.region_label(region)}"
            if view.daily:
                title = f"Daily mean demand, {ui.region_label(region)} (long range)"
            if interactive:
                st.plotly_chart(charts.demand_chart(view.chart, tz, title, view.daily),
                                width="stretch")
            else:
                st.markdown(charts.demand_chart_svg(view.chart, tz, title, view.daily),
                            unsafe_allow_html=True)
            metrics = metrics_section(view.series)
            downloads(region, view.series, metrics, view.backtest, tz)
        backtest_section(view.backtest)
        weather_section(region, view.weather, interactive)
    model_card_section(span.card)
    operations_section(overview, region)
    ui.footer()


ui.run_page(main)
