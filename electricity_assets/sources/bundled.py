"""Offline replay of real history from gzipped CSV files (the default source).

The folder (package `data/` or `ELECTRICITY_DATA_DIR`) holds the dataset's replay files
(`datasets.py`) in the schema described in the README; any region codes they contain are
replayed, including ones the bundle lacks.

Weather files come in two shapes, read by the same code: one row per region and hour (Open-Meteo,
`region` column; the row's station is the region's first catalogue point) or one row per station
and hour (NOAA, `station_id` column; the region is the station's catalogue region, else the
file's `region_hint`). A row is rejected, never moved, when its hour is not a UTC timestamp on the
hour, it has no region, a value is present but not a finite number ('abc', 'nan', 'inf'), or it
repeats a key already seen later in the file (the last one wins). Values outside the hard bounds
of `plausibility.py` are rejected by `sources.select.load_window`, like a streamed message's;
values inside them are kept as published and flagged by the asset checks.

A large file is parsed and judged once per content and kept as Parquet in `ELECTRICITY_CACHE_DIR`
(`_judged_parquet`); every window read then filters that.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd

from electricity_assets.datasets import Dataset, ReplayFile
from electricity_assets.regions import REGIONS, station_regions
from electricity_assets.settings import cache_dir

log = logging.getLogger(__name__)


class BundledDataError(RuntimeError):
    pass


@dataclass
class ReplayRows:
    rows: pd.DataFrame      # dataset.columns + source, period_utc tz-aware UTC
    rejected: pd.DataFrame  # payload, reason


def bundled_file(dataset: Dataset, data_dir: Path) -> Path:
    path = Path(data_dir) / dataset.bundled_file
    if not path.exists():
        raise BundledDataError(
            f"{path} not found: ELECTRICITY_DATA_DIR must hold {dataset.bundled_file}"
        )
    return path


def _present_files(dataset: Dataset, data_dir: Path) -> list[tuple[ReplayFile, Path]]:
    found = []
    for replay in dataset.replay_files:
        path = Path(data_dir) / replay.name
        if path.exists():
            found.append((replay, path))
        elif replay.required:
            raise BundledDataError(
                f"{path} not found: ELECTRICITY_DATA_DIR must hold {replay.name}")
    return found


def _header(conn: duckdb.DuckDBPyConnection, path: Path) -> list[str]:
    return [r[0] for r in conn.execute(
        "DESCRIBE SELECT * FROM read_csv(?, header = true, all_varchar = true)",
        [str(path)]).fetchall()]


def _judge_sql(conn: duckdb.DuckDBPyConnection, dataset: Dataset, path: Path) -> str:
    """Every row of one replay file, typed, with `_reason` (NULL for a valid row) and `_payload`
    (the raw line, for a rejected row)."""
    header = _header(conn, path)
    exprs: dict[str, str] = {}
    joins = ""
    if "station" in dataset.key_columns:
        if "station" in header:
            exprs["station"] = "src.station"
        elif "station_id" in header:
            exprs["station"] = "src.station_id"
        else:
            exprs["station"] = "coalesce(d.default_station, src.region)"
            joins += " LEFT JOIN _default_station d ON d.region = src.region"
        if "region" not in header:
            hint = "nullif(trim(src.region_hint), '')" if "region_hint" in header else "NULL"
            exprs["region"] = f"coalesce(h.home_region, {hint})"
            joins += f" LEFT JOIN _home_region h ON h.station = {exprs['station']}"
    for column in dataset.columns:
        if column in exprs:
            continue
        if column == "period_utc":
            exprs[column] = "TRY_CAST(src.period_utc AS TIMESTAMPTZ)"
        elif column in dataset.value_columns:
            exprs[column] = (f"TRY_CAST(src.{column} AS DOUBLE)" if column in header
                             else "NULL::DOUBLE")
        else:
            exprs[column] = f"src.{column}"
    select = ", ".join(f"{sql} AS {name}" for name, sql in exprs.items())
    # A value that is there but is no finite number ('abc', 'nan', 'inf') is rejected by the one
    # rule (plausibility.py), not read as a missing value; an empty field is a missing value.
    unreadable = [
        f"CASE WHEN coalesce(trim(src.{c}), '') = '' THEN NULL "
        f"WHEN TRY_CAST(src.{c} AS DOUBLE) IS NULL THEN 'implausible value: {c} is not a number' "
        f"WHEN NOT isfinite(TRY_CAST(src.{c} AS DOUBLE)) "
        f"THEN 'implausible value: {c} is not finite' END"
        for c in dataset.value_columns if c in header]
    value_reason = (f"nullif(concat_ws('; ', {', '.join(unreadable)}), '')" if unreadable
                    else "NULL")
    keys = ", ".join(dataset.key_columns)
    payload = "concat_ws(',', " + ", ".join(f"\"{c}\"" for c in header) + ")"
    return f"""
        WITH src AS (
            SELECT *, row_number() OVER () AS _line
            FROM read_csv({_literal(str(path))}, header = true, all_varchar = true)
        ),
        typed AS (
            SELECT {select}, {value_reason} AS _value_reason, src._line FROM src {joins}
        ),
        judged AS (
            SELECT *, CASE
                WHEN period_utc IS NULL THEN 'period_utc is not a timestamp with a time zone'
                WHEN date_trunc('hour', period_utc) <> period_utc THEN 'period_utc not on the hour'
                WHEN region IS NULL THEN 'no region: station not in the catalogue, no region_hint'
                WHEN _value_reason IS NOT NULL THEN _value_reason
                WHEN row_number() OVER (PARTITION BY {keys} ORDER BY _line DESC) > 1
                    THEN 'duplicate key: a later row of the file has the same hour'
                END AS _reason
            FROM typed
        )
        SELECT j.* EXCLUDE (_line, _value_reason),
               CASE WHEN _reason IS NOT NULL THEN (SELECT {payload} FROM src s
                                                   WHERE s._line = j._line) END AS _payload
        FROM judged j
    """


# Files smaller than this are parsed on every read (a fraction of a second); larger ones once.
CACHE_MIN_BYTES = 256 * 1024
CACHE_KEEP_FILES = 16


def _catalogue() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    homes = [(station, regions[0]) for station, regions in station_regions().items()]
    defaults = [(r.code, r.weather_points[0].station) for r in REGIONS.values() if r.weather_points]
    return homes, defaults


def _catalogue_frames(conn: duckdb.DuckDBPyConnection) -> None:
    """Register the station -> home region and region -> default station lookups."""
    homes, defaults = _catalogue()
    conn.register("_home_region", pd.DataFrame(homes, columns=["station", "home_region"]))
    conn.register("_default_station", pd.DataFrame(defaults, columns=["region", "default_station"]))


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _cache_name(dataset: Dataset, path: Path) -> str:
    """Named by what the judged rows depend on: the file's bytes, this module (the rules) and the
    station catalogue. An edited file, rule or catalogue is a new name, never a stale hit."""
    digest = hashlib.blake2b(digest_size=16)
    for part in (path.read_bytes(), Path(__file__).read_bytes(), repr(_catalogue()).encode(),
                 dataset.name.encode()):
        digest.update(part)
    return f"{dataset.name}-{digest.hexdigest()}.parquet"


def _prune(folder: Path) -> None:
    cached = sorted(folder.glob("*.parquet"), key=lambda f: f.stat().st_mtime, reverse=True)
    for old in cached[CACHE_KEEP_FILES:]:
        old.unlink(missing_ok=True)


def _judged_parquet(conn: duckdb.DuckDBPyConnection, dataset: Dataset, path: Path,
                    folder: Path) -> Path:
    """The judged rows of `path` as Parquet sorted by hour, written once per file content.

    Every window read (a partition, a replay chunk, a test) then reads the row groups of its
    hours instead of decompressing and re-parsing the whole CSV (0.4-0.6 s per bundled file),
    in every process that reads it. Written to a temporary name and renamed, so a reader in
    another process never sees half a file.
    """
    target = folder / _cache_name(dataset, path)
    if target.exists():
        os.utime(target)  # newest use, for _prune
        return target
    folder.mkdir(parents=True, exist_ok=True)
    judged = _judge_sql(conn, dataset, path)
    partial = target.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        conn.execute(f"COPY ({judged} ORDER BY period_utc NULLS FIRST) TO "
                     f"{_literal(str(partial))} (FORMAT parquet, ROW_GROUP_SIZE 20000)")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)  # a file DuckDB could not read leaves nothing behind
    _prune(folder)
    return target


def _cached_source(conn: duckdb.DuckDBPyConnection, dataset: Dataset, path: Path) -> str | None:
    """`read_parquet(...)` of the file's judged rows; None for a small file or when the cache
    folder cannot be written (then the caller parses the file)."""
    if path.stat().st_size < CACHE_MIN_BYTES:
        return None
    try:
        return f"read_parquet({_literal(str(_judged_parquet(conn, dataset, path, cache_dir())))})"
    except OSError as exc:
        log.warning("replay cache unavailable (%s): parsing %s on every read", exc, path)
        return None


def _read_file(conn: duckdb.DuckDBPyConnection, dataset: Dataset, replay: ReplayFile,
               path: Path, start: datetime, end: datetime) -> tuple[pd.DataFrame, pd.DataFrame]:
    window = "WHERE period_utc IS NULL OR (period_utc >= ? AND period_utc < ?)"
    source = _cached_source(conn, dataset, path) or f"({_judge_sql(conn, dataset, path)})"
    frame = conn.execute(f"SELECT * FROM {source} {window}", [start, end]).df()
    bad = frame["_reason"].notna()
    rejected = pd.DataFrame({"payload": frame.loc[bad, "_payload"].astype(str),
                             "reason": frame.loc[bad, "_reason"]})
    rows = frame.loc[~bad, list(dataset.columns)].assign(source=replay.source)
    return rows, rejected


def read_replay(dataset: Dataset, start: datetime, end: datetime, data_dir: Path) -> ReplayRows:
    """Valid rows of every replay file of `dataset` with start <= period_utc < end, with their
    `source`, and the rejected rows with the reason."""
    files = _present_files(dataset, data_dir)
    rows, rejected = [], []
    # A private in-memory connection: reading the CSV never touches the project database.
    with duckdb.connect() as conn:
        conn.execute("SET TimeZone = 'UTC'")
        _catalogue_frames(conn)
        for replay, path in files:
            try:
                good, bad = _read_file(conn, dataset, replay, path, start, end)
            except duckdb.Error as exc:
                raise BundledDataError(f"cannot read {path}: {exc}") from exc
            rows.append(good)
            rejected.append(bad)
    columns = [*dataset.columns, "source"]
    frame = (pd.concat(rows, ignore_index=True) if rows
             else pd.DataFrame({c: [] for c in columns}))
    if len(frame):
        # Two files with the same key (a user's copy of the same station): the later file wins.
        frame = frame.drop_duplicates(list(dataset.key_columns), keep="last")
    frame["period_utc"] = pd.to_datetime(frame["period_utc"], utc=True)
    frame = frame.astype({c: "float64" for c in dataset.value_columns})
    frame = frame.sort_values(list(dataset.key_columns), ignore_index=True)[columns]
    bad = (pd.concat(rejected, ignore_index=True) if rejected
           else pd.DataFrame(columns=["payload", "reason"]))
    return ReplayRows(frame, bad)


def read_bundled(dataset: Dataset, start: datetime, end: datetime, data_dir: Path) -> pd.DataFrame:
    """Rows of `dataset` with start <= period_utc < end, in the dataset's column order."""
    return read_replay(dataset, start, end, data_dir).rows[list(dataset.columns)]


def bundled_coverage(dataset: Dataset, data_dir: Path) -> tuple[datetime, datetime] | None:
    """First and last period_utc in the replay files (None when empty)."""
    files = _present_files(dataset, data_dir)
    if not files:
        raise BundledDataError(f"{data_dir} holds none of "
                               f"{', '.join(f.name for f in dataset.replay_files)}")
    spans = []
    with duckdb.connect() as conn:
        conn.execute("SET TimeZone = 'UTC'")
        _catalogue_frames(conn)
        for _, path in files:
            source = _cached_source(conn, dataset, path)
            if source is None:  # parsed here: only the hour column is needed
                source = (f"(SELECT TRY_CAST(period_utc AS TIMESTAMPTZ) AS period_utc FROM "
                          f"read_csv({_literal(str(path))}, header = true, all_varchar = true))")
            spans.append(conn.execute(
                f"SELECT min(period_utc), max(period_utc) FROM {source}").fetchone())
    firsts = [first for first, _ in spans if first is not None]
    lasts = [last for _, last in spans if last is not None]
    return (min(firsts), max(lasts)) if firsts else None
