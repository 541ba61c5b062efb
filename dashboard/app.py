"""Streamlit dashboard: what demand was, what the model and EIA forecast, and how wrong each was.

Reads the serving snapshot through `dashboard.queries` only; never trains or ingests.
Run: `streamlit run dashboard/app.py` (the `electricity-stack` command starts it for you).
"""

from __future__ import annotations

import sys
from datetime import date, datetime, timedelta
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dashboard import queries  # noqa: E402
from electricity_assets.regions import REGIONS, get_region  # noqa: E402
from electricity_assets.replay_clock import current_time  # noqa: E402
from electricity_assets.serving import ServingUnavailableError, no_data_message  # noqa: E402

TTL_S = 60
DEFAULT_DAYS = 14
ATTRIBUTION = (
    "Demand and day-ahead forecasts: U.S. Energy Information Administration, Form EIA-930 "
    "(public domain); history compiled by Ruggles & Farnham, "
    "doi:10.5281/zenodo.3517197 (CC BY 4.0). Weather data by Open-Meteo.com (CC BY 4.0)."
)

# One cache entry per page part; each load opens and closes its own read-only connection.
load_overview = st.cache_data(ttl=TTL_S, show_spinner=False)(queries.load_overview)
load_region_span = st.cache_data(ttl=TTL_S, show_spinner=False)(queries.load_region_span)
load_window = st.cache_data(ttl=TTL_S, show_spinner=False)(queries.load_window)


def region_label(code: str) -> str:
    name = REGIONS[code].name if code in REGIONS else code
    return f"{code} - {name}" if name != code else code


def pick_window(region: str, tz: str) -> tuple[datetime, datetime] | None:
    """Sidebar date range in the region's local dates; returns the UTC [start, end) window."""
    span = load_region_span(region)
    if span is None:
        return None
    first, last = (pd.Timestamp(t).tz_convert(tz) for t in (span.first, span.last))
    focus = span.latest_forecast
    end_default = min(pd.Timestamp(focus).tz_convert(tz), last) if focus is not None else last
    default = (max(end_default - timedelta(days=DEFAULT_DAYS), first).date(), end_default.date())
    picked = st.sidebar.date_input("Date range (local dates)", value=default,
                                   min_value=first.date(), max_value=last.date(), key="dates")
    if not isinstance(picked, tuple | list) or len(picked) != 2:
        st.sidebar.caption("Pick an end date too.")
        return None
    start_day, end_day = picked
    start = pd.Timestamp(datetime.combine(start_day, datetime.min.time()), tz=tz)
    end = pd.Timestamp(datetime.combine(end_day + timedelta(days=1), datetime.min.time()), tz=tz)
    return start.tz_convert("UTC").to_pydatetime(), end.tz_convert("UTC").to_pydatetime()


def demand_chart(series: pd.DataFrame, tz: str, region: str) -> go.Figure:
    local = series["period_utc"].dt.tz_convert(tz).dt.tz_localize(None)
    fig = go.Figure()
    if series["forecast_mwh"].notna().any():
        fig.add_trace(go.Scatter(x=local, y=series["p90_mwh"], line={"width": 0},
                                 hoverinfo="skip", showlegend=False, name="P90"))
        fig.add_trace(go.Scatter(x=local, y=series["p10_mwh"], fill="tonexty", line={"width": 0},
                                 fillcolor="rgba(31,119,180,0.2)", name="model P10-P90"))
        fig.add_trace(go.Scatter(x=local, y=series["forecast_mwh"], name="model forecast",
                                 line={"color": "#1f77b4"}))
    fig.add_trace(go.Scatter(x=local, y=series["eia_df_mwh"], name="EIA day-ahead (DF)",
                             line={"color": "#ff7f0e", "dash": "dot"}))
    fig.add_trace(go.Scatter(x=local, y=series["actual_mwh"], name="actual demand",
                             line={"color": "black"}))
    fig.update_layout(title=f"Hourly demand, {region_label(region)}", height=430,
                      xaxis_title=f"hour ending, local time ({tz})", yaxis_title="MWh",
                      legend={"orientation": "h", "y": -0.2}, margin={"t": 50, "b": 10})
    return fig


def metrics_section(series: pd.DataFrame) -> None:
    st.subheader("Error metrics for the selected range")
    table = queries.error_metrics(series)
    # st.table renders HTML (readable by screen readers and the browser test), fine for 3 rows.
    st.table(table.set_index("forecast").style.format(
        {"MdAPE %": "{:.2f}", "MAPE %": "{:.2f}", "MAE MWh": "{:,.0f}"}, na_rep="-"))
    if table.loc[0, "hours"] == 0:
        st.caption("No model forecasts in this range yet: the model row fills in once "
                   "`demand_forecasts` has been materialised for these hours.")
    else:
        st.caption("All three are scored on the same hours: those with a model forecast.")


def weather_section(region: str, frame: pd.DataFrame, tz: str) -> None:
    st.subheader("Weather: temperature vs demand")
    if frame.empty:
        st.info(f"No weather for {region} in this range (the bundled weather covers CAL, MIDA "
                "and TEX from 2020).")
        return
    fig = go.Figure(go.Scatter(
        x=frame["temperature_c"], y=frame["actual_mwh"], mode="markers",
        marker={"size": 5, "opacity": 0.6},
        text=frame["period_utc"].dt.tz_convert(tz).dt.strftime("%Y-%m-%d %H:%M")))
    fig.update_layout(height=320, xaxis_title="temperature (°C)", yaxis_title="demand (MWh)",
                      margin={"t": 20, "b": 10})
    st.plotly_chart(fig, width="stretch")


def model_card_section(card: queries.ModelCard) -> None:
    st.subheader("Champion model")
    if not card.available:
        st.info(card.message)
        return
    cols = st.columns(3)
    cols[0].metric("Model", card.model_name)
    cols[1].metric("Version", card.version)
    cols[2].metric("Trained at (UTC)", f"{card.trained_at:%Y-%m-%d %H:%M}"
                   if card.trained_at else "-")
    if card.metrics:
        st.markdown("**Validation metrics**")
        st.dataframe(pd.DataFrame(card.metrics.items(), columns=["metric", "value"]),
                     hide_index=True)
    if card.importance_png:
        st.image(card.importance_png, caption="Feature importance (share of gain), from MLflow",
                 width=560)
    if card.message:
        st.caption(card.message)


def operations_section(overview: queries.Overview) -> None:
    st.subheader("Data freshness")
    cols = st.columns(3)
    cols[0].metric("Data clock (UTC)", f"{current_time():%Y-%m-%d %H:%M}")
    cols[1].metric("Dead letters", overview.dead_letters)
    published = overview.published_at
    cols[2].metric("Snapshot published (UTC)",
                   f"{pd.Timestamp(published):%Y-%m-%d %H:%M:%S}" if published is not None
                   else "live file")
    st.dataframe(overview.freshness, hide_index=True, width="stretch")


def main() -> None:
    st.set_page_config(page_title="US electricity demand", layout="wide")
    st.title("US hourly electricity demand: actual vs forecasts")
    try:
        overview = load_overview()
    except ServingUnavailableError as exc:
        st.warning(str(exc))
        st.caption(ATTRIBUTION)
        return
    codes = overview.regions
    if not codes:
        st.warning(no_data_message())
        st.caption(ATTRIBUTION)
        return
    default = codes.index("CAL") if "CAL" in codes else 0
    region = st.sidebar.selectbox("Region", codes, index=default, format_func=region_label,
                                  key="region")
    tz = get_region(region).timezone
    window = pick_window(region, tz)
    if window is not None:
        view = load_window(region, *window)
        series = view.series
        if series.empty:
            st.info("No demand in this range.")
        else:
            st.plotly_chart(demand_chart(series, tz, region), width="stretch")
            metrics_section(series)
        bt = view.backtest
        st.subheader("Backtest")
        if bt.empty:
            st.info("No backtest for this region yet.")
        else:
            st.dataframe(bt, hide_index=True, width="stretch")
        weather_section(region, view.weather, tz)
    span = load_region_span(region)
    if span is not None:
        model_card_section(span.card)
    operations_section(overview)
    st.caption(ATTRIBUTION)
    st.caption(f"Page built {date.today():%Y-%m-%d}; queries cached for {TTL_S} s.")


main()
