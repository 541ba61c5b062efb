"""Rolling-origin backtest of the multi-horizon model by horizon, and of the day-ahead issue.

Over the `weeks` weeks before `end`, the model of each region is refitted every `refit_weeks`
weeks on issue rows whose forecast hours lie before the origin, then issues every hour until the
next origin. Each listed horizon is scored ex-ante (weather forecast = observation + simulated
lead-time error) and ex-post (observed weather), against EIA's DF, seasonal-naive and profile
persistence, all on the same hours. The day-ahead issue (`issue_local_hour` local time on the
day before, `horizons.day_ahead_slice`) is scored for the 24 hours of each local day whose issue
falls in the window.
"""

from __future__ import annotations

import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import duckdb
import pandas as pd

from electricity_assets.features.issue import issue_frame
from electricity_assets.modeling.backtest import fold_windows
from electricity_assets.modeling.horizon_model import (
    HorizonConfig,
    day_ahead_slice,
    predict_horizons,
    train_horizon_model,
)
from electricity_assets.modeling.horizon_registry import horizon_training_frame
from electricity_assets.modeling.metrics import error_metrics, interval_coverage
from electricity_assets.modeling.training import InsufficientDataError

logger = logging.getLogger(__name__)

DAY_AHEAD = "day-ahead"
CSV_COLUMNS = ["region", "horizon_h", "hours", "model_mdape", "model_mdape_expost", "df_mdape",
               "naive_mdape", "persistence_mdape", "coverage_p10_p90", "window_start",
               "window_end"]
KEEP = ["region", "issue_utc", "horizon_h", "period_utc", "demand_mwh", "df_mwh", "naive_mwh",
        "persistence_mwh"]


@dataclass
class HorizonBacktest:
    summary: pd.DataFrame  # CSV_COLUMNS, one row per region x horizon (and day-ahead)
    hourly: pd.DataFrame   # every scored row
    failed: dict[str, str] = field(default_factory=dict)


def _day_ahead_rows(frame: pd.DataFrame, region: str, issue_local_hour: int) -> pd.DataFrame:
    """The rows of `frame` (one region, hourly issues) that make up its day-ahead issues."""
    parts = []
    first = frame["issue_utc"].min().date() - timedelta(days=1)
    last = frame["issue_utc"].max().date() + timedelta(days=3)
    issues = set(frame["issue_utc"])
    for day in pd.date_range(first, last, freq="D").date:
        issue, hours = day_ahead_slice(region, day, issue_local_hour)
        if issue not in issues:
            continue
        rows = frame[(frame["issue_utc"] == issue) & frame["period_utc"].isin(hours)]
        parts.append(rows.assign(local_day=day))
    return pd.concat(parts) if parts else frame.iloc[:0].assign(local_day=date.min)


def backtest_region(train_rows: pd.DataFrame, folds: list[tuple[datetime, pd.DataFrame,
                                                                 pd.DataFrame]],
                    horizons: list[int], day_ahead_hour: int | None,
                    config: HorizonConfig | None = None) -> pd.DataFrame:
    """One region: per fold (origin, ex-ante rows, ex-post rows of its issues), train on rows
    forecasting hours before the origin and predict the fold's rows; scored rows come back with
    `horizon` = the horizon as text, or `day-ahead`."""
    region = str(train_rows["region"].iloc[0])
    parts = []
    for origin, exante, expost in folds:
        model = train_horizon_model(train_rows[train_rows["period_utc"] < origin], config)
        forecast = predict_horizons(model, exante)
        forecast["forecast_expost_mwh"] = predict_horizons(model, expost)["forecast_mwh"].to_numpy()
        scored = pd.concat([exante[KEEP], forecast], axis=1)
        selected = [scored[scored["horizon_h"].isin(horizons)].assign(
            horizon=lambda f: f["horizon_h"].astype(str))]
        if day_ahead_hour is not None:
            selected.append(_day_ahead_rows(scored, region, day_ahead_hour)
                            .drop(columns="local_day").assign(horizon=DAY_AHEAD))
        parts.append(pd.concat(selected).assign(origin=origin))
    return pd.concat(parts, ignore_index=True)


def summarise(hourly: pd.DataFrame) -> pd.DataFrame:
    """Per region and horizon, on the same hours for every column: hours with a target, both
    model forecasts, seasonal-naive, persistence, and DF unless the region has none."""
    records = []
    for (region, horizon), rows in hourly.groupby(["region", "horizon"], sort=False):
        mask = rows[["demand_mwh", "forecast_mwh", "forecast_expost_mwh", "naive_mwh",
                     "persistence_mwh"]].notna().all(axis=1)
        if rows["df_mwh"].notna().any():
            mask &= rows["df_mwh"].notna()
        r = rows[mask]
        y = r["demand_mwh"]
        records.append({
            "region": region, "horizon_h": horizon, "hours": int(len(r)),
            "model_mdape": error_metrics(y, r["forecast_mwh"])["mdape"],
            "model_mdape_expost": error_metrics(y, r["forecast_expost_mwh"])["mdape"],
            "df_mdape": error_metrics(y, r["df_mwh"])["mdape"],
            "naive_mdape": error_metrics(y, r["naive_mwh"])["mdape"],
            "persistence_mdape": error_metrics(y, r["persistence_mwh"])["mdape"],
            "coverage_p10_p90": interval_coverage(y, r["p10_mwh"], r["p90_mwh"]),
            "window_start": rows["period_utc"].min(),
            "window_end": rows["period_utc"].max() + timedelta(hours=1),
        })
    summary = pd.DataFrame.from_records(records, columns=CSV_COLUMNS)
    order = {h: i for i, h in enumerate(sorted(
        summary["horizon_h"].unique(), key=lambda h: (h == DAY_AHEAD, int(h) if h.isdigit()
                                                      else 0)))}
    return summary.sort_values(["region", "horizon_h"], key=lambda s: s.map(order)
                               if s.name == "horizon_h" else s, ignore_index=True)


def _region_or_reason(*args) -> pd.DataFrame | str:
    try:
        return backtest_region(*args)
    except InsufficientDataError as exc:
        return str(exc)


def run_horizon_backtest(conn: duckdb.DuckDBPyConnection, end: datetime, weeks: int,
                         refit_weeks: int, horizons: list[int], day_ahead_hour: int | None,
                         config: HorizonConfig | None = None, workers: int = 1,
                         regions: list[str] | None = None) -> HorizonBacktest:
    """Backtest every region over the `weeks` weeks before `end` with data before `end` only.
    Frames are built here (DuckDB, once per fold for all regions); regions train in `workers`
    spawned processes."""
    config = config or HorizonConfig()
    end_ts = pd.Timestamp(end).tz_convert("UTC").floor("h")
    start = end_ts - timedelta(weeks=weeks)
    train = horizon_training_frame(conn, end_ts, config, regions)  # cut per fold below
    by_region: dict[str, list] = {}
    for origin, until in fold_windows(start, end_ts, weeks, refit_weeks):
        issues = pd.date_range(origin, until - timedelta(hours=1), freq="h")
        exante = issue_frame(conn, issues, regions, exante=True)
        expost = issue_frame(conn, issues, regions, exante=False)
        keep = (exante["period_utc"] < end_ts).to_numpy()  # nothing scored from `end` on
        exante, expost = exante[keep], expost[keep]
        keys = ["region", "issue_utc", "horizon_h"]
        if not exante[keys].reset_index(drop=True).equals(expost[keys].reset_index(drop=True)):
            raise RuntimeError("ex-ante and ex-post issue frames differ in their rows")
        for region, rows in exante.groupby("region", sort=True):
            by_region.setdefault(str(region), []).append(
                (origin.to_pydatetime(), rows, expost.loc[rows.index]))
    # Training rows must forecast hours before the window: the folds' origins cut them further.
    jobs = [(str(r), rows) for r, rows in train.groupby("region", sort=True)
            if str(r) in by_region]
    args = [(rows, by_region[r], horizons, day_ahead_hour, config) for r, rows in jobs]
    if workers > 1 and len(args) > 1:
        with ProcessPoolExecutor(min(workers, len(args)),
                                 mp_context=multiprocessing.get_context("spawn")) as pool:
            outcomes = list(pool.map(_region_or_reason, *zip(*args, strict=True)))
    else:
        outcomes = [_region_or_reason(*a) for a in args]
    parts, failed = [], {}
    for (region, _), outcome in zip(jobs, outcomes, strict=True):
        if isinstance(outcome, str):
            failed[region] = outcome
        else:
            parts.append(outcome)
    hourly = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    summary = summarise(hourly) if len(hourly) else pd.DataFrame(columns=CSV_COLUMNS)
    return HorizonBacktest(summary, hourly, failed)


def format_horizons(summary: pd.DataFrame) -> str:
    """Region means per horizon: model ex-ante / ex-post, DF, naive, persistence, coverage."""
    columns = ["model_mdape", "model_mdape_expost", "df_mdape", "naive_mdape",
               "persistence_mdape", "coverage_p10_p90"]
    header = (f"{'horizon':<10}{'model':>7}{'ex-post':>8}{'DF':>7}{'naive':>7}{'persist':>8}"
              f"{'cover':>7}   below DF / persistence / naive")
    lines = [header, "-" * len(header)]
    for horizon, rows in summary.groupby("horizon_h", sort=False):
        mean = rows[columns].mean()
        n = len(rows)
        wins = [int((rows["model_mdape"] < rows[c]).sum())
                for c in ("df_mdape", "persistence_mdape", "naive_mdape")]
        lines.append(f"{horizon:<10}{mean['model_mdape']:>7.2f}{mean['model_mdape_expost']:>8.2f}"
                     f"{mean['df_mdape']:>7.2f}{mean['naive_mdape']:>7.2f}"
                     f"{mean['persistence_mdape']:>8.2f}{mean['coverage_p10_p90']:>7.1f}   "
                     + " / ".join(f"{w}/{n}" for w in wins))
    return "\n".join(lines)


def parse_horizons(text: str) -> list[int]:
    values = sorted({int(v) for v in text.split(",") if v.strip()})
    if not values or values[0] < 1 or values[-1] > 48:
        raise ValueError(f"--horizons {text!r}: whole hours between 1 and 48, comma-separated")
    return values

