"""The producers' entry points named in pyproject [project.scripts]; each delegates to its module.

The local stack's (`electricity-stack`, `./dev dagster`) are in `devstack.cli`.
"""

from __future__ import annotations


def replay() -> None:
    """`electricity-replay`: publish the replay history to Kafka as if live."""
    from electricity_assets.streaming.producer_cli import replay_main

    replay_main()


def live() -> None:
    """`electricity-live`: poll the EIA and Open-Meteo APIs and publish new hours to Kafka."""
    from electricity_assets.streaming.producer_cli import live_main

    live_main()
