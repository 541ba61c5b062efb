"""Thin asset definitions: wire sources, features and models to DuckDB and add metadata."""
