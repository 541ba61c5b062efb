"""Serving copies of the champions, so that a run forecasts without importing MLflow.

A stream run is a new process: importing MLflow (~4 s) and loading twelve champions through it
took most of the 25 s from a Kafka message to its forecast. MLflow stays the registry; this is a
read-through copy of what it serves:
- `ELECTRICITY_HOME/models/champions.json` names each region's champion (registered name and
  version) as resolved from the registry at `resolved_at`, or why a region has none;
- `models/<name>/<version>.pkl` holds that version's predictor (a registered version never
  changes, so these files never go stale).

Rule: a run uses the index while it is younger than `max_age` (CHAMPION_INDEX_MAX_AGE_MINUTES,
60); else it asks MLflow which versions are the champions (one alias look-up per region; a model
is downloaded only for a version not copied yet) and rewrites the index. `trained_models`
rewrites it whenever it registers, and the serving-snapshot sensor after every successful run.
So a champion chosen by training is served from the next issue on; one moved by hand in the
MLflow UI after the next run, or within `max_age`. A cached file that cannot be read is
resolved through MLflow again; a region whose model cannot be loaded at all is skipped with the
reason, and the other regions are served.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

logger = logging.getLogger(__name__)

INDEX = "champions.json"
DEFAULT_MAX_AGE = timedelta(minutes=60)


@dataclass(frozen=True)
class Champion:
    """A region's model as served: registered name and version, and the loaded predictor
    (`predict(frame)` -> forecast_mwh, p10_mwh, p90_mwh; `uses_weather`)."""
    name: str
    version: str
    model: object


class Registry(Protocol):
    """The model registry as the cache asks it: which version is a region's champion (cheap),
    and that version's predictor (a download, only for a version not copied yet)."""

    def champion_version(self, region: str) -> tuple[str, str]:
        """(registered name, version); LookupError when the region has no champion."""
        ...

    def load(self, region: str, name: str, version: str) -> object: ...


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _model_path(home: Path, name: str, version: str) -> Path:
    return home / "models" / name / f"{version}.pkl"


def _champion(region: str, registry: Registry, home: Path) -> Champion:
    """The region's champion: its version from the registry, the predictor from the copy of
    that version when there is a readable one, else from the registry (and copied)."""
    name, version = registry.champion_version(region)
    path = _model_path(home, name, version)
    if path.exists():
        try:
            return Champion(name, version, pickle.loads(path.read_bytes()))
        except Exception:  # noqa: BLE001 - an unreadable copy: take the registry's again
            logger.warning("cached model %s unreadable: loading it from the registry", path)
    model = registry.load(region, name, version)
    _write_atomic(path, pickle.dumps(model))
    return Champion(name, version, model)


def resolve(regions: Sequence[str], registry: Registry, home: Path
            ) -> tuple[dict[str, Champion], dict[str, str]]:
    """Each region's champion as the registry names it now (any load error caught per region
    and kept as its reason), new versions copied, the index rewritten. Cheap when no champion
    changed: one alias look-up per region."""
    champions: dict[str, Champion] = {}
    skips: dict[str, str] = {}
    for region in regions:
        try:
            champions[region] = _champion(region, registry, home)
        except LookupError as exc:
            skips[region] = str(exc)
        except Exception as exc:  # noqa: BLE001 - a corrupt artifact must not stop the others
            logger.exception("the champion of %s could not be loaded", region)
            skips[region] = (f"its champion could not be loaded ({type(exc).__name__}: "
                             f"{str(exc)[:200]}): retrain it or move the alias to a good version")
    index = {"resolved_at": datetime.now(UTC).isoformat(),
             "champions": {r: {"name": c.name, "version": c.version}
                           for r, c in champions.items()},
             "skipped": skips}
    _write_atomic(home / "models" / INDEX, json.dumps(index, indent=1).encode())
    return champions, skips


def cached(regions: Sequence[str], home: Path, max_age: timedelta
           ) -> tuple[dict[str, Champion], dict[str, str]] | None:
    """The champions as the index names them, or None when the index is missing, older than
    `max_age`, silent on a region, or one of its files cannot be read."""
    try:
        index = json.loads((home / "models" / INDEX).read_text())
        resolved = datetime.fromisoformat(index["resolved_at"])
    except (OSError, ValueError, KeyError):
        return None
    if datetime.now(UTC) - resolved > max_age:
        return None
    champions: dict[str, Champion] = {}
    skips: dict[str, str] = {}
    for region in regions:
        if region in index["skipped"]:
            skips[region] = index["skipped"][region]
            continue
        entry = index["champions"].get(region)
        if entry is None:
            return None  # a region the index has not seen: ask the registry
        path = _model_path(home, entry["name"], entry["version"])
        try:
            model = pickle.loads(path.read_bytes())
        except Exception:  # noqa: BLE001 - unreadable copy: resolve from the registry again
            logger.warning("cached model %s unreadable: resolving from the registry", path)
            return None
        champions[region] = Champion(entry["name"], entry["version"], model)
    return champions, skips


def load_champions(regions: Sequence[str], registry: Registry, home: Path,
                   max_age: timedelta = DEFAULT_MAX_AGE
                   ) -> tuple[dict[str, Champion], dict[str, str]]:
    """The regions' champions, from the cache while fresh, else from the registry."""
    found = cached(regions, home, max_age)
    return found if found is not None else resolve(regions, registry, home)
