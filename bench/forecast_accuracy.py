"""Rolling-origin backtest of the 24-hour-ahead model against EIA's DF and seasonal-naive.

    .venv/bin/python bench/forecast_accuracy.py                  # the project's DuckDB features
    .venv/bin/python bench/forecast_accuracy.py --data-dir DIR   # another replay folder, alone
    ... --csv out.csv --weeks 8 --refit-weeks 1
    ... --end 2017-08-01 --end 2018-02-01 --end 2019-07-15 --end 2020-04-03   # several windows

Each --end (a UTC date or ISO time) scores the `--weeks` weeks before it, using only data before
it; several give one table per window and a summary across them, which is how a change should be
judged (one window, such as the default COVID-19 weeks of the bundled data, is easy to overfit).

With --horizons 1,3,6,12,24,36,48 (and --day-ahead) the multi-horizon model is
backtested instead: issued every hour of the window, each listed horizon scored ex-ante and
ex-post against DF, seasonal-naive and profile persistence (and with --day-ahead the issue made
at --day-ahead-hour local time on the day before, for the 24 hours of the local day); the CSV
then has one row per region x horizon x window (`modeling.horizon_backtest.CSV_COLUMNS`).

With --data-dir, the folder (same files as ELECTRICITY_DATA_DIR) is ingested and featurised in a
temporary ELECTRICITY_HOME (its own DuckDB and MLflow store), so the user's state is never read or
written. The table is printed and stored in `forecast_backtest` of the DuckDB used.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `bench.lib` importable


def utc_end(text: str) -> datetime:
    """`--end` value: a date or ISO time, UTC unless it carries an offset."""
    try:
        ts = pd.Timestamp(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: expected YYYY-MM-DD[THH:MM]") from exc
    return (ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")).to_pydatetime()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, help="replay folder to backtest on, alone")
    parser.add_argument("--csv", type=Path, help="also write one row per region to this CSV")
    parser.add_argument("--weeks", type=int, default=8, help="backtest window (default 8)")
    parser.add_argument("--refit-weeks", type=int, default=1,
                        help="refit the model every N weeks of the window (default 1)")
    parser.add_argument("--end", type=utc_end, action="append",
                        help="window end (exclusive, UTC); repeat for several windows "
                             "(default: after the last demand hour)")
    parser.add_argument("--workers", type=int, default=None,
                        help="regions backtested in parallel processes (default: the cores)")
    parser.add_argument("--compare-global", action="store_true",
                        help="also backtest one global model (region as a categorical feature)")
    parser.add_argument("--horizons", type=str, default=None,
                        help="backtest the multi-horizon model at these horizons, e.g. "
                             "1,3,6,12,24,36,48 (instead of the 24-hour model)")
    parser.add_argument("--day-ahead", action="store_true",
                        help="with --horizons: also score the day-ahead issue against DF")
    parser.add_argument("--day-ahead-hour", type=int, default=9,
                        help="local hour of the day-ahead issue on the day before (default 9)")
    return parser.parse_args(argv)


def horizon_main(args: argparse.Namespace, db_path: str, started: float) -> int:
    """--horizons: the multi-horizon backtest per window, printed and written to --csv."""
    from electricity_assets.modeling import horizon_backtest as hb

    horizons = hb.parse_horizons(args.horizons)
    ends = args.end or [None]
    summaries, failed_any = [], False
    for end in ends:
        window_started = time.perf_counter()
        with duckdb.connect(db_path, read_only=True) as conn:
            conn.execute("SET TimeZone = 'UTC'")
            if end is None:
                (last,) = conn.execute("SELECT max(period_utc) FROM raw_demand WHERE type = 'D'"
                                       ).fetchone()
                end = pd.Timestamp(last).tz_convert("UTC") + pd.Timedelta(hours=1)
            result = hb.run_horizon_backtest(
                conn, end, args.weeks, args.refit_weeks, horizons,
                args.day_ahead_hour if args.day_ahead else None,
                workers=args.workers or 1)
        seconds = time.perf_counter() - window_started
        summary = result.summary
        summaries.append(summary)
        failed_any |= not len(summary)
        print(f"\nwindow ending {pd.Timestamp(end):%Y-%m-%d %H:%M} UTC: {args.weeks} weeks, "
              f"refit every {args.refit_weeks} week(s), {seconds:.1f} s")
        print(hb.format_horizons(summary))
        for region, reason in result.failed.items():
            print(f"{region}: FAILED - {reason}")
    rows = pd.concat([s for s in summaries if len(s)], ignore_index=True) if any(
        len(s) for s in summaries) else pd.DataFrame(columns=hb.CSV_COLUMNS)
    if len(summaries) > 1 and len(rows):
        print("\nall windows (region means per horizon):")
        print(hb.format_horizons(rows))
    print(f"\ntotal {time.perf_counter() - started:.1f} s")
    if args.csv is not None:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        rows = rows[hb.CSV_COLUMNS]
        rows.round({c: 3 for c in rows.select_dtypes("number")}).to_csv(args.csv, index=False)
        print(f"wrote {args.csv}")
    return 1 if failed_any else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.data_dir is not None:
        if not args.data_dir.is_dir():
            print(f"--data-dir {args.data_dir}: no such folder", file=sys.stderr)
            return 2
        # Before importing the package: every path it derives then points at the temp home.
        home = Path(tempfile.mkdtemp(prefix="electricity-backtest-"))
        os.environ["ELECTRICITY_HOME"] = str(home)
        for name in ("DUCKDB_PATH", "MLFLOW_TRACKING_URI", "MLFLOW_ARTIFACT_ROOT"):
            os.environ.pop(name, None)
        os.environ["ELECTRICITY_DATA_DIR"] = str(args.data_dir.resolve())
        print(f"temporary workspace: {home}")

    from bench.lib.workspace import build_workspace
    from electricity_assets import settings
    from electricity_assets.features import model_frame, with_forecast_weather
    from electricity_assets.modeling import backtest

    db_path = settings.duckdb_path()
    started = time.perf_counter()
    if args.horizons:
        if args.data_dir is not None:
            with duckdb.connect(db_path) as conn:
                build_workspace(conn, args.data_dir.resolve())
        return horizon_main(args, db_path, started)
    # Connections stay short: the project's DuckDB admits one writer, Dagster may need it.
    with duckdb.connect(db_path) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        if args.data_dir is not None:
            start, end = build_workspace(conn, args.data_dir.resolve())
        else:
            start, end = datetime(2015, 1, 1, tzinfo=UTC), datetime.now(UTC)
        try:
            frame = with_forecast_weather(conn, model_frame(conn, start, end))
        except Exception as exc:  # missing tables in a fresh project DuckDB
            print(f"{db_path}: no features ({exc}); materialise demand_features first or pass "
                  "--data-dir", file=sys.stderr)
            return 1
    if frame.empty:
        print(f"{db_path}: demand_features is empty; materialise it first or pass --data-dir",
              file=sys.stderr)
        return 1
    prepared = time.perf_counter()
    ends = args.end or [None]
    results = []
    for end in ends:
        started_window = time.perf_counter()
        result = backtest.run_backtest(frame, weeks=args.weeks, refit_weeks=args.refit_weeks,
                                       end=end, workers=args.workers or backtest.available_cores())
        seconds = time.perf_counter() - started_window
        results.append(result)
        with duckdb.connect(db_path) as conn:
            conn.execute("SET TimeZone = 'UTC'")
            backtest.write_backtest(conn, result)
        window = backtest.window_label(result.summary)
        print(f"\nwindow {window}")
        print(backtest.format_table(result.summary, result.failed))
        print(f"backtest {result.run_id}: {args.weeks} weeks, refit every {args.refit_weeks} "
              f"week(s), training+backtest {seconds:.1f} s")
        if args.compare_global:
            from bench.lib.global_model import backtest_global

            shared = frame[~frame["region"].isin(list(result.failed))]
            started_global = time.perf_counter()
            global_result = backtest_global(shared, args.weeks, args.refit_weeks, end=end)
            print(f"\nglobal model ({time.perf_counter() - started_global:.1f} s), same window; "
                  "not stored:")
            print(backtest.format_table(global_result.summary))
    if len(results) > 1:
        print("\nacross windows (mean over regions of each window's median APE %):")
        print(backtest.format_windows([r.summary for r in results]))
    print(f"\ningest+features {prepared - started:.1f} s, training+backtest "
          f"{time.perf_counter() - prepared:.1f} s; stored in {db_path} table forecast_backtest")
    if args.csv is not None:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        rows = pd.concat([r.summary for r in results if len(r.summary)], ignore_index=True)
        rows = rows[backtest.CSV_COLUMNS]
        rows.round({c: 3 for c in rows.select_dtypes("number")}).to_csv(args.csv, index=False)
        print(f"wrote {args.csv}")
    return 0 if all(len(r.summary) for r in results) else 1

if __name__ == "__main__":
    sys.exit(main())
