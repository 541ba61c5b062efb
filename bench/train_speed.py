"""Time a full retrain (every region: LightGBM + MLflow run + registry aliases) on a replay folder.

    .venv/bin/python bench/train_speed.py [--data-dir DIR] [--rounds 2] [--horizons]

Runs in a temporary ELECTRICITY_HOME (own DuckDB and MLflow store); the second round re-scores
each champion on the new validation hours, as a scheduled retrain does. Target: < 120 s for the
24-hour models; with `--horizons`, the multi-horizon models (issue frame + fit + registry, the
family that issues the forecasts): < 5 min.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `bench.lib` importable


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, help="replay folder (default: the bundled data)")
    parser.add_argument("--rounds", type=int, default=2, help="retrains in a row (default 2)")
    parser.add_argument("--horizons", action="store_true",
                        help="time the multi-horizon models instead of the 24-hour ones")
    args = parser.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="electricity-train-speed-"))
    os.environ["ELECTRICITY_HOME"] = str(home)
    for name in ("DUCKDB_PATH", "MLFLOW_TRACKING_URI", "MLFLOW_ARTIFACT_ROOT"):
        os.environ.pop(name, None)

    import duckdb

    from bench.lib.workspace import build_workspace
    from electricity_assets import settings
    from electricity_assets.features import model_frame, with_forecast_weather
    from electricity_assets.modeling.registry import MlflowConfig
    from electricity_assets.modeling.retrain import retrain_all

    data_dir = (args.data_dir or settings.PACKAGE_DATA_DIR).resolve()
    if args.horizons:
        return _horizons(data_dir, args.rounds)
    started = time.perf_counter()
    with duckdb.connect(settings.duckdb_path()) as conn:
        start, end = build_workspace(conn, data_dir)
        frame = with_forecast_weather(conn, model_frame(conn, start, end))
    print(f"workspace {home}: ingest + features + frame {time.perf_counter() - started:.1f} s, "
          f"{len(frame):,} rows, {frame['region'].nunique()} regions")
    for round_ in range(1, args.rounds + 1):
        report = retrain_all(frame, MlflowConfig.from_settings())
        print(f"\nretrain {round_}: {len(report.registrations)} regions in {report.seconds:.1f} s "
              f"(training, MLflow logging, registry)")
        print(report.metrics_table().to_string(index=False))
        for region, reason in report.failed.items():
            print(f"{region}: FAILED - {reason}")
    return 0


def _horizons(data_dir: Path, rounds: int) -> int:
    import duckdb

    from bench.lib.workspace import build_workspace
    from electricity_assets import settings
    from electricity_assets.modeling.horizon_model import HorizonConfig
    from electricity_assets.modeling.horizon_registry import (
        horizon_training_frame,
        register_horizons,
    )
    from electricity_assets.modeling.registry import MlflowConfig

    config = HorizonConfig()
    started = time.perf_counter()
    with duckdb.connect(settings.duckdb_path()) as conn:
        _, end = build_workspace(conn, data_dir)
        print(f"workspace: ingest + features {time.perf_counter() - started:.1f} s")
        for round_ in range(1, rounds + 1):
            began = time.perf_counter()
            frame = horizon_training_frame(conn, end, config)
            built = time.perf_counter() - began
            report = register_horizons(frame, MlflowConfig.from_settings(), config,
                                        workers=os.cpu_count() or 1)  # as trained_models
            total = time.perf_counter() - began
            print(f"retrain {round_}: issue frame {len(frame):,} rows in {built:.1f} s, then "
                  f"{len(report.registrations)} regions fitted, logged and registered in "
                  f"{report.seconds:.1f} s: {total / 60:.1f} min")
            for region, reason in report.failed.items():
                print(f"{region}: FAILED - {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
