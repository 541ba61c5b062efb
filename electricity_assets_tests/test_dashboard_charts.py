"""The dashboard's SVG charts: gaps break lines, lone points draw nothing, tooltips carry values."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from dashboard import charts


def _series(hours: int = 48) -> pd.DataFrame:
    period = pd.date_range("2020-03-20T00:00Z", periods=hours, freq="h")
    actual = 20_000 + 5_000 * np.sin(np.arange(hours) / 24 * 2 * np.pi)
    return pd.DataFrame({"period_utc": period, "actual_mwh": actual, "eia_df_mwh": actual * 1.01,
                         "forecast_mwh": np.nan, "p10_mwh": np.nan, "p90_mwh": np.nan})


def _stroke_lines(svg: str, colour: str) -> list[str]:
    return re.findall(rf'<polyline fill="none" stroke="{colour}"[^>]*points="([^"]*)"', svg)


def test_a_gap_breaks_the_line_and_a_lone_forecast_hour_draws_no_marker() -> None:
    series = _series()
    series.loc[10:12, "actual_mwh"] = np.nan  # three missing hours
    series.loc[30, ["forecast_mwh", "p10_mwh", "p90_mwh"]] = [21_000, 20_000, 22_000]
    svg = charts.demand_chart_svg(series, "UTC", "Hourly demand, CAL")
    actual = _stroke_lines(svg, charts.ACTUAL_COLOUR)
    assert [len(p.split()) for p in actual] == [10, 35]
    assert _stroke_lines(svg, charts.MODEL_COLOUR) == []  # one hour: no line, no dot
    assert "<circle" not in svg
    # Each hour's tooltip lists its values in MWh, local time first.
    assert "<title>Fri 20 Mar 00:00\nactual: 20,000 MWh\nEIA DF: 20,200 MWh</title>" in svg
    assert "model: 21,000 MWh" in svg and "P90: 22,000 MWh" in svg


def test_sparkline_is_empty_without_values_and_scales_into_its_box() -> None:
    empty = _series().assign(actual_mwh=np.nan, eia_df_mwh=np.nan)
    assert charts.sparkline_svg(empty) == ""
    svg = charts.sparkline_svg(_series(), width=300, height=90)
    points = [tuple(map(float, p.split(","))) for p in
              _stroke_lines(svg, charts.ACTUAL_COLOUR)[0].split()]
    xs, ys = zip(*points, strict=True)
    assert min(xs) == 0 and max(xs) == 300 and min(ys) >= 0 and max(ys) <= 90
    assert min(ys) == 0 and max(ys) == 90  # the highest and lowest hour touch the edges


def test_nice_ticks_cover_the_range_in_round_steps() -> None:
    assert charts._nice_ticks(20_130, 34_870) == [22_500, 25_000, 27_500, 30_000, 32_500]
    assert charts._nice_ticks(-3.2, 17.9, 8) == [-2.5, 0, 2.5, 5, 7.5, 10, 12.5, 15, 17.5]
