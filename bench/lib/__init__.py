"""Code only the benchmarks use (and the tests that cover it): the self-contained workspace
DuckDB built from a replay folder, and the global model compared in `forecast_accuracy.py
--compare-global`. Imported as `bench.lib` with the repository root on sys.path."""
