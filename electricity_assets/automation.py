"""Declarative automation: late inputs re-issue what used them.

The hourly schedule and the Kafka sensor materialise the *new* hours. When an *older* input hour
changes (a gap filled late, a correction streamed, a backfill), Dagster itself re-materialises
every feature and forecast partition that read it, through the assets' partition mappings
(`demand_features` reads raw demand up to 336 h back, an issue reads its features): the
condition below on `demand_features`, `weather_features` and `demand_forecasts`, evaluated by
`reissue_after_late_inputs` (sensors.py).

A partition is re-materialised when an upstream partition it depends on was updated since it
was last handled, it was materialised before (new hours are the schedule's and the stream's),
its hour has ended on the data clock (offline: the replay clock; the hourly partitions run to the
wall clock, years past the replayed data) and lies within REISSUE_LOOKBACK of it (a backfill of
history does not re-issue years of forecast vintages), and neither it nor its inputs are being
written. A new champion (`trained_models`) re-issues only the newest issue: what is served.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import dagster as dg
import pandas as pd

from electricity_assets import replay_clock
from electricity_assets.partitions import hourly_partitions

REISSUE_LOOKBACK = timedelta(days=14)


def data_clock_window(hours: int, now: datetime) -> dg.PartitionKeyRange | None:
    """The hourly partition keys of the `hours` hours that have ended by the data clock `now`."""
    last = replay_clock.latest_complete_hour(now)
    first = max(last - timedelta(hours=hours - 1), pd.Timestamp(hourly_partitions.start))
    if last < first:
        return None
    fmt = hourly_partitions.fmt
    return dg.PartitionKeyRange(first.strftime(fmt), last.strftime(fmt))


class EndedOnDataClock(dg.AutomationCondition):
    """Hourly partitions whose hour has ended on the data clock, at most `hours` back."""

    def __init__(self, hours: int) -> None:
        self.hours = hours

    @property
    def name(self) -> str:
        return f"ended_on_data_clock(last {self.hours} h)"

    def evaluate(self, context: dg.AutomationContext) -> dg.AutomationResult:
        window = data_clock_window(self.hours, replay_clock.current_time())
        if window is None or context.candidate_subset.is_empty:
            return dg.AutomationResult(context, true_subset=context.get_empty_subset())
        in_window = context.asset_graph_view.get_entity_subset_in_range(context.key, window)
        return dg.AutomationResult(
            context, true_subset=context.candidate_subset.compute_intersection(in_window))


MODEL = dg.AssetSelection.assets("trained_models")


def reissue_on_late_inputs() -> dg.AutomationCondition:
    """The condition of the feature and forecast assets (see the module docstring)."""
    # Not any_deps_updated(): it ignores an input updated by a run whose selection holds this
    # asset at all, so a stream run that corrects hour J and recomputes features J would not
    # re-issue J+1..J+336. A partition the same run wrote after its input is reset by
    # since_last_handled (it was updated later than the input).
    updated = dg.AutomationCondition.any_deps_match(dg.AutomationCondition.newly_updated())
    data_changed = updated.ignore(MODEL).with_label("an input hour it read changed")
    model_changed = (updated.allow(MODEL) & EndedOnDataClock(1)).with_label(
        "a new model, newest issue")
    return (
        EndedOnDataClock(int(REISSUE_LOOKBACK / timedelta(hours=1)))
        & ~dg.AutomationCondition.missing()
        & (data_changed | model_changed).since_last_handled()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
    ).with_label("reissue_on_late_inputs")
