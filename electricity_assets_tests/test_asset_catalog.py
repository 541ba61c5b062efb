"""Every persisted table is in the asset graph: what the dashboard reads, what the package
declares, and what a seeded database and its serving snapshot hold."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import dagster as dg
import duckdb
import pytest

import electricity_assets
from electricity_assets import serving, storage
from electricity_assets_tests.dashboard_seed import seeded_database

QUERIES = Path(__file__).resolve().parent.parent / "dashboard" / "queries.py"
# Floor for the parser below: if it stops finding these, it is broken, not the catalog.
KNOWN_READS = {"raw_demand", "raw_weather", "weather_features", "demand_forecasts",
               "forecasts_24h", "forecast_skips", "forecast_backtest", "dead_letters",
               "serving_meta", "model_cards"}


def asset_keys() -> set[str]:
    from electricity_assets.definitions import defs

    return {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}


def tables_the_dashboard_queries() -> set[str]:
    """Relations after FROM/JOIN and names tested with has_table in dashboard/queries.py, less
    the CTEs, registered frames (_name) and DuckDB's own functions."""
    source = QUERIES.read_text()
    constants = dict(re.findall(r'^([A-Z_]+) = "(\w+)"', source, re.MULTILINE))
    names = set(re.findall(r"\b(?:FROM|JOIN)\s+([A-Za-z_]\w*)", source))
    names |= set(re.findall(r'has_table\(conn, "(\w+)"\)', source))
    for listed in re.findall(r"in \(([^)]*)\) if has_table", source):
        names |= set(re.findall(r'"(\w+)"', listed))
    names |= {constants[n] for n in re.findall(r"has_table\(conn, ([A-Z_]+)\)", source)}
    ctes = set(re.findall(r"(?:WITH|,)\s+(\w+) AS \(", source))
    return {n for n in names - ctes if not n.startswith("_") and not n.startswith("duckdb_")}


def test_every_table_the_dashboard_queries_has_an_asset_key() -> None:
    read = tables_the_dashboard_queries()
    assert KNOWN_READS <= read
    assert read - asset_keys() == set()


def test_every_table_the_package_declares_has_an_asset_key() -> None:
    declared = set()
    for module in pkgutil.walk_packages(electricity_assets.__path__, "electricity_assets."):
        if module.name.endswith("__main__"):
            continue
        values = vars(importlib.import_module(module.name)).values()
        declared |= {v.name for v in values if isinstance(v, storage.Table)}
    assert {"raw_demand", "stream_losses", "weather_station_offsets"} <= declared
    assert declared - asset_keys() == set()


def test_every_table_of_a_seeded_database_and_its_snapshot_has_an_asset_key(
        tmp_path_factory: pytest.TempPathFactory, isolated_home: Path) -> None:
    live = seeded_database(tmp_path_factory.mktemp("catalog"))
    snapshot = isolated_home / "serving.duckdb"
    serving.publish_snapshot(str(live), snapshot)
    found = set()
    for path in (live, snapshot):
        with duckdb.connect(str(path), read_only=True) as conn:
            found |= {r[0] for r in conn.execute("SELECT table_name FROM duckdb_tables()")
                      .fetchall()}
    assert {"dead_letters", "forecasts_24h", "serving_meta", "model_cards"} <= found
    assert found - asset_keys() == set()


def test_side_tables_name_their_writer_and_are_never_materialised_by_dagster() -> None:
    from electricity_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    for name in ("dead_letters", "forecast_skips", "forecasts_24h", "model_cards"):
        node = graph.get(dg.AssetKey(name))
        assert not node.is_materializable, name
        assert node.metadata["written_by"].value, name
    assert dg.AssetKey("demand_forecasts") in graph.get(dg.AssetKey("forecasts_24h")).parent_keys
