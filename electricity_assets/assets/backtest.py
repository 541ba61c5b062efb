"""forecast_backtest: a short rolling-origin backtest, so the dashboard has one from the first run.

The logic is `modeling.backtest` (the same functions `bench/forecast_accuracy.py` runs over 8
weeks); this asset runs it over the last few weeks of the features in DuckDB, refitting weekly,
and appends one row per region under a new run id to the `forecast_backtest` table.
"""

from datetime import UTC, timedelta

import dagster as dg
import pandas as pd
from pydantic import Field

from electricity_assets import quality, storage
from electricity_assets.assets.metadata import column_schema
from electricity_assets.features import model_frame, with_forecast_weather
from electricity_assets.history import HISTORY_START
from electricity_assets.resources import ElectricityDuckDB

OWNERS = ["team:forecasting"]


class ForecastBacktestConfig(dg.Config):
    weeks: int = Field(default=3, ge=1, le=52,
                       description="Weeks scored, ending at the newest demand hour.")
    refit_weeks: int = Field(default=1, ge=1, description="Refit the model every N weeks.")
    history_days: int = Field(
        default=400, ge=0,
        description="Feature days read before the window (0: all); the first-run seed builds "
                    "400 days of features.")
    workers: int = Field(
        default=0, ge=0,
        description="Processes backtesting regions in parallel (0: one per available core).")


@dg.asset(
    deps=["demand_features", "weather_features", "weather_station_offsets",
          "weather_normalisation"],  # the ex-ante weather of the frame (with_forecast_weather)
    group_name="modeling",
    kinds={"lightgbm", "duckdb"},
    owners=OWNERS,
    metadata=column_schema(storage.FORECAST_BACKTEST),
    description=(
        "Rolling-origin backtest over the last weeks of demand_features (default 3, weekly "
        "refits on everything before each origin): median APE, MAPE and MAE of the model, EIA's "
        "day-ahead forecast and seasonal naive on the same hours, and P10-P90 coverage, one row "
        "per region and run. The dashboard shows each region's newest run."
    ),
)
def forecast_backtest(context: dg.AssetExecutionContext, config: ForecastBacktestConfig,
                      duckdb: ElectricityDuckDB) -> dg.MaterializeResult:
    from electricity_assets.modeling import backtest  # LightGBM import is slow

    with duckdb.get_connection() as conn:  # released while training: others can write
        (latest,) = conn.execute("SELECT max(period_utc) FROM demand_features "
                                 "WHERE demand_mwh IS NOT NULL").fetchall()[0]
        if latest is None:
            raise dg.Failure("demand_features holds no demand: materialise raw_demand and "
                             "demand_features first")
        end = latest.astimezone(UTC) + timedelta(hours=1)
        start = (end - timedelta(days=config.history_days + 7 * config.weeks)
                 if config.history_days else
                 HISTORY_START)
        # Weather as a day-ahead forecast would have it: the scores are ex-ante.
        frame = with_forecast_weather(conn, model_frame(conn, start, end))
    result = backtest.run_backtest(frame, weeks=config.weeks, refit_weeks=config.refit_weeks,
                                   workers=config.workers or backtest.available_cores())
    for region, reason in result.failed.items():
        context.log.warning(f"{region}: no backtest - {reason}")
    if not len(result.summary):
        raise dg.Failure("no region could be backtested: " + "; ".join(result.failed.values()))
    with duckdb.get_connection() as conn:
        written = backtest.write_backtest(conn, result)
    summary = result.summary
    context.log.info(f"backtest {result.run_id}: {len(summary)} regions, "
                     f"{backtest.window_label(summary)}")
    return dg.MaterializeResult(metadata={
        "run_id": result.run_id,
        "rows": written,
        "window": backtest.window_label(summary),
        "regions_failed": dg.MetadataValue.md(
            "\n".join(f"- {k}: {v}" for k, v in result.failed.items()) or "none"),
        "mean_model_mdape": float(summary["model_mdape"].mean()),
        "mean_df_mdape": float(summary["df_mdape"].mean()),
        "mean_naive_mdape": float(summary["naive_mdape"].mean()),
        "model_below_df": int((summary["model_mdape"] < summary["df_mdape"]).sum()),
        "table": dg.MetadataValue.md(quality.markdown_table(_rounded(summary[backtest.CSV_COLUMNS]),
                                                           max_rows=100)),
    })


def _rounded(frame: pd.DataFrame) -> pd.DataFrame:
    # Round the scores only: rounding the window's timestamps is a no-op pandas warns about.
    return frame.round({column: 2 for column in frame.select_dtypes("number")})


backtest_assets = [forecast_backtest]
