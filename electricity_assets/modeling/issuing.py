"""Issuing forecasts: every region's 1-48 h path for each issue hour of a window, from what was
known at that issue only (the `demand_forecasts` asset's work).

An issue I forecasts t = I + (h - 1) h, h = 1..48, with demand before I, weather observed before
I and forecast from I on (`features.issue`). The inputs are copied into a private in-memory
DuckDB holding raw rows before the window's last issue only, so rows of the live database at or
after it (hours a Kafka replay published ahead of the clock) never reach any issue;
`features.issue` keeps each issue to the rows before its own time. The weather of the hours
ahead comes from the *outlook*: live the Open-Meteo forecast; offline the replay's observations,
to which `features.issue` adds the simulated forecast error that grows with the lead time.

Never a forecast on a missing required input:
- the anchor: a region whose latest demand hour before I is not I - 1 h (late, missing, or
  implausible) gets no path from I; the reason is kept per region and issue;
- the weather: a model that uses weather drops the hours it has no weather for;
- the model: a region without a loadable champion is skipped with the load error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import duckdb
import pandas as pd

from electricity_assets import storage
from electricity_assets.features import issue, weather
from electricity_assets.features.common import ensure_exists, to_utc
from electricity_assets.modeling.champion_cache import Champion
from electricity_assets.modeling.metrics import error_metrics
from electricity_assets.sources.http import SourceError

logger = logging.getLogger(__name__)

COLUMNS = storage.DEMAND_FORECASTS.column_names
SKIP_COLUMNS = storage.FORECAST_SKIPS.column_names
SIMULATED = "observed + simulated forecast error growing with lead time (offline replay)"
FORECAST = "weather forecast (Open-Meteo)"
NO_WEATHER = "none (the region's model uses no weather)"

Connect = Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]
Outlook = Callable[[datetime, datetime], pd.DataFrame]
"""Raw weather rows (the `raw_weather` columns) for start <= period_utc < end, from the source."""


@dataclass
class IssueBatch:
    rows: pd.DataFrame     # COLUMNS
    skipped: pd.DataFrame  # SKIP_COLUMNS: region, issue_utc, reason, created_at
    df_input_rows: int = 0  # forecast rows whose inputs held EIA's posted DF of their hour
    df_outlook_error: str | None = None  # why the DF of the hours ahead was unavailable


class MlflowChampions:
    """The multi-horizon family in MLflow, as `champion_cache` asks it (MLflow imported only
    when asked). `config()` gives the MlflowConfig."""

    def __init__(self, config: Callable[[], object]) -> None:
        self.config = config

    def _client(self):
        from mlflow import MlflowClient

        uri = self.config().tracking_uri
        return MlflowClient(tracking_uri=uri, registry_uri=uri)

    def champion_version(self, region: str) -> tuple[str, str]:
        from electricity_assets.modeling.horizon_model import horizon_model_name
        from electricity_assets.modeling.registry import champion_version

        name = horizon_model_name(region)
        return name, str(champion_version(self._client(), name).version)

    def load(self, region: str, name: str, version: str) -> object:
        from electricity_assets.modeling.horizon_registry import load_horizon_version

        return load_horizon_version(name, version, self.config())


def issues_of_window(start: datetime, end: datetime) -> list[datetime]:
    """The issue times of hourly partitions [start, end): partition hour K issues at K + 1 h,
    when K's data is complete."""
    hours = pd.date_range(start, end, freq="h", inclusive="left", tz="UTC")
    return [(h + pd.Timedelta(hours=1)).to_pydatetime() for h in hours]


def _copy(source: duckdb.DuckDBPyConnection, target: duckdb.DuckDBPyConnection, table: str,
          sql: str, params: dict | None = None) -> None:
    # Arrow keeps the column types of an empty result (pandas would leave NULL-typed columns).
    frame = source.sql(sql, params=params or {}).to_arrow_table()
    target.register("_copied", frame)
    try:
        target.execute(f"CREATE TABLE {table} AS SELECT * FROM _copied")
    finally:
        target.unregister("_copied")


def known_before(conn: duckdb.DuckDBPyConnection, first_issue: datetime, last_issue: datetime,
                 outlook: pd.DataFrame, df_outlook: pd.DataFrame | None = None
                 ) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the raw rows before `last_issue` that issues from `first_issue`
    read, the fitted station offsets, and the `outlook` rows for the station hours the raw
    weather lacks (every hour from `last_issue` on; before it, hours not ingested yet); likewise
    the `df_outlook` DF rows for the region hours without one (`features.issue` reads a DF only
    from EIA's posting time on: `issue.df_public_sql`)."""
    ensure_exists(conn, "raw_demand", "raw_weather", weather.OFFSETS_SCHEMA)
    ws = duckdb.connect()
    ws.execute("SET TimeZone = 'UTC'")
    _copy(conn, ws, "raw_demand", "SELECT * FROM raw_demand WHERE period_utc >= $from "
          "AND period_utc < $last", {"from": first_issue - issue.DEMAND_LOOKBACK,
                                      "last": last_issue})
    _copy(conn, ws, "raw_weather", "SELECT * FROM raw_weather WHERE period_utc >= $from "
          "AND period_utc < $last", {"from": first_issue - issue.WEATHER_LOOKBACK,
                                      "last": last_issue})
    _copy(conn, ws, weather.OFFSETS_TABLE, f"SELECT * FROM {weather.OFFSETS_TABLE}")
    _add_missing(ws, storage.RAW_WEATHER, outlook, "r.station = o.station", first_issue,
                 last_issue)
    if df_outlook is not None and len(df_outlook):
        _add_missing(ws, storage.RAW_DEMAND, df_outlook[df_outlook["type"] == "DF"],
                     "r.region = o.region AND r.type = o.type", first_issue, last_issue)
    return ws


def _add_missing(ws: duckdb.DuckDBPyConnection, table: storage.Table, rows: pd.DataFrame,
                 same_key: str, first_issue: datetime, last_issue: datetime) -> None:
    """Insert the source's `rows` from `first_issue` on whose key `table` lacks (what the
    database holds wins), stamped as ingested at `last_issue`."""
    if not len(rows):
        return
    types = {c.name: c.sql_type for c in table.columns}
    columns = [c for c in rows.columns if c in types and c != "ingested_at"]
    ws.register("_outlook", _typed(rows[columns], types))
    listed = ", ".join(columns)
    try:
        ws.execute(f"""INSERT INTO {table.name} ({listed}, ingested_at)
            SELECT {listed}, $last FROM _outlook o
            WHERE o.period_utc >= $first
              AND NOT EXISTS (SELECT 1 FROM {table.name} r
                              WHERE {same_key} AND r.period_utc = o.period_utc)""",
                   {"last": last_issue, "first": first_issue})
    finally:
        ws.unregister("_outlook")


def _typed(frame: pd.DataFrame, types: Mapping[str, str]) -> pd.DataFrame:
    """`frame` with the table's column types: a column the source left all empty would reach
    DuckDB NULL-typed, which no INSERT can cast."""
    out = {}
    for column in frame.columns:
        values = frame[column]
        if types[column] == "DOUBLE":
            out[column] = pd.to_numeric(values, errors="coerce").astype("float64")
        elif types[column] == "TIMESTAMPTZ":
            out[column] = pd.to_datetime(values, utc=True)
        else:
            out[column] = values.astype("string")
    return pd.DataFrame(out, index=frame.index)


def _fetch(outlook: Outlook | None, what: str, first: datetime, end: datetime
           ) -> tuple[pd.DataFrame, str | None]:
    """The outlook's rows, or none and why (an outage costs the inputs it would have given)."""
    if outlook is None:
        return pd.DataFrame(), None
    try:
        return outlook(first, end), None
    except (SourceError, OSError) as exc:
        logger.warning("%s outlook unavailable: %s", what, exc)
        return pd.DataFrame(), str(exc)


def issue_inputs(connect: Connect, issues: Sequence[datetime], outlook: Outlook,
                 simulate_error: bool, df_outlook: Outlook | None = None
                 ) -> tuple[pd.DataFrame, str | None, str | None]:
    """The issue frame of `issues` as known at each, and why the weather and the DF outlooks
    failed, if they did. Without the DF outlook (none given, or an outage) the DF inputs are
    empty and the models use the path they learned for issues before EIA posts DF."""
    first, last = min(issues), max(issues)
    ahead_end = last + timedelta(hours=issue.HORIZON_HOURS)
    ahead, outlook_error = _fetch(outlook, "weather", first, ahead_end)
    dfs, df_error = _fetch(df_outlook, "DF", first, ahead_end)
    with connect() as conn:
        ws = known_before(conn, first, last, ahead, dfs)
    try:
        return issue.issue_frame(ws, issues, exante=simulate_error), outlook_error, df_error
    finally:
        ws.close()


def _anchor_skips(frame: pd.DataFrame) -> pd.DataFrame:
    """(region, issue_utc, reason) where the latest demand hour before the issue is not the hour
    just before it: its path would rest on an older anchor than the issue claims."""
    per_issue = frame.groupby(["region", "issue_utc"], as_index=False)["data_until_utc"].first()
    expected = per_issue["issue_utc"] - pd.Timedelta(hours=1)
    late = per_issue[per_issue["data_until_utc"].isna() | (per_issue["data_until_utc"] < expected)]
    reasons = [f"the anchor hour {e:%Y-%m-%d %H:%M} UTC is missing (latest plausible demand: "
               + (f"{u:%Y-%m-%d %H:%M} UTC)" if pd.notna(u) else "none)")
               for e, u in zip(late["issue_utc"] - pd.Timedelta(hours=1),
                               late["data_until_utc"], strict=True)]
    return pd.DataFrame({"region": late["region"], "issue_utc": late["issue_utc"],
                         "reason": reasons})


def _region_paths(region: str, rows: pd.DataFrame, champion: Champion, weather_label: str,
                  outlook_error: str | None) -> tuple[pd.DataFrame, list[tuple]]:
    """One region's forecast rows for its issues, and (issue_utc, reason) for issues that lost
    hours or everything."""
    notes: list[tuple] = []
    uses_weather = bool(getattr(champion.model, "uses_weather", True))
    if uses_weather:
        no_weather = rows["temperature_c"].isna()
        for issue_utc, lost in rows[no_weather].groupby("issue_utc").size().items():
            why = f" ({outlook_error})" if outlook_error else ""
            notes.append((issue_utc, f"{lost} of its hours had no weather forecast and were "
                                     f"left out{why}"))
        rows = rows[~no_weather]
    if rows.empty:
        return _empty(COLUMNS), notes
    predicted = champion.model.predict(rows)
    out = pd.DataFrame({
        "region": region, "issue_utc": rows["issue_utc"], "horizon_h": rows["horizon_h"],
        "period_utc": rows["period_utc"],
        **{c: predicted[c].to_numpy(dtype=float) for c in ("forecast_mwh", "p10_mwh", "p90_mwh")},
        "model_name": champion.name, "model_version": champion.version,
        "data_until_utc": rows["data_until_utc"],
        "weather_input": weather_label if uses_weather else NO_WEATHER,
    }, index=rows.index)
    return out[out["forecast_mwh"].notna()], notes


def forecast_issues(connect: Connect, issues: Sequence[datetime],
                    champions: Mapping[str, Champion], model_skips: Mapping[str, str],
                    outlook: Outlook, simulate_error: bool,
                    df_outlook: Outlook | None = None) -> IssueBatch:
    """Every region's path for each of `issues` (see the module docstring).

    `champions` are the loaded models by region; `model_skips` why the others have none.
    `connect()` opens the database once, briefly, to copy the inputs: the outlook's HTTP call
    and the predictions hold no DuckDB lock. `df_outlook` gives EIA's DF rows of the hours
    ahead (optional input: `issue_inputs`)."""
    created_at = pd.Timestamp(datetime.now(UTC))
    issues = sorted(pd.Timestamp(i).tz_convert("UTC").to_pydatetime() for i in issues)
    frame, outlook_error, df_error = issue_inputs(connect, issues, outlook, simulate_error,
                                                  df_outlook)
    skips = [_anchor_skips(frame)] if len(frame) else []
    late = set(zip(skips[0]["region"], skips[0]["issue_utc"], strict=True)) if skips else set()
    label = SIMULATED if simulate_error else FORECAST
    parts, notes = [], []
    for region, rows in frame.groupby("region", sort=True):
        keep = [(region, i) not in late for i in rows["issue_utc"]]
        rows = rows[keep]
        if region not in champions:
            reason = model_skips.get(str(region), "no model registered (materialise "
                                                  "trained_models)")
            notes += [(region, i, reason) for i in rows["issue_utc"].unique()]
            continue
        if rows.empty:
            continue
        out, lost = _region_paths(str(region), rows, champions[str(region)], label,
                                  outlook_error)
        if len(out):
            parts.append(out)
        notes += [(region, i, why) for i, why in lost]
    if notes:
        skips.append(pd.DataFrame(notes, columns=["region", "issue_utc", "reason"]))
    skips = [s for s in skips if len(s)]
    skipped = (pd.concat(skips, ignore_index=True) if skips
               else _empty(["region", "issue_utc", "reason"]))
    # One reason per region and issue (a late anchor explains everything after it).
    skipped = skipped.drop_duplicates(["region", "issue_utc"]).assign(created_at=created_at)
    rows = pd.concat(parts, ignore_index=True) if parts else _empty(COLUMNS)
    rows = rows.assign(created_at=created_at)
    served = [i for part in parts for i in part.index]  # `_region_paths` keeps frame's index
    df_rows = int(frame.loc[served, "df_ratio"].notna().sum()) if served else 0
    return IssueBatch(to_utc(rows[COLUMNS]), to_utc(skipped[SKIP_COLUMNS]), df_rows, df_error)


def _empty(columns: Sequence[str]) -> pd.DataFrame:
    times = ("issue_utc", "period_utc", "data_until_utc", "created_at")
    return pd.DataFrame({c: pd.Series(dtype="datetime64[us, UTC]" if c in times else object)
                         for c in columns})


def replace_issues(conn: duckdb.DuckDBPyConnection, batch: IssueBatch, first_issue: datetime,
                   end_issue: datetime, regions: Sequence[str] | None = None) -> int:
    """Replace the window's issues [first_issue, end_issue) in one transaction: the skip reasons
    of every region, and the forecasts of `regions` (default: all). A region left out (its model
    could not be loaded) keeps the forecasts it had: they are never deleted for want of a model."""
    for table in (storage.DEMAND_FORECASTS, storage.FORECAST_SKIPS):
        storage.ensure_table(conn, table)
    window = "issue_utc >= $first AND issue_utc < $end"
    params: dict[str, object] = {"first": first_issue, "end": end_issue}
    only = ""
    if regions is not None:
        only, params["regions"] = " AND region IN (SELECT unnest($regions))", list(regions)
    with storage.transaction(conn):
        conn.execute(f"DELETE FROM {storage.FORECAST_SKIPS.name} WHERE {window}",
                     {"first": first_issue, "end": end_issue})
        conn.execute(f"DELETE FROM {storage.DEMAND_FORECASTS.name} WHERE {window}{only}", params)
        for table, frame in ((storage.DEMAND_FORECASTS, batch.rows),
                             (storage.FORECAST_SKIPS, batch.skipped)):
            if len(frame):
                storage.insert_frame(conn, table.name, frame)
    return len(batch.rows)


def day_ahead_rows(conn: duckdb.DuckDBPyConnection, day: date, regions: Sequence[str],
                   issue_local_hour: int) -> tuple[pd.DataFrame, dict[str, str]]:
    """The day-ahead product of local day `day`: per region the stored issue made at
    `issue_local_hour` local time of the day before (`day_ahead_slice`), its hours of local
    day D; and why a region has none (that issue not stored, or it skipped the region)."""
    from electricity_assets.modeling.horizon_model import day_ahead_slice

    storage.ensure_table(conn, storage.DEMAND_FORECASTS)
    parts, skipped = [], {}
    for region in regions:
        issue_utc, hours = day_ahead_slice(region, day, issue_local_hour)
        rows = conn.execute(f"""
            SELECT region, ?::DATE AS target_date, period_utc, issue_utc, horizon_h,
                   forecast_mwh, p10_mwh, p90_mwh, model_name, model_version
            FROM {storage.DEMAND_FORECASTS.name}
            WHERE region = ? AND issue_utc = ? AND period_utc IN (SELECT unnest(?))
            ORDER BY period_utc""", [day, region, issue_utc, list(hours)]).df()
        if rows.empty:
            skipped[region] = (f"no stored issue at {issue_utc:%Y-%m-%d %H:%M} UTC "
                               f"({issue_local_hour:02d}:00 local the day before): "
                               "materialise demand_forecasts for that hour")
            continue
        if len(rows) < len(hours):
            skipped[region] = f"{len(hours) - len(rows)} of its {len(hours)} hours not forecast"
        parts.append(rows)
    frame = pd.concat(parts, ignore_index=True) if parts else _empty(
        storage.DAY_AHEAD_FORECASTS.column_names[:-1])
    frame["created_at"] = pd.Timestamp(datetime.now(UTC))
    return to_utc(frame), skipped


def day_ahead_scores(conn: duckdb.DuckDBPyConnection, first: date, end: date) -> pd.DataFrame:
    """Per region: median APE of the day-ahead product and of EIA's DF on the same hours of the
    days [first, end) (hours with an actual and a DF only), by `metrics.error_metrics`."""
    hours = conn.execute("""
        WITH a AS (SELECT region, period_utc,
                          max(value_mwh) FILTER (WHERE type = 'D') AS actual,
                          max(value_mwh) FILTER (WHERE type = 'DF') AS df
                   FROM raw_demand GROUP BY ALL)
        SELECT f.region, f.forecast_mwh, a.actual, a.df
        FROM day_ahead_forecasts f JOIN a USING (region, period_utc)
        WHERE f.target_date >= ? AND f.target_date < ? AND a.actual > 0 AND a.df > 0
        ORDER BY f.region""", [first, end]).df()
    return pd.DataFrame(
        [{"region": region, "hours": len(rows),
          "model_mdape": round(error_metrics(rows["actual"], rows["forecast_mwh"])["mdape"], 2),
          "df_mdape": round(error_metrics(rows["actual"], rows["df"])["mdape"], 2)}
         for region, rows in hours.groupby("region", sort=True)],
        columns=["region", "hours", "model_mdape", "df_mdape"])


def newest_issue_skips(conn: duckdb.DuckDBPyConnection
                       ) -> tuple[datetime | None, pd.DataFrame]:
    """The newest issue time and the regions it skipped with their reasons."""
    for table in (storage.DEMAND_FORECASTS, storage.FORECAST_SKIPS):
        storage.ensure_table(conn, table)
    (newest,) = conn.execute("""SELECT max(i) FROM (
        SELECT max(issue_utc) AS i FROM demand_forecasts
        UNION ALL SELECT max(issue_utc) FROM forecast_skips)""").fetchone()
    skipped = conn.execute("SELECT region, reason FROM forecast_skips WHERE issue_utc = ? "
                           "ORDER BY region", [newest]).df()
    return newest, skipped
