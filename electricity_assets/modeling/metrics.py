"""Forecast error metrics, in the units the reports use (MWh, percent)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def error_metrics(actual: pd.Series | np.ndarray, predicted: pd.Series | np.ndarray
                  ) -> dict[str, float]:
    """MAE and RMSE in MWh, MAPE and median APE in percent, over hours where both exist."""
    y = np.asarray(actual, dtype=float)
    p = np.asarray(predicted, dtype=float)
    ok = np.isfinite(y) & np.isfinite(p) & (y > 0)
    if not ok.any():
        return {"mae": float("nan"), "rmse": float("nan"), "mape": float("nan"),
                "mdape": float("nan"), "hours": 0}
    err = p[ok] - y[ok]
    ape = np.abs(err) / y[ok] * 100.0
    return {
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mape": float(np.mean(ape)),
        "mdape": float(np.median(ape)),
        "hours": int(ok.sum()),
    }


def interval_coverage(actual: pd.Series | np.ndarray, low: pd.Series | np.ndarray,
                      high: pd.Series | np.ndarray) -> float:
    """Percent of hours whose actual value lies inside [low, high]."""
    y, lo, hi = (np.asarray(a, dtype=float) for a in (actual, low, high))
    ok = np.isfinite(y) & np.isfinite(lo) & np.isfinite(hi)
    if not ok.any():
        return float("nan")
    return float(np.mean((y[ok] >= lo[ok]) & (y[ok] <= hi[ok])) * 100.0)


def compare(frame: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Model, EIA DF and seasonal-naive errors on the same hours.

    `frame` holds `demand_mwh`, `forecast_mwh`, `df_mwh`, `naive_mwh` (and optionally `p10_mwh`,
    `p90_mwh`). The hours compared are those with a target, a model forecast and a naive value,
    and a DF value too unless the window has no DF at all (a source without operator forecasts).
    """
    mask = frame["demand_mwh"].notna() & frame["forecast_mwh"].notna() & frame["naive_mwh"].notna()
    if frame["df_mwh"].notna().any():
        mask &= frame["df_mwh"].notna()
    rows = frame.loc[mask]
    result = {
        "model": error_metrics(rows["demand_mwh"], rows["forecast_mwh"]),
        "df": error_metrics(rows["demand_mwh"], rows["df_mwh"]),
        "naive": error_metrics(rows["demand_mwh"], rows["naive_mwh"]),
    }
    if {"p10_mwh", "p90_mwh"} <= set(rows.columns):
        result["model"]["coverage_p10_p90"] = interval_coverage(
            rows["demand_mwh"], rows["p10_mwh"], rows["p90_mwh"])
    return result
