"""Overview page: one row per region (recent and backtest accuracy, freshness, champion) and
small multiples of actual vs forecast; each region links to its page."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import charts, queries, ui
from electricity_assets.replay_clock import current_time
from electricity_assets.serving import ServingUnavailableError, no_data_message

SPARK_COLUMNS = 4


def summary_line(table: pd.DataFrame, prefix: str, what: str) -> str | None:
    scored = table[table[f"{prefix}model_mdape"].notna()]
    if scored.empty:
        return None
    n = len(scored)
    beats_df = int((scored[f"{prefix}model_mdape"] < scored[f"{prefix}df_mdape"]).sum())
    beats_naive = int((scored[f"{prefix}model_mdape"] < scored[f"{prefix}naive_mdape"]).sum())
    return (f"**{what}**: the model's median APE is below EIA's day-ahead forecast in "
            f"**{beats_df} of {n}** regions and below seasonal naive in **{beats_naive} of {n}**.")


def scoreboard_section(table: pd.DataFrame) -> None:
    labels = {code: ui.region_label(code) for code in table["region"]}
    recent = summary_line(table, "", "Last 7 days")
    backtest = summary_line(table, "bt_", "Latest backtest")
    for line in (recent, backtest):
        if line:
            st.markdown(line)
    if recent is None:
        st.info("No model forecasts yet: the model columns fill in once the first run has "
                "trained the models and forecast the last 7 days (a few minutes after the "
                "first start; progress in .local/logs/seed.log).")
    if backtest is None:
        st.info("No backtest yet: the first run's `forecast_backtest` asset refits the model "
                "weekly over the last weeks after the forecasts; its columns fill in when it "
                "has finished.")
    st.markdown(charts.scoreboard_html(table, labels), unsafe_allow_html=True)
    window = table.dropna(subset=["window_end"])
    if len(window):
        st.caption(
            "Median absolute percentage error (%, lower is better) on the same hours for the "
            "model, EIA's day-ahead forecast (DF) and seasonal naive (same hour a week earlier); "
            "green: the lowest of the three. Last 7 days: the 7 days up to each region's newest "
            f"scored hour (newest: {window['window_end'].max():%Y-%m-%d %H:%M} UTC). Data lag: "
            "hours between the data clock and the newest demand hour.")
    st.download_button("Download this table (CSV)", table.to_csv(index=False),
                       file_name="regions_overview.csv", mime="text/csv", on_click="ignore")


def small_multiples(recent: pd.DataFrame, codes: list[str]) -> None:
    st.subheader(f"Actual vs model forecast, last {queries.SPARK_DAYS} days")
    st.caption("Black: actual demand; blue: model forecast with its P10-P90 band (MWh per hour, "
               "each panel on its own scale). Open a region for its full page.")
    by_region = dict(tuple(recent.groupby("region")))
    for row_start in range(0, len(codes), SPARK_COLUMNS):
        cols = st.columns(SPARK_COLUMNS)
        for col, code in zip(cols, codes[row_start:row_start + SPARK_COLUMNS], strict=False):
            series = by_region.get(code)
            with col:
                st.page_link(ui.REGION_PATH, label=ui.region_label(code),
                             query_params={"region": code})
                svg = charts.sparkline_svg(series, label=code) if series is not None else ""
                if svg:
                    st.markdown(svg, unsafe_allow_html=True)
                else:
                    st.caption("no demand in the last days")


def main() -> None:
    if st.query_params.get("page") == "region":  # `?page=region&region=TEX` names the page too
        st.switch_page(ui.REGION_PATH, query_params={
            k: v for k, v in st.query_params.to_dict().items() if k != "page"})
    st.title("US hourly electricity demand: every region at a glance")
    try:
        overview = ui.load_overview()
        board = ui.load_scoreboard() if overview.regions else None
    except ServingUnavailableError as exc:
        st.warning(str(exc))
        ui.footer()
        return
    if board is None:
        st.warning(no_data_message())
        ui.footer()
        return
    st.caption(f"Data clock {current_time():%Y-%m-%d %H:%M} UTC · {len(overview.regions)} "
               f"regions · dead letters: {overview.dead_letters}")
    if overview.next_day_issued is not None:
        issued = f"{overview.next_day_issued:%Y-%m-%d %H:%M}"
        st.markdown(f"**Next 24 hours**: forecasts issued {issued} UTC for "
                    f"**{overview.next_day_regions} of {len(overview.regions)}** regions; a "
                    "region's page shows its forecast, peak hour and P10-P90.")
    if len(overview.skipped):
        why = "; ".join(f"**{r.region}** ({r.forecast}): {r.reason}"
                        for r in overview.skipped.itertuples())
        st.warning(f"No current forecast for {', '.join(overview.skipped['region'].unique())}: "
                   f"{why}")
    scoreboard_section(board.table)
    small_multiples(board.recent, overview.regions)
    ui.footer()


main()
