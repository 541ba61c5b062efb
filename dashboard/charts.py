"""The dashboard's figures: Plotly for the region page, inline SVG for the overview's small
multiples (twelve Plotly charts cost the browser seconds; twelve SVG polylines cost nothing)."""

from __future__ import annotations

import html
import math

import pandas as pd
import plotly.graph_objects as go

ACTUAL_COLOUR = "#222222"
MODEL_COLOUR = "#1f77b4"
BAND_COLOUR = "rgba(31,119,180,0.18)"
DF_COLOUR = "#ff7f0e"


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
    return (f'<svg class="sparkline" role="img" viewBox="0 0 {width} {height}" width="100%" '
            f'height="{height}" preserveAspectRatio="none" xmlns="http://www.w3.org/2000/svg">'
            f"{title}"
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
        name = labels.get(r["region"], code).removeprefix(f"{r['region']} - ")
        cells = [f'<td style="white-space:nowrap"><a href="region?region={code}" target="_self">'
                 f'<b>{code}</b></a> <span style="color:#666;font-size:0.85em">'
                 f"{html.escape(name)}</span></td>"]
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
    return ('<table class="scoreboard" style="width:100%;font-size:0.85rem">'
            f"<thead>{head_top}{head_sub}</thead><tbody>{''.join(rows)}</tbody></table>")


# Full-size SVG charts for the region page: drawn by the browser with no chart library, so the
# page is complete as soon as Streamlit's elements are (Plotly costs 1.5-3 s of script per page
# load on this 2-core machine). The Plotly versions stay one toggle away for zoom and hover.
SVG_W, SVG_H = 1000, 360
PAD_L, PAD_R, PAD_T, PAD_B = 70, 12, 12, 44
AXIS_STYLE = 'stroke="#bbb" stroke-width="0.6"'
TEXT_STYLE = 'font-size="12" fill="#555" font-family="sans-serif"'


def _nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    span = (hi - lo) or abs(hi) or 1.0
    raw = span / count
    magnitude = 10 ** math.floor(math.log10(raw))
    # The round step whose tick count is nearest `count`.
    step = min((m * magnitude for m in (0.5, 1, 2, 2.5, 5, 10)),
               key=lambda s: abs(span / s - count))
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step) + 1)]


def _frame(x_lo: float, x_hi: float, y_lo: float, y_hi: float, x_ticks: list[tuple[float, str]],
           x_title: str, y_title: str, y_format: str = "{:,.0f}"):
    """Axes, grid and titles; returns the SVG parts and the data -> pixel functions."""
    plot_w, plot_h = SVG_W - PAD_L - PAD_R, SVG_H - PAD_T - PAD_B
    x_span, y_span = (x_hi - x_lo) or 1.0, (y_hi - y_lo) or 1.0

    def px(x: float) -> float:
        return PAD_L + (x - x_lo) / x_span * plot_w

    def py(y: float) -> float:
        return PAD_T + plot_h - (y - y_lo) / y_span * plot_h

    parts = []
    for tick in _nice_ticks(y_lo, y_hi):
        parts.append(f'<line x1="{PAD_L}" x2="{SVG_W - PAD_R}" y1="{py(tick):.1f}" '
                     f'y2="{py(tick):.1f}" {AXIS_STYLE}/>'
                     f'<text x="{PAD_L - 6}" y="{py(tick) + 4:.1f}" text-anchor="end" '
                     f"{TEXT_STYLE}>{y_format.format(tick)}</text>")
    for x, label in x_ticks:
        parts.append(f'<line x1="{px(x):.1f}" x2="{px(x):.1f}" y1="{PAD_T}" '
                     f'y2="{PAD_T + plot_h}" {AXIS_STYLE}/>'
                     f'<text x="{px(x):.1f}" y="{PAD_T + plot_h + 16}" text-anchor="middle" '
                     f"{TEXT_STYLE}>{html.escape(label)}</text>")
    parts.append(f'<text x="{PAD_L + plot_w / 2}" y="{SVG_H - 6}" text-anchor="middle" '
                 f"{TEXT_STYLE}>{html.escape(x_title)}</text>"
                 f'<text x="14" y="{PAD_T + plot_h / 2}" text-anchor="middle" '
                 f'transform="rotate(-90 14 {PAD_T + plot_h / 2})" {TEXT_STYLE}>'
                 f"{html.escape(y_title)}</text>")
    return parts, px, py


def _svg(parts: list[str], label: str) -> str:
    return (f'<svg class="chart" role="img" viewBox="0 0 {SVG_W} {SVG_H}" width="100%" '
            f'xmlns="http://www.w3.org/2000/svg"><title>{html.escape(label)}</title>'
            + "".join(parts) + "</svg>")


def _legend(items: list[tuple[str, str, str]]) -> str:
    """(name, colour, dash attribute) per series; the band as a thick swatch."""
    spans = []
    for name, colour, dash in items:
        width = 6 if "P10" in name else 2
        spans.append(f'<span style="margin-right:1.2em;white-space:nowrap">'
                     f'<svg width="22" height="10"><line x1="0" x2="22" y1="5" y2="5" '
                     f'stroke="{colour}" stroke-width="{width}" {dash}/></svg> '
                     f"{html.escape(name)}</span>")
    return f'<div style="font-size:0.85rem;color:#444">{"".join(spans)}</div>'


def demand_chart_svg(series: pd.DataFrame, tz: str, title: str, daily: bool = False) -> str:
    """The demand chart as inline SVG: actual, model forecast with P10-P90, EIA DF; each hour's
    values are in a hover tooltip (the SVG <title> of its column)."""
    local = _local(series["period_utc"], tz)
    x = (local - local.iloc[0]).dt.total_seconds().to_numpy() / 3600
    columns = ["actual_mwh", "eia_df_mwh", "forecast_mwh", "p10_mwh", "p90_mwh"]
    values = pd.concat([series[c] for c in columns]).dropna()
    if values.empty or len(series) < 2:
        return ""
    y_lo, y_hi = float(values.min()), float(values.max())
    pad = (y_hi - y_lo) * 0.05 or 1.0
    days = pd.date_range(local.iloc[0].normalize(), local.iloc[-1], freq="D")
    every = max(1, math.ceil(len(days) / 12))
    ticks = [((d - local.iloc[0]).total_seconds() / 3600, f"{d:%b %d}") for d in days[::every]
             if d >= local.iloc[0]]
    step = "daily mean, local date" if daily else "hour ending, local time"
    parts, px, py = _frame(0, float(x[-1]), y_lo - pad, y_hi + pad, ticks, f"{step} ({tz})",
                           "demand (MWh per hour)")

    def scaled(column: str) -> list[tuple[float, float] | None]:
        return [None if pd.isna(v) else (px(float(xi)), py(float(v)))
                for xi, v in zip(x, series[column], strict=True)]

    legend = []
    ok = series["p10_mwh"].notna() & series["p90_mwh"].notna()
    if ok.any():
        upper = [p for p, good in zip(scaled("p90_mwh"), ok, strict=True) if good]
        lower = [p for p, good in zip(scaled("p10_mwh"), ok, strict=True) if good]
        ring = upper + lower[::-1]
        parts.append(f'<polygon fill="{BAND_COLOUR}" stroke="none" points="'
                     + " ".join(f"{a:.1f},{b:.1f}" for a, b in ring) + '"/>')
        legend.append(("model P10-P90 (MWh)", BAND_COLOUR, ""))
    for column, name, colour, dash in (
            ("forecast_mwh", "model forecast (MWh)", MODEL_COLOUR, ""),
            ("eia_df_mwh", "EIA day-ahead DF (MWh)", DF_COLOUR, 'stroke-dasharray="3 3"'),
            ("actual_mwh", "actual demand (MWh)", ACTUAL_COLOUR, "")):
        if series[column].notna().any():
            parts.append(_polylines(scaled(column), f'stroke="{colour}" stroke-width="1.6" '
                                                    f"{dash}"))
            legend.append((name, colour, dash))
    # Hover: one transparent column per point, its tooltip listing the values.
    width = max(px(float(x[1])) - px(float(x[0])), 1.0)
    fmt_time = "%a %d %b" if daily else "%a %d %b %H:%M"
    for xi, when, row in zip(x, local, series[columns].itertuples(index=False), strict=True):
        tip = [f"{when:{fmt_time}}"] + [
            f"{name}: {v:,.0f} MWh" for name, v in (
                ("actual", row.actual_mwh), ("model", row.forecast_mwh),
                ("P10", row.p10_mwh), ("P90", row.p90_mwh), ("EIA DF", row.eia_df_mwh))
            if pd.notna(v)]
        parts.append(f'<rect x="{px(float(xi)) - width / 2:.1f}" y="{PAD_T}" width="{width:.1f}" '
                     f'height="{SVG_H - PAD_T - PAD_B}" fill="transparent">'
                     f"<title>{html.escape(chr(10).join(tip))}</title></rect>")
    return (f'<div style="font-weight:600;margin-bottom:0.2em">{html.escape(title)}</div>'
            + _legend(legend) + _svg(parts, title))


def weather_chart_svg(frame: pd.DataFrame, max_points: int = 2000) -> str:
    """Temperature vs demand as an inline SVG scatter (every nth hour above `max_points`; no
    per-dot tooltip: the Plotly version has them)."""
    if frame.empty:
        return ""
    frame = frame.iloc[::max(1, math.ceil(len(frame) / max_points))]
    t, d = frame["temperature_c"].astype(float), frame["actual_mwh"].astype(float)
    t_pad, d_pad = (t.max() - t.min()) * 0.04 or 1.0, (d.max() - d.min()) * 0.05 or 1.0
    t_lo, t_hi = float(t.min() - t_pad), float(t.max() + t_pad)
    ticks = [(v, f"{v:g}") for v in _nice_ticks(t_lo, t_hi, 8) if t_lo <= v <= t_hi]
    parts, px, py = _frame(t_lo, t_hi, float(d.min() - d_pad), float(d.max() + d_pad), ticks,
                           "temperature (°C)", "demand (MWh per hour)")
    # Every dot in one path (a zero-length stroke with a round cap is a dot): a few bytes per
    # hour instead of an element each, which the browser parses faster.
    dots = "".join(f"M{px(a):.1f} {py(b):.1f}h0" for a, b in zip(t, d, strict=True))
    parts.append(f'<path class="dots" d="{dots}" stroke="{MODEL_COLOUR}" stroke-opacity="0.55" '
                 'stroke-width="5" stroke-linecap="round" fill="none"/>')
    return _svg(parts, "Temperature vs demand")
