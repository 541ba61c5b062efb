"""Training, evaluation, the MLflow registry and forecasting; no Dagster imports.

`training` (LightGBM per region, 24 h ahead), `registry` (MLflow runs, champion/challenger
aliases), `retrain` (all regions), `backtest` (rolling origin), `horizons` (the multi-horizon
model the forecasts use), `issuing` (issuing forecasts over a window of issue hours),
`champion_cache` (the serving copy of the champions), `metrics` (every error figure).
The self-contained workspace DuckDB and the global model are benchmark code (`bench/lib/`).
"""
