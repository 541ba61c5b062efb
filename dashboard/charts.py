"""The dashboard's figures: Plotly for the region page, inline SVG for the overview's small
multiples (twelve Plotly charts cost the browser seconds; twelve SVG polylines cost nothing)."""

from __future__ import annotations

import html

import pandas as pd
import plotly.graph_objects as go

ACTUAL_COLOUR = "#222222"
MODEL_COLOUR = "#1f77b4"
BAND_COLOUR = "rgba(31,119,180,0.18)"
DF_COLOUR = "#ff7f0e"
# Above this many hours the demand chart shows DuckDB's daily means instead of every hour.
MAX_HOURLY_POINTS = 24 * 35


def _local(times: pd.Series, tz: str) -> pd.Series:
    return times.dt.tz_convert(tz).dt.tz_localize(None)


def demand_chart(series: pd.DataFrame, tz: str, title: str, daily: bool = False) -> go.Figure:
    """Actual, model forecast with its P10-P90 band, and EIA DF; no trace for a missing series.

    Every trace is lines only: Plotly's default adds markers below 20 points, which drew stray
    dots while only a few forecast hours existed."""
    x = _local(series["period_utc"], tz)
    fig = go.Figure()

    def line(column: str, name: str, **style) -> None:
        fig.add_trace(go.Scatter(x=x, y=series[column], mode="lines", name=name, **style))

    if series["forecast_mwh"].notna().any():
        line("p90_mwh", "P90", line={"width": 0}, hoverinfo="skip", showlegend=False)
        line("p10_mwh", "model P10-P90 (MWh)", fill="tonexty", line={"width": 0},
             fillcolor=BAND_COLOUR)
        line("forecast_mwh", "model forecast (MWh)", line={"color": MODEL_COLOUR, "width": 1.5})
    if series["eia_df_mwh"].notna().any():
        line("eia_df_mwh", "EIA day-ahead DF (MWh)",
             line={"color": DF_COLOUR, "dash": "dot", "width": 1.5})
    line("actual_mwh", "actual demand (MWh)", line={"color": ACTUAL_COLOUR, "width": 1.5})
    step = "daily mean, local date" if daily else "hour ending, local time"
    fig.update_layout(title=title, height=420, xaxis_title=f"{step} ({tz})",
                      yaxis_title="demand (MWh per hour)", hovermode="x unified",
                      legend={"orientation": "h", "y": -0.22}, margin={"t": 50, "b": 10})
    return fig


def weather_chart(frame: pd.DataFrame) -> go.Figure:
    fig = go.Figure(go.Scatter(
        x=frame["temperature_c"], y=frame["actual_mwh"], mode="markers",
        marker={"size": 4, "opacity": 0.6, "color": MODEL_COLOUR}, hoverinfo="x+y"))
    fig.update_layout(height=300, xaxis_title="temperature (°C)",
                      yaxis_title="demand (MWh per hour)", margin={"t": 20, "b": 10})
    return fig


def _points(values: pd.Series, x0: float, dx: float, lo: float, span: float,
            height: float) -> list[tuple[float, float] | None]:
    """Scaled (x, y) per value; None where the value is missing (the line breaks there)."""
    return [None if pd.isna(v) else (x0 + i * dx, height - (float(v) - lo) / span * height)
            for i, v in enumerate(values)]


def _polylines(points: list[tuple[float, float] | None], style: str) -> str:
    runs, run = [], []
    for p in [*points, None]:
        if p is None:
            if len(run) > 1:
                runs.append(run)
            run = []
        else:
            run.append(p)
    return "".join(f'<polyline fill="none" {style} points="'
                   + " ".join(f"{x:.1f},{y:.1f}" for x, y in r) + '"/>' for r in runs)


def sparkline_svg(series: pd.DataFrame, width: int = 300, height: int = 90,
                  label: str = "") -> str:
    """Actual (black), model forecast (blue) and its P10-P90 band as one small inline SVG."""
    values = pd.concat([series[c] for c in ("actual_mwh", "forecast_mwh", "p10_mwh", "p90_mwh")])
    values = values.dropna()
    if values.empty:
        return ""
    lo, hi = float(values.min()), float(values.max())
    span = (hi - lo) or 1.0
    dx = width / max(len(series) - 1, 1)
    band = ""
    ok = series["p10_mwh"].notna() & series["p90_mwh"].notna()
    if ok.any():
        upper = _points(series["p90_mwh"].where(ok), 0, dx, lo, span, height)
        lower = _points(series["p10_mwh"].where(ok), 0, dx, lo, span, height)
        pairs = [(u, v) for u, v in zip(upper, lower, strict=True) if u and v]
        ring = [u for u, _ in pairs] + [v for _, v in reversed(pairs)]
        band = (f'<polygon fill="{BAND_COLOUR}" stroke="none" points="'
                + " ".join(f"{x:.1f},{y:.1f}" for x, y in ring) + '"/>')
    forecast = _polylines(_points(series["forecast_mwh"], 0, dx, lo, span, height),
                          f'stroke="{MODEL_COLOUR}" stroke-width="1.4"')
    actual = _polylines(_points(series["actual_mwh"], 0, dx, lo, span, height),
                        f'stroke="{ACTUAL_COLOUR}" stroke-width="1.2"')
    title = f"<title>{html.escape(label)}</title>" if label else ""
    return (f'<svg role="img" viewBox="0 0 {width} {height}" width="100%" height="{height}" '
            f'preserveAspectRatio="none" xmlns="http://www.w3.org/2000/svg">{title}'
            f"{band}{forecast}{actual}</svg>")


SCORE_GROUPS = (("", "last 7 days"), ("bt_", "latest backtest"))
WINNER_STYLE = "background:#c8e6c9;font-weight:600"
MISSING = "–"


def _cell(value: float | None, pattern: str = "{:.2f}", style: str = "") -> str:
    text = MISSING if value is None or pd.isna(value) else pattern.format(value)
    return f'<td style="text-align:right;{style}">{text}</td>'


def scoreboard_html(table: pd.DataFrame, labels: dict[str, str]) -> str:
    """The overview table (`queries.overview_table`) as HTML: each region links to its page, the
    lowest median APE of each group is green and named in the "best" column."""
    who = (("model", "model"), ("df", "EIA DF"), ("naive", "seasonal naive"))
    head_top = ('<tr><th rowspan="2">region</th>'
                + "".join(f'<th colspan="5">{title}: median APE %</th>'
                          for _, title in SCORE_GROUPS)
                + '<th rowspan="2">data lag (h)</th><th rowspan="2">champion version</th></tr>')
    head_sub = "<tr>" + "".join(
        "".join(f"<th>{name}</th>" for _, name in who) + "<th>best</th><th>P10-P90 cover %</th>"
        for _ in SCORE_GROUPS) + "</tr>"
    rows = []
    for r in table.to_dict("records"):
        code = html.escape(str(r["region"]))
        cells = [f'<td><a href="region?region={code}" target="_self">'
                 f"{html.escape(labels.get(r['region'], code))}</a></td>"]
        for prefix, _ in SCORE_GROUPS:
            best = r.get(f"{prefix}winner")
            for key, name in who:
                cells.append(_cell(r.get(f"{prefix}{key}_mdape"),
                                   style=WINNER_STYLE if best == name else ""))
            cells.append(f"<td>{html.escape(best) if isinstance(best, str) else MISSING}</td>")
            cells.append(_cell(r.get(f"{prefix}coverage_p10_p90"), "{:.0f}"))
        cells.append(_cell(r.get("demand_lag_hours"), "{:.0f}"))
        version = r.get("champion_version")
        version = html.escape(version) if isinstance(version, str) else MISSING
        cells.append(f'<td style="text-align:right">{version}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return ('<table class="scoreboard" style="width:100%;font-size:0.9rem">'
            f"<thead>{head_top}{head_sub}</thead><tbody>{''.join(rows)}</tbody></table>")
