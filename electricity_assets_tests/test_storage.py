"""DuckDB tables: one declaration creates each table and is its column schema in the UI;
transaction() commits or rolls back as a whole."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from electricity_assets import storage


def _defined_tables() -> dict[str, dg.TableSchema]:
    from electricity_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    return {key.to_user_string(): graph.get(key).metadata["dagster/column_schema"]
            for key in graph.get_all_asset_keys()
            if "dagster/column_schema" in graph.get(key).metadata}


def test_every_table_asset_shows_the_columns_duckdb_creates(duckdb_path: str) -> None:
    from electricity_assets.assets.features import demand_features, weather_features
    from electricity_assets.features import demand, weather

    shown = _defined_tables()
    from electricity_assets.streaming.losses import STREAM_LOSSES

    assert set(shown) == {"raw_demand", "raw_weather", "demand_features", "weather_features",
                          "demand_forecasts", "day_ahead_forecasts", "forecast_backtest",
                          "weather_station_offsets", "weather_normalisation", "dead_letters",
                          "raw_demand_by_source", "raw_weather_by_source", "forecast_skips",
                          "stream_losses"}
    tables = {**storage.TABLES, demand.TABLE: demand.SCHEMA, weather.TABLE: weather.SCHEMA,
              weather.OFFSETS_TABLE: weather.OFFSETS_SCHEMA,
              weather.NORMALISATION_TABLE: weather.NORMALISATION_SCHEMA,
              STREAM_LOSSES.name: STREAM_LOSSES}
    assert demand_features.key.to_user_string() == demand.TABLE
    assert weather_features.key.to_user_string() == weather.TABLE
    with duckdb.connect(duckdb_path) as conn:
        for name, schema in shown.items():
            storage.ensure_table(conn, tables[name])
            created = conn.execute(f"DESCRIBE {name}").df()
            assert [c.name for c in schema.columns] == created["column_name"].tolist(), name
            assert ([c.type for c in schema.columns] ==
                    created["column_type"].str.replace(" WITH TIME ZONE", "TZ").tolist()), name
            assert ([c.constraints.nullable for c in schema.columns] ==
                    (created["null"] == "YES").tolist()), name


def test_transaction_rolls_back_everything_when_the_block_fails(duckdb_path: str) -> None:
    with duckdb.connect(duckdb_path) as conn:
        conn.execute("CREATE TABLE t (x INTEGER PRIMARY KEY)")
        with storage.transaction(conn):
            conn.execute("INSERT INTO t VALUES (1)")
        with pytest.raises(ValueError), storage.transaction(conn):
            conn.execute("INSERT INTO t VALUES (2)")
            raise ValueError("the frame failed validation after the first statement")
        assert conn.execute("SELECT x FROM t").fetchall() == [(1,)]


def test_replace_window_of_an_undeclared_table_names_the_fix(duckdb_path: str) -> None:
    with duckdb.connect(duckdb_path) as conn, pytest.raises(KeyError, match="storage.Table"):
        storage.replace_window(conn, "no_such_table", pd.DataFrame(), pd.Timestamp(0, tz="UTC"),
                               pd.Timestamp(1, tz="UTC"))


def test_demand_regions_are_the_regions_with_rows_and_none_before_the_table(
        tmp_path: Path) -> None:
    with duckdb.connect(str(tmp_path / "regions.duckdb")) as conn:
        assert storage.demand_regions(conn) == []
        assert conn.execute("SELECT count(*) FROM duckdb_tables()").fetchone() == (0,)
        storage.ensure_table(conn, storage.RAW_DEMAND)
        conn.execute("INSERT INTO raw_demand (region, period_utc, type, value_mwh, source, "
                     "ingested_at) VALUES ('TEX', now(), 'D', 1, 'bundled', now()), "
                     "('CAL', now(), 'DF', 2, 'bundled', now()), "
                     "('TEX', now() - INTERVAL 1 HOUR, 'D', 3, 'bundled', now())")
        assert storage.demand_regions(conn) == ["CAL", "TEX"]


def test_raw_datasets_take_their_keys_from_the_table_declarations() -> None:
    from electricity_assets.datasets import DATASETS

    for dataset in DATASETS.values():
        table = storage.TABLES[dataset.table]
        assert dataset.key_columns == table.primary_key
        assert dataset.columns == tuple(c for c in table.column_names
                                        if c not in ("source", "ingested_at", "published_at"))
