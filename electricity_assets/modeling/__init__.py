"""Training, evaluation, the MLflow registry and forecasting; no Dagster imports.

`training` (LightGBM per region), `registry` (MLflow runs, champion/challenger aliases),
`retrain` (all regions), `forecasting` (champion forecasts), `backtest` (rolling origin),
`workspace` (a self-contained DuckDB from a replay folder).
"""
