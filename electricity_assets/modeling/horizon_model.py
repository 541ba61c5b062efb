"""The multi-horizon model: for an issue hour I, a region's next 48 hours.

One LightGBM per region on (issue, horizon) rows of `features.issue.issue_frame` (horizon is a
feature), issue hours subsampled from the history so training stays fast. The target is the ratio
of demand to the profile-persistence forecast known at the issue (demand of the same hour on the
newest known day, times the ratio of the newest hour to the same hour that day) up to
`PERSISTENCE_UNTIL_H`, and to the profile day's demand beyond, so the trees
learn corrections to a baseline that is already good a few hours ahead, and one set of
hyper-parameters fits every region.

Time-ordered split: the validation rows are the issues of the last `validation_weeks` weeks, the
training rows forecast hours before the first of them. P10/P90 are split-conformal per horizon
(`horizon_offsets`, within its bucket of `BUCKETS`): quantiles of the ratio residuals of the
newest `calibration_weeks` of those issues in units of each row's weekly spread (std / mean of the
last 168 h of demand, known at the issue), and up to `ERROR_UNIT_UNTIL_H` of the last week's
error of profile persistence 1 h ahead (`unit_of`). After early stopping the
trees are refitted on training + validation rows (`fit_end` moves to the end of the data).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

import lightgbm as lgb
import numpy as np
import pandas as pd

from electricity_assets.features.issue import FEATURE_COLUMNS, WEATHER_FEATURES
from electricity_assets.modeling.metrics import error_metrics, interval_coverage
from electricity_assets.modeling.training import InsufficientDataError
from electricity_assets.regions import get_region

logger = logging.getLogger(__name__)

BUCKETS: tuple[tuple[int, int], ...] = ((1, 6), (7, 12), (13, 24), (25, 48))
"""Horizon buckets (inclusive) with their own P10/P90 offsets and metrics."""

DEFAULT_PARAMS: dict[str, object] = {
    "objective": "l1",
    "learning_rate": 0.1,
    "num_leaves": 31,
    "min_data_in_leaf": 50,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.7,
    "bagging_freq": 1,
    "max_bin": 63,
    "num_threads": 1,
    "seed": 7,
    "verbose": -1,
}


@dataclass(frozen=True)
class HorizonConfig:
    # Training issues every 11 h (11 and 24 share no factor: every hour of the day is an issue
    # hour within 11 days), so 12 regions x 48 horizons train in about 4 minutes on one core.
    issue_every_hours: int = 11
    # The 1-6 h and 13-24 h buckets have 6 and 12 rows per issue against 24 for 25-48 h: they
    # also train on issues every 5 h (5 and 24 share no factor either), their horizons only.
    # 0: no extra issues. Four-window backtest: 1-6 h 0.65 -> 0.60 % at 1 h; 13-24 h 2.76 ->
    # 2.72 % at 24 h for 0.5 min more training (7-12 h not measured).
    short_issue_every_hours: int = 5
    dense_buckets: tuple[int, ...] = (0, 2)  # indices into BUCKETS
    history_days: int = 0  # 0: all history
    validation_weeks: int = 8
    # P10/P90 from the residuals of the newest weeks of the validation issues only (0: all): the
    # early stopping gains from a longer validation, the band from the season nearest the issues.
    calibration_weeks: int = 4
    # Widen (or narrow) each bucket's band by the factor that makes bands fitted without one
    # calibration week hold P10-P90 of that week, over every week (`held_out_week_factor`).
    held_out_weeks: bool = True
    # Distinct forecast hours (not rows: an issue gives 48 rows), as the 24-hour model counts.
    min_train_hours: int = 24 * 28
    min_validation_hours: int = 24 * 3
    num_boost_round: int = 1000
    early_stopping_rounds: int = 30
    refit: bool = True
    interval: tuple[float, float] = (0.10, 0.90)
    params: dict[str, object] = field(default_factory=lambda: dict(DEFAULT_PARAMS))


def bucket_of(horizon_h: pd.Series | np.ndarray) -> np.ndarray:
    """Index into `BUCKETS` of each horizon (-1 outside 1..48)."""
    h = np.asarray(horizon_h, dtype=int)
    out = np.full(len(h), -1)
    for i, (low, high) in enumerate(BUCKETS):
        out[(h >= low) & (h <= high)] = i
    return out


def bucket_label(index: int) -> str:
    low, high = BUCKETS[index]
    return f"h{low:02d}_{high:02d}"


PERSISTENCE_UNTIL_H = 12
"""Horizons up to this are ratios to profile persistence; beyond, to the profile-day demand
(demand of the same hour on the newest known day): a day or two ahead the anchor's ratio to the
day before moves the level by noise more than by information."""


def base_of(frame: pd.DataFrame) -> pd.Series:
    """The level the target is a ratio to (NaN: none): profile persistence up to
    `PERSISTENCE_UNTIL_H`, the profile-day demand after; the anchor where those are missing."""
    anchor = pd.to_numeric(frame["anchor_mwh"], errors="coerce")
    persistence = pd.to_numeric(frame["persistence_mwh"], errors="coerce")
    profile = pd.to_numeric(frame["profile_ratio"], errors="coerce") * anchor
    near = pd.to_numeric(frame["horizon_h"], errors="coerce") <= PERSISTENCE_UNTIL_H
    base = persistence.where(near, profile).fillna(anchor)
    return base.where(base > 0)


def spread_of(frame: pd.DataFrame) -> pd.Series:
    """Relative spread of the last week's demand (std / mean), the interval's unit."""
    spread = (pd.to_numeric(frame["last168_std_ratio"], errors="coerce")
              / pd.to_numeric(frame["last168_mean_ratio"], errors="coerce"))
    return spread.where(spread > 0)


ERROR_UNIT_UNTIL_H = 6
"""Horizons whose P10/P90 are in units of the last week's error of profile persistence 1 h
ahead (`last168_persistence_err`) instead of the weekly spread: a few hours ahead the error is
that of the day-on-day ratio's hour-to-hour moves, which the daily swing (large in summer) does
not measure."""


def persistence_error_of(frame: pd.DataFrame) -> pd.Series:
    """The last week's mean absolute log error of profile persistence 1 h ahead."""
    if "last168_persistence_err" not in frame:
        return pd.Series(np.nan, index=frame.index)
    error = pd.to_numeric(frame["last168_persistence_err"], errors="coerce")
    return error.where(error > 0)


def unit_of(frame: pd.DataFrame, spread_typical: float, error_typical: float | None
            ) -> np.ndarray:
    """Each row's interval unit: the weekly spread, and up to `ERROR_UNIT_UNTIL_H` the recent
    persistence error when the model has one (`error_typical` not None; missing values take the
    typical ones)."""
    unit = spread_of(frame).fillna(spread_typical).to_numpy()
    if error_typical is None:
        return unit
    near = pd.to_numeric(frame["horizon_h"], errors="coerce").to_numpy() <= ERROR_UNIT_UNTIL_H
    error = persistence_error_of(frame).fillna(error_typical).to_numpy()
    return np.where(near, error, unit)


def inputs(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Feature matrix as float64 (booleans 0/1, missing columns NaN)."""
    out = {}
    for column in columns:
        values = frame[column] if column in frame else pd.Series(np.nan, index=frame.index)
        out[column] = pd.to_numeric(values.astype("float64"), errors="coerce")
    return pd.DataFrame(out, index=frame.index)


@dataclass
class HorizonPredictor:
    """What serving needs: one booster per horizon bucket (LightGBM text), the inputs and the
    bucket's P10/P90 offsets."""

    region: str
    model_texts: dict[int, str]  # bucket index -> trees
    feature_columns: list[str]
    offsets: dict[int, tuple[float, float]]  # bucket index -> (low, high), `unit_of` units
    spread_typical: float
    _boosters: dict[int, lgb.Booster] = field(default_factory=dict, repr=False, compare=False)
    # horizon_h -> (low, high): per horizon within its bucket (`horizon_offsets`); versions
    # registered before it have none and use their bucket's offsets.
    horizon_offsets: dict[int, tuple[float, float]] = field(default_factory=dict)
    # Typical `last168_persistence_err`: the short horizons' unit (`unit_of`); versions
    # registered before it have none and keep the weekly spread there.
    error_typical: float | None = None

    INPUT_EXTRA = ("persistence_mwh", "anchor_mwh", "last168_std_ratio", "last168_mean_ratio",
                   "last168_persistence_err")

    @property
    def input_columns(self) -> list[str]:
        """Columns `predict` reads: the features and what the level and interval derive from."""
        return list(dict.fromkeys([*self.feature_columns, "horizon_h", *self.INPUT_EXTRA]))

    @property
    def uses_weather(self) -> bool:
        return any(c in WEATHER_FEATURES for c in self.feature_columns)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_boosters": {}}

    def booster(self, bucket: int) -> lgb.Booster:
        if bucket not in self._boosters:
            self._boosters[bucket] = lgb.Booster(model_str=self.model_texts[bucket])
        return self._boosters[bucket]

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """forecast_mwh, p10_mwh, p90_mwh per row (NaN without a level or outside 1..48)."""
        return self.forecast_from(frame, self.ratios(frame))

    def ratios(self, frame: pd.DataFrame) -> np.ndarray:
        """The boosters' demand / level ratio per row (NaN outside 1..48)."""
        x = inputs(frame, self.feature_columns)
        buckets = bucket_of(frame["horizon_h"])
        ratio = np.full(len(frame), np.nan)
        for b in self.model_texts:
            rows = buckets == b
            if rows.any():
                ratio[rows] = self.booster(b).predict(x[rows])
        return ratio

    def forecast_from(self, frame: pd.DataFrame, ratio: np.ndarray) -> pd.DataFrame:
        """`predict` for the `ratios` of `frame`: levels times ratio, and the P10/P90 band."""
        buckets = bucket_of(frame["horizon_h"])
        low, high = (np.full(len(frame), np.nan) for _ in range(2))
        for b in self.model_texts:
            rows = buckets == b
            if rows.any():
                low[rows], high[rows] = self.offsets[b]
        per_horizon = getattr(self, "horizon_offsets", None) or {}
        horizons = frame["horizon_h"].to_numpy()
        for h, (lo, hi) in per_horizon.items():
            rows = (horizons == h) & ~np.isnan(ratio)
            low[rows], high[rows] = lo, hi
        base = base_of(frame).to_numpy()
        unit = unit_of(frame, self.spread_typical, getattr(self, "error_typical", None))
        return pd.DataFrame({
            "forecast_mwh": ratio * base,
            "p10_mwh": (ratio + low * unit) * base,
            "p90_mwh": (ratio + high * unit) * base,
        }, index=frame.index)


@dataclass
class HorizonModel:
    """A trained region model with the validation evidence that goes to MLflow."""

    region: str
    predictor: HorizonPredictor  # the deployed trees (after a refit: validation rows too)
    config: HorizonConfig
    train_start: datetime
    train_end: datetime       # validation issues start here
    validation_end: datetime  # exclusive end of the validation rows' forecast hours
    fit_end: datetime         # exclusive end of the hours the deployed trees' targets cover
    train_rows: int
    best_iterations: dict[int, int]  # bucket -> early-stopped rounds
    validation: pd.DataFrame  # validation rows: keys, target, baselines, forecasts (early-stopped)
    validation_features: pd.DataFrame  # the same rows' inputs (to re-score a champion)
    metrics: dict[str, dict[str, float]]  # bucket label or "all" -> metrics

    @property
    def feature_columns(self) -> list[str]:
        return self.predictor.feature_columns


def usable_features(frame: pd.DataFrame) -> list[str]:
    """Every issue-frame feature; weather ones only where the region has any."""
    return [c for c in FEATURE_COLUMNS
            if c not in WEATHER_FEATURES or (c in frame and frame[c].notna().any())]


def trainable(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows a model learns from: a target, a level, and the anchor hour just before the issue
    (the only case `issuing.forecast_issues` serves)."""
    on_time = frame["data_until_utc"] == frame["issue_utc"] - pd.Timedelta(hours=1)
    return frame[frame["demand_mwh"].notna() & base_of(frame).notna() & on_time]


def evaluation(frame: pd.DataFrame, forecasts: pd.DataFrame) -> pd.DataFrame:
    keys = ["region", "issue_utc", "horizon_h", "period_utc", "demand_mwh", "df_mwh",
            "naive_mwh", "persistence_mwh"]
    return pd.concat([frame[keys], forecasts], axis=1)


def score(rows: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Median APE of the model and the baselines, P10-P90 coverage, per bucket and overall."""
    out = {}
    groups = [("all", rows)] + [(bucket_label(i), rows[bucket_of(rows["horizon_h"]) == i])
                                for i in range(len(BUCKETS))]
    for label, part in groups:
        ok = part["demand_mwh"].notna() & part["forecast_mwh"].notna()
        part = part[ok]
        out[label] = {
            "hours": float(len(part)),
            **{f"{who}_mdape": error_metrics(part["demand_mwh"], part[column])["mdape"]
               for who, column in (("model", "forecast_mwh"), ("df", "df_mwh"),
                                   ("naive", "naive_mwh"), ("persistence", "persistence_mwh"))},
            "coverage_p10_p90": interval_coverage(part["demand_mwh"], part["p10_mwh"],
                                                  part["p90_mwh"]),
        }
    return out


def train_horizon_model(frame: pd.DataFrame, config: HorizonConfig | None = None) -> HorizonModel:
    """Train one region's multi-horizon model on its `issue_frame` rows (ex-ante weather)."""
    config = config or HorizonConfig()
    regions = frame["region"].unique()
    if len(regions) != 1:
        raise ValueError(f"train_horizon_model expects one region, got {list(regions)}")
    region = str(regions[0])
    data = trainable(frame).sort_values(["issue_utc", "horizon_h"])
    if data.empty:
        raise InsufficientDataError(f"region {region}: no issue row with a target and an anchor")
    end = data["period_utc"].max() + timedelta(hours=1)
    for weeks in range(config.validation_weeks, 0, -1):
        validation_start = end - timedelta(weeks=weeks)
        train = data[data["period_utc"] < validation_start]
        valid = data[data["issue_utc"] >= validation_start]
        if train["period_utc"].nunique() >= config.min_train_hours:
            break
    train_hours, valid_hours = train["period_utc"].nunique(), valid["period_utc"].nunique()
    if train_hours < config.min_train_hours or valid_hours < config.min_validation_hours:
        raise InsufficientDataError(
            f"region {region}: {train_hours} training and {valid_hours} validation hours, need "
            f"{config.min_train_hours} and {config.min_validation_hours}; materialise more "
            "history for it (raw_demand)")
    features = usable_features(frame)
    spread = spread_of(valid)
    spread_typical = float(spread.median()) if spread.notna().any() else 1.0
    error = persistence_error_of(valid)
    error_typical = float(error.median()) if error.notna().any() else None
    # One booster per horizon bucket ("direct" models): a shared one spends its leaves on the
    # large day-ahead errors and is worse than persistence an hour ahead.
    early, deployed, offsets, best = {}, {}, {}, {}
    train_bucket, valid_bucket = bucket_of(train["horizon_h"]), bucket_of(valid["horizon_h"])
    calibrate = np.ones(len(valid), dtype=bool)
    if config.calibration_weeks:
        calibrate = (valid["issue_utc"] >= end - timedelta(weeks=config.calibration_weeks)
                     ).to_numpy()
    for b in range(len(BUCKETS)):
        rows = valid_bucket == b
        fit = _fit_bucket(train[train_bucket == b], valid[rows], features, config,
                          spread_typical, error_typical, calibrate[rows])
        if fit is not None:
            early[b], deployed[b], offsets[b], best[b] = fit
    if not early:
        raise InsufficientDataError(f"region {region}: no horizon bucket has training rows")
    early_predictor = HorizonPredictor(region, early, features, offsets, spread_typical,
                                       error_typical=error_typical)
    ratio = early_predictor.ratios(valid)  # the bands below change, the trees' ratios do not
    point = early_predictor.forecast_from(valid, ratio)
    per_horizon = horizon_offsets(valid[calibrate], point[calibrate], config.interval,
                                  spread_typical, error_typical)
    factor = (held_out_week_factor(valid[calibrate], point[calibrate], config.interval,
                                   spread_typical, error_typical)
              if config.held_out_weeks else {})
    if factor:
        logger.info("horizons %s: held-out week band factor per bucket %s", region,
                    {bucket_label(b): round(c, 3) for b, c in factor.items()})
    horizon_factor = {h: factor.get(int(b), 1.0)
                      for h, b in zip(per_horizon, bucket_of(list(per_horizon)), strict=True)}
    per_horizon = {h: (lo * horizon_factor[h], hi * horizon_factor[h])
                   for h, (lo, hi) in per_horizon.items()}
    offsets = {b: (lo * factor.get(b, 1.0), hi * factor.get(b, 1.0))
               for b, (lo, hi) in offsets.items()}
    early_predictor.offsets = offsets
    early_predictor.horizon_offsets = per_horizon
    forecasts = early_predictor.forecast_from(valid, ratio)
    predictor = HorizonPredictor(region, deployed, features, offsets, spread_typical,
                                 horizon_offsets=per_horizon, error_typical=error_typical)
    fit_end = end if config.refit else validation_start
    validation = evaluation(valid, forecasts)
    model = HorizonModel(
        region=region, predictor=predictor, config=config,
        train_start=train["issue_utc"].min().to_pydatetime(),
        train_end=validation_start.to_pydatetime(),
        validation_end=end.to_pydatetime(), fit_end=pd.Timestamp(fit_end).to_pydatetime(),
        train_rows=len(train), best_iterations=best, validation=validation,
        validation_features=valid[predictor.input_columns + ["issue_utc", "period_utc"]],
        metrics=score(validation))
    logger.info("horizons %s: %d training rows, rounds per bucket %s, validation median APE "
                "%.2f %%", region, len(train), best, model.metrics["all"]["model_mdape"])
    return model


HORIZON_BAND = 2  # neighbours each side whose residuals a horizon's offsets also use
MIN_HORIZON_ROWS = 50
MIN_SCALE_ROWS = 20  # a horizon's own residuals needed to measure its error scale


def scaled_residuals(valid: pd.DataFrame, forecasts: pd.DataFrame, spread_typical: float,
                     error_typical: float | None) -> np.ndarray:
    """Each row's ratio residual (demand / level - forecast / level) in its interval unit."""
    base = base_of(valid)
    ratio = forecasts["forecast_mwh"] / base
    unit = unit_of(valid, spread_typical, error_typical)
    return ((valid["demand_mwh"] / base - ratio) / unit).to_numpy()


def horizon_offsets(valid: pd.DataFrame, forecasts: pd.DataFrame,
                    interval: tuple[float, float], spread_typical: float,
                    error_typical: float | None = None) -> dict[int, tuple[float, float]]:
    """P10/P90 offsets per horizon from the validation ratio residuals (in `unit_of` units).

    Within a bucket the error grows with the horizon: one offset pair per bucket covered 96 % of
    hours 1 h ahead and 66 % 6 h ahead. Each horizon's residuals are divided by that horizon's
    own mean absolute residual (its error scale); the quantiles of these scaled residuals over
    horizons h - 2 .. h + 2 of the bucket (enough rows for stable tails), times h's scale, are
    h's offsets. Pooling the unscaled residuals instead gave 1 h ahead the larger errors of 2-3 h
    (89-94 % inside P10-P90 in the 4-window backtest). A horizon with fewer than MIN_SCALE_ROWS
    residuals of its own or MIN_HORIZON_ROWS in its neighbourhood keeps its bucket's offsets."""
    residual = scaled_residuals(valid, forecasts, spread_typical, error_typical)
    horizons = valid["horizon_h"].to_numpy()
    known = ~np.isnan(residual)
    scale: dict[int, float] = {}
    for h in np.unique(horizons[known]):
        own = np.abs(residual[known & (horizons == h)])
        if len(own) >= MIN_SCALE_ROWS and own.mean() > 0:
            scale[int(h)] = float(own.mean())
    row_scale = np.array([scale.get(int(h), np.nan) for h in horizons])
    scaled = residual / row_scale
    usable = ~np.isnan(scaled)
    buckets = bucket_of(horizons)
    out: dict[int, tuple[float, float]] = {}
    for h, h_scale in scale.items():
        near = usable & (np.abs(horizons - h) <= HORIZON_BAND) & (buckets
                                                                   == bucket_of(np.array([h]))[0])
        if near.sum() >= MIN_HORIZON_ROWS:
            lo, hi = (float(np.quantile(scaled[near], q)) * h_scale for q in interval)
            out[h] = (lo, hi)
    return out


def held_out_week_factor(valid: pd.DataFrame, forecasts: pd.DataFrame,
                         interval: tuple[float, float], spread_typical: float,
                         error_typical: float | None) -> dict[int, float]:
    """Per bucket, the factor on the per-horizon bands that makes them hold the interval's share
    of the residuals of a week they were not fitted on, over every week of `valid` (each week's
    rows against bands fitted on the other weeks). Bands fitted on a month and used on the next
    meet an error scale that moves from week to week; with a unit that tracks it only in part, a
    band that holds 80 % in-sample holds less out of it. Buckets with too few rows: factor 1."""
    residual = scaled_residuals(valid, forecasts, spread_typical, error_typical)
    horizons = valid["horizon_h"].to_numpy()
    issued = pd.to_datetime(valid["issue_utc"])
    week = ((issued - issued.min()) // pd.Timedelta(weeks=1)).to_numpy()
    need = np.full(len(valid), np.nan)  # the smallest factor whose held-out band holds the row
    for w in np.unique(week):
        out = week == w
        if out.all():
            continue
        fitted = horizon_offsets(valid[~out], forecasts[~out], interval, spread_typical,
                                 error_typical)
        low = np.array([fitted.get(int(h), (np.nan, np.nan))[0] for h in horizons[out]])
        high = np.array([fitted.get(int(h), (np.nan, np.nan))[1] for h in horizons[out]])
        r = residual[out]
        with np.errstate(divide="ignore", invalid="ignore"):
            row_need = np.where(r >= 0, r / high, r / low)
        row_need[~((low < 0) & (high > 0))] = np.nan
        need[out] = row_need
    share = interval[1] - interval[0]
    buckets = bucket_of(horizons)
    factors = {}
    for b in range(len(BUCKETS)):
        rows = (buckets == b) & np.isfinite(need)
        if rows.sum() >= MIN_HORIZON_ROWS:
            factors[b] = float(np.quantile(need[rows], share))
    return factors


def _fit_bucket(train: pd.DataFrame, valid: pd.DataFrame, features: list[str],
                config: HorizonConfig, spread_typical: float, error_typical: float | None,
                calibrate: np.ndarray) -> tuple[str, str, tuple[float, float], int] | None:
    """(early-stopped trees, deployed trees, P10/P90 offsets, rounds) of one horizon bucket."""
    if train.empty or valid.empty:
        return None
    y_train = train["demand_mwh"] / base_of(train)
    y_valid = valid["demand_mwh"] / base_of(valid)
    x_train, x_valid = inputs(train, features), inputs(valid, features)
    train_set = lgb.Dataset(x_train, y_train, free_raw_data=True)
    booster = lgb.train(
        config.params, train_set, num_boost_round=config.num_boost_round,
        valid_sets=[lgb.Dataset(x_valid, y_valid, reference=train_set)],
        callbacks=[lgb.early_stopping(config.early_stopping_rounds, verbose=False)])
    best = int(booster.best_iteration or booster.current_iteration())
    ratio = booster.predict(x_valid, num_iteration=best)
    unit = unit_of(valid, spread_typical, error_typical)
    residual = ((y_valid.to_numpy() - ratio) / unit)[calibrate]
    low, high = (float(np.quantile(residual, q)) for q in config.interval)
    early = booster.model_to_string(num_iteration=best)
    deployed = early
    if config.refit:
        rounds = max(1, round(best * (len(train) + len(valid)) / len(train)))
        deployed = lgb.train(config.params, lgb.Dataset(pd.concat([x_train, x_valid]),
                                                        pd.concat([y_train, y_valid])),
                             num_boost_round=rounds).model_to_string()
    return early, deployed, (low, high), best


def predict_horizons(model: HorizonModel | HorizonPredictor, frame: pd.DataFrame
                     ) -> pd.DataFrame:
    """forecast_mwh, p10_mwh, p90_mwh for the rows of `frame` (an `issue_frame` of the model's
    region), indexed like `frame`."""
    predictor = model.predictor if isinstance(model, HorizonModel) else model
    return predictor.predict(frame)


def training_issues(start: datetime, end: datetime, every_hours: int) -> pd.DatetimeIndex:
    """Issue hours from `start` to before `end`, every `every_hours` hours, counted back from
    the last one (so the newest issue is always in)."""
    last = pd.Timestamp(end).tz_convert("UTC").ceil("h") - pd.Timedelta(hours=1)
    first = pd.Timestamp(start).tz_convert("UTC").ceil("h")
    if last < first:
        return pd.DatetimeIndex([], tz="UTC")
    count = int((last - first) / pd.Timedelta(hours=every_hours)) + 1
    return pd.DatetimeIndex([last - pd.Timedelta(hours=every_hours * i)
                             for i in range(count)][::-1])


def day_ahead_slice(region: str, day: date, issue_local_hour: int = 9
                    ) -> tuple[pd.Timestamp, pd.DatetimeIndex]:
    """The day-ahead product of `region` for its local day `day`: the issue (`issue_local_hour`
    o'clock local time on the day before, in UTC) and the UTC hours of local day D, hour-ending
    as EIA labels them (local 01:00 .. 24:00; 23 or 25 hours on DST days)."""
    if not 0 < issue_local_hour < 24:
        raise ValueError(f"issue_local_hour={issue_local_hour}: the day-ahead issue is made "
                         "between 01:00 and 23:00 local time on the day before")
    tz = get_region(region).timezone
    wall = datetime.combine(day - timedelta(days=1), time(issue_local_hour))
    issue = pd.Timestamp(wall).tz_localize(tz, nonexistent="shift_forward").tz_convert("UTC")
    start = pd.Timestamp(day).tz_localize(tz).tz_convert("UTC")
    end = pd.Timestamp(day + timedelta(days=1)).tz_localize(tz).tz_convert("UTC")
    hours = pd.date_range(start + pd.Timedelta(hours=1), end, freq="h")
    return issue, hours


def horizon_model_name(region: str) -> str:
    return f"demand-horizons-{region}"
