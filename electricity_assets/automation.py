"""Declarative automation: late inputs re-issue what used them.

The hourly schedule and the Kafka sensor materialise the *new* hours. When an *older* input hour
changes (a gap filled late, a correction streamed, a backfill), Dagster itself re-materialises
every feature and forecast partition that read it, through the assets' partition mappings
(`demand_features` reads raw demand up to 336 h back, an issue reads its features): the
condition below on `demand_features`, `weather_features` and `demand_forecasts`, evaluated by
`reissue_after_late_inputs` (sensors.py).

A partition is re-materialised when an upstream partition it depends on was updated since it
was last handled, it was materialised before (new hours are the schedule's and the stream's),
its hour has ended on the data clock (offline: the replay clock, which may run past the last
partition: the end of the replayed data) and lies within REISSUE_LOOKBACK of it (a backfill of
history does not re-issue years of forecast vintages), and neither it nor its inputs are being
written. A new champion (`trained_models`) re-issues only the newest issue: what is served; a
refit of the weather statistics re-issues nothing (backfill a window to recompute it).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import dagster as dg
import pandas as pd

from electricity_assets import replay_clock

REISSUE_LOOKBACK = timedelta(days=14)


def ended_partition_keys(partitions_def: dg.TimeWindowPartitionsDefinition, hours: int,
                         now: datetime, lead: timedelta = timedelta(0)) -> list[str]:
    """Keys of the partitions whose time window ends by the data clock `now` + `lead`, at
    most `hours` back (hourly or daily partitions alike). A lead makes a partition due before
    its window ends (the day-ahead product of day D is due on D-1)."""
    now = now + lead
    if partitions_def.end is not None:  # offline the partitions end with the replayed data
        now = min(now, partitions_def.end)
    start = max(now - timedelta(hours=hours) - timedelta(days=1),
                pd.Timestamp(partitions_def.start).to_pydatetime())
    if start >= now:
        return []
    keys = partitions_def.get_partition_keys_in_time_window(dg.TimeWindow(start, now))
    oldest = now - timedelta(hours=hours)
    return [k for k in keys
            if oldest < partitions_def.time_window_for_partition_key(k).end <= now]


class EndedOnDataClock(dg.AutomationCondition):
    """Time partitions that have ended on the data clock, at most `hours` back."""

    def __init__(self, hours: int, lead: timedelta = timedelta(0)) -> None:
        self.hours = hours
        self.lead = lead

    @property
    def name(self) -> str:
        lead = f", {self.lead} ahead" if self.lead else ""
        return f"ended_on_data_clock(last {self.hours} h{lead})"

    def evaluate(self, context: dg.AutomationContext) -> dg.AutomationResult:
        partitions_def = context.partitions_def
        if context.candidate_subset.is_empty or not isinstance(
                partitions_def, dg.TimeWindowPartitionsDefinition):
            return dg.AutomationResult(context, true_subset=context.get_empty_subset())
        now = pd.Timestamp(replay_clock.current_time()).tz_convert("UTC").to_pydatetime()
        keys = ended_partition_keys(partitions_def, self.hours, now, self.lead)
        return dg.AutomationResult(
            context, true_subset=context.candidate_subset.compute_intersection_with_partition_keys(
                set(keys)))


MODEL = dg.AssetSelection.assets("trained_models")
# A refit of the weather statistics applies from the next materialisation on: re-issuing past
# hours with statistics fitted after them would rewrite forecast vintages with later knowledge.
WEATHER_STATISTICS = dg.AssetSelection.assets("weather_station_offsets", "weather_normalisation")


def reissue_on_late_inputs() -> dg.AutomationCondition:
    """The condition of the feature and forecast assets (see the module docstring)."""
    # Not any_deps_updated(): it ignores an input updated by a run that selected this asset by
    # name (a UI or CLI materialisation of raw_demand and demand_forecasts over hour J), whose
    # later issues J+1..J+360 read J too. A partition the same run wrote after its input is
    # reset by since_last_handled (it was updated later than the input).
    updated = dg.AutomationCondition.any_deps_match(dg.AutomationCondition.newly_updated())
    data_changed = updated.ignore(MODEL | WEATHER_STATISTICS).with_label(
        "an input hour it read changed")
    model_changed = (updated.allow(MODEL) & EndedOnDataClock(1)).with_label(
        "a new model, newest issue")
    return (
        EndedOnDataClock(int(REISSUE_LOOKBACK / timedelta(hours=1)))
        & ~dg.AutomationCondition.missing()
        & (data_changed | model_changed).since_last_handled()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
    ).with_label("reissue_on_late_inputs")


# Day D's product is due once its issue (09:00 local on D-1, 13:00-17:00 UTC) is: 30 h before
# D ends (UTC, 18:00 on D-1), with an hour to spare for the westernmost US zones.
DAY_AHEAD_LEAD = timedelta(hours=30)


def day_ahead_when_issued() -> dg.AutomationCondition:
    """The day-ahead product of a day: written once the day's issue is in (the issue partitions
    of D-1 updated), rewritten when they are re-issued; days within the re-issue lookback."""
    updated = dg.AutomationCondition.any_deps_match(dg.AutomationCondition.newly_updated())
    return (
        EndedOnDataClock(int(REISSUE_LOOKBACK / timedelta(hours=1)), DAY_AHEAD_LEAD)
        & updated.since_last_handled()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
    ).with_label("day_ahead_when_issued")
