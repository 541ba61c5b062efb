"""Rolling-origin backtest: refit every few weeks, forecast each hour 24 h ahead, compare.

Over the last `weeks` weeks of each region's data, the model is refitted at each origin on
everything before it (its own validation split included) and forecasts the hours up to the next
origin. Every forecast for hour t still uses demand up to t-24h only (that is what the features
contain), so refitting weekly instead of daily only makes the model a few days staler than in
production. Compared on the same hours: the model, EIA's day-ahead forecast (DF) and the
seasonal-naive forecast (the same hour a week earlier).

Ex-ante and ex-post: where the frame carries weather as known at issue time
(`features.with_forecast_weather`: observations up to t - 24 h, simulated day-ahead forecast
error after), `forecast_mwh` (and `model_mdape`, the headline) uses it; `forecast_expost_mwh`
(`model_mdape_expost`) uses the observed weather, an optimistic bound no real forecast reaches.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import uuid
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import duckdb
import pandas as pd

from electricity_assets import storage
from electricity_assets.features.frame import forecast_inputs
from electricity_assets.features.weather import refit_z_scores
from electricity_assets.modeling.metrics import compare
from electricity_assets.modeling.training import (
    InsufficientDataError,
    TrainingConfig,
    evaluation_frame,
    predict_frame,
    train_region,
)

logger = logging.getLogger(__name__)

TABLE = "forecast_backtest"
CSV_COLUMNS = ["region", "hours", "model_mdape", "model_mape", "model_mae", "df_mdape",
               "df_mape", "naive_mdape", "coverage_p10_p90", "window_start", "window_end",
               "model_mdape_expost"]


@dataclass
class BacktestResult:
    summary: pd.DataFrame                 # one row per region (the `forecast_backtest` columns)
    hourly: pd.DataFrame                  # every forecast hour: target, model, DF, naive, P10/P90
    failed: dict[str, str] = field(default_factory=dict)  # region -> reason
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])


def fold_windows(start: datetime, end: datetime, weeks: int, refit_weeks: int
                 ) -> Iterator[tuple[datetime, datetime]]:
    """The rolling origins of both backtests: (origin, until) every `refit_weeks` weeks of the
    `weeks` weeks from `start`; a refit at `origin` forecasts [origin, until), cut at `end`."""
    for k in range(0, weeks, refit_weeks):
        origin = start + timedelta(weeks=k)
        yield origin, min(origin + timedelta(weeks=refit_weeks), end)


def folds(frame: pd.DataFrame, weeks: int, refit_weeks: int, end: datetime | None = None
          ) -> Iterator[tuple[datetime, pd.DataFrame, pd.DataFrame]]:
    """Rolling origins over the `weeks` weeks that end at `end` (default: after the last demand
    hour; at most there): (origin, rows before it, rows to forecast). Rows from `end` on are
    never used, so a past window is scored exactly as if the data stopped there; weather
    z-scores are fitted on the rows before the window's first origin."""
    if end is not None:
        frame = frame[frame["period_utc"] < pd.Timestamp(end)]
    last = frame.loc[frame["demand_mwh"].notna(), "period_utc"].max()
    if pd.isna(last):
        raise InsufficientDataError(
            "no demand in the data" + (f" before {end:%Y-%m-%d %H:%M}" if end else ""))
    test_end = last + timedelta(hours=1)
    test_start = test_end - timedelta(weeks=weeks)
    # The stored weather statistics may cover scored hours (their cut-off is fixed, the window
    # is not): refit them on the hours before the window, fixed across it as in production.
    frame = refit_z_scores(frame, test_start)
    for origin, until in fold_windows(test_start, test_end, weeks, refit_weeks):
        yield (origin, frame[frame["period_utc"] < origin],
               frame[(frame["period_utc"] >= origin) & (frame["period_utc"] < until)])


def backtest_region(frame: pd.DataFrame, weeks: int = 8, refit_weeks: int = 1,
                    config: TrainingConfig | None = None, end: datetime | None = None
                    ) -> pd.DataFrame:
    """Hourly 24-hour-ahead forecasts of one region over the `weeks` weeks of data before `end`
    (default: its last `weeks` weeks)."""
    parts = []
    for origin, history, rows in folds(frame, weeks, refit_weeks, end):
        if history.empty:  # data starts inside the window: a skipped region, not a crash
            raise InsufficientDataError(f"no data before the origin {origin:%Y-%m-%d %H:%M}")
        model = train_region(history, config)
        fitted = (model.booster, model.feature_columns, model.residual_low, model.residual_high)
        exante = predict_frame(*fitted, forecast_inputs(rows), model.spread_typical)
        expost = predict_frame(*fitted, rows, model.spread_typical)
        parts.append(evaluation_frame(rows, exante).assign(
            origin=origin, forecast_expost_mwh=expost["forecast_mwh"]))
    return pd.concat(parts, ignore_index=True)


def summarise(hourly: pd.DataFrame) -> pd.DataFrame:
    """Per-region metrics on the same hours for model, DF and naive (percentages as 1.8)."""
    records = []
    for region, rows in hourly.groupby("region", sort=True):
        m = compare(rows)
        expost = (compare(rows.assign(forecast_mwh=rows["forecast_expost_mwh"]))["model"]["mdape"]
                  if "forecast_expost_mwh" in rows else m["model"]["mdape"])
        records.append({
            "region": region, "hours": m["model"]["hours"],
            **{f"{who}_{metric}": m[who][metric] for who in ("model", "df", "naive")
               for metric in ("mdape", "mape", "mae")},
            "coverage_p10_p90": m["model"].get("coverage_p10_p90", float("nan")),
            "window_start": rows["period_utc"].min(),
            "window_end": rows["period_utc"].max() + timedelta(hours=1),
            "model_mdape_expost": expost,
        })
    return pd.DataFrame.from_records(records)


def _region_or_reason(rows: pd.DataFrame, weeks: int, refit_weeks: int,
                      config: TrainingConfig | None, end: datetime | None
                      ) -> pd.DataFrame | str:
    try:
        return backtest_region(rows, weeks, refit_weeks, config, end)
    except InsufficientDataError as exc:
        return str(exc)


def available_cores() -> int:
    """CPU cores this process may use (the affinity mask, not the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run_backtest(frame: pd.DataFrame, weeks: int = 8, refit_weeks: int = 1,
                 config: TrainingConfig | None = None, end: datetime | None = None,
                 workers: int = 1) -> BacktestResult:
    """Backtest every region in `frame` (a `model_frame`) over the `weeks` weeks before `end`
    (default: each region's last `weeks` weeks); a region that fails is reported.

    `workers` > 1 backtests regions in that many processes (each LightGBM fit is one thread:
    regions in parallel scale better than threads within a fit). Spawned, not forked: a fork
    of a process whose OpenMP pool already ran can hang."""
    if weeks < 1 or refit_weeks < 1:
        raise ValueError(f"weeks={weeks}, refit_weeks={refit_weeks}: both must be >= 1")
    groups = [(str(region), rows) for region, rows in frame.groupby("region", sort=True)]
    if workers > 1 and len(groups) > 1:
        with ProcessPoolExecutor(min(workers, len(groups)),
                                 mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(_region_or_reason, rows, weeks, refit_weeks, config, end)
                       for _, rows in groups]
            outcomes = [f.result() for f in futures]
    else:
        outcomes = [_region_or_reason(rows, weeks, refit_weeks, config, end)
                    for _, rows in groups]
    parts, failed = [], {}
    for (region, _), outcome in zip(groups, outcomes, strict=True):
        if isinstance(outcome, str):
            failed[region] = outcome
            logger.warning("backtest skipped %s: %s", region, outcome)
        else:
            parts.append(outcome)
    hourly = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    summary = summarise(hourly) if len(hourly) else pd.DataFrame(columns=CSV_COLUMNS)
    return BacktestResult(summary=summary, hourly=hourly, failed=failed)


def write_backtest(conn: duckdb.DuckDBPyConnection, result: BacktestResult) -> int:
    """Store the summary in `forecast_backtest` under the result's run_id (idempotent)."""
    table = result.summary.assign(run_id=result.run_id,
                                  created_at=pd.Timestamp(datetime.now(UTC)))
    return storage.upsert(conn, TABLE, table)


def format_table(summary: pd.DataFrame, failed: dict[str, str] | None = None) -> str:
    """The console table: one line per region, then the averages and any failed region."""
    header = (f"{'region':<8}{'hours':>6}  {'model':>6} {'ex-post':>7} {'DF':>6} {'naive':>6}"
              f"   MdAPE %  |  {'model':>6} {'DF':>6} {'naive':>6}   MAPE %  | cover P10-P90 %")
    lines = [header, "-" * len(header)]
    for r in summary.itertuples():
        lines.append(
            f"{r.region:<8}{r.hours:>6}  {r.model_mdape:>6.2f} {r.model_mdape_expost:>7.2f} "
            f"{r.df_mdape:>6.2f} {r.naive_mdape:>6.2f}           |  {r.model_mape:>6.2f} "
            f"{r.df_mape:>6.2f} {r.naive_mape:>6.2f}          | {r.coverage_p10_p90:>6.1f}")
    if len(summary):
        wins_df = int((summary["model_mdape"] < summary["df_mdape"]).sum())
        wins_naive = int((summary["model_mdape"] < summary["naive_mdape"]).sum())
        lines.append("-" * len(header))
        lines.append(
            f"{'mean':<8}{int(summary['hours'].sum()):>6}  {summary['model_mdape'].mean():>6.2f} "
            f"{summary['model_mdape_expost'].mean():>7.2f} {summary['df_mdape'].mean():>6.2f} "
            f"{summary['naive_mdape'].mean():>6.2f}")
        lines.append(f"model median APE below DF in {wins_df}/{len(summary)} regions, below "
                     f"seasonal-naive in {wins_naive}/{len(summary)}")
    for region, reason in (failed or {}).items():
        lines.append(f"{region}: FAILED - {reason}")
    return "\n".join(lines)


def window_label(summary: pd.DataFrame) -> str:
    """'[2020-02-06, 2020-04-02)': the UTC dates of a summary's scored hours, end exclusive."""
    if not len(summary):
        return "(no hours)"
    first = pd.Timestamp(summary["window_start"].min())
    end = pd.Timestamp(summary["window_end"].max())
    end_text = f"{end:%Y-%m-%d}" if end == end.floor("D") else f"{end:%Y-%m-%d %H:%M}"
    return f"[{first:%Y-%m-%d}, {end_text})"


def format_windows(summaries: list[pd.DataFrame]) -> str:
    """One line per backtest window (region-mean MdAPE of model, DF, naive; wins), then the mean."""
    header = (f"{'window':<26}{'model':>7}{'ex-post':>8}{'DF':>7}{'naive':>7}{'cover':>7}"
              "   model below DF / naive")
    lines = [header, "-" * len(header)]
    means = []
    columns = ["model_mdape", "model_mdape_expost", "df_mdape", "naive_mdape",
               "coverage_p10_p90"]
    for summary in summaries:
        if not len(summary):
            continue
        mean = summary[columns].mean()
        means.append(mean)
        n = len(summary)
        wins_df = int((summary["model_mdape"] < summary["df_mdape"]).sum())
        wins_naive = int((summary["model_mdape"] < summary["naive_mdape"]).sum())
        lines.append(f"{window_label(summary):<26}{mean['model_mdape']:>7.2f}"
                     f"{mean['model_mdape_expost']:>8.2f}{mean['df_mdape']:>7.2f}"
                     f"{mean['naive_mdape']:>7.2f}{mean['coverage_p10_p90']:>7.1f}   "
                     f"{wins_df}/{n} / {wins_naive}/{n}")
    if means:
        overall = pd.concat(means, axis=1).mean(axis=1)
        lines.append("-" * len(header))
        lines.append(f"{'mean of windows':<26}{overall['model_mdape']:>7.3f}"
                     f"{overall['model_mdape_expost']:>8.3f}{overall['df_mdape']:>7.3f}"
                     f"{overall['naive_mdape']:>7.3f}{overall['coverage_p10_p90']:>7.1f}")
    return "\n".join(lines)
