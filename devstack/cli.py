"""The local stack's entry points: `electricity-stack` (pyproject [project.scripts]) and
`./dev dagster` (`python -m devstack.cli dagster ...`)."""

from __future__ import annotations


def stack() -> None:
    """`electricity-stack`: start broker, dagster dev, dashboard and MLflow UI together."""
    from devstack.stack import main

    main()


# Warnings every `./dev dagster` call printed, none of them actionable here: the classic commands
# the README uses are "superseded" by `dg`, which needs a dg project this repository is not, and
# the code location uses two beta parameters on purpose. Matched by message prefix (as
# PYTHONWARNINGS does), so the run workers and code servers the CLI starts are quiet too; any
# other warning, and every error, still shows.
QUIET_WARNINGS = (
    "Function `asset_materialize_command` is superseded",
    "Function `job_execute_command` is superseded",
    "Function `definitions_validate_command` is superseded",
    "Function `dev_command` is superseded",
    "Parameter `backfill_policy` of function `asset` is currently in beta",
    "Parameter `use_user_code_server` of initializer `AutomationConditionSensorDefinition",
)


def quiet_warnings_env(current: str = "") -> str:
    """PYTHONWARNINGS ignoring QUIET_WARNINGS; filters already set come later, so they win."""
    return ",".join([*(f"ignore:{message}" for message in QUIET_WARNINGS),
                     *([current] if current else [])])


def dagster(argv: list[str] | None = None) -> None:
    """The `dagster` CLI with the stack's Dagster settings (`./dev dagster ...`), e.g. a backfill
    from the command line with batched event writes."""
    import os
    import shutil
    import sys

    from electricity_assets import settings

    args = sys.argv[2:] if argv is None else argv
    env = {**settings.dagster_process_env(), "DAGSTER_HOME": str(settings.dagster_home())}
    env["PYTHONWARNINGS"] = quiet_warnings_env(env.get("PYTHONWARNINGS", ""))
    executable = shutil.which("dagster", path=os.path.dirname(sys.executable)) or "dagster"
    os.execvpe(executable, [executable, *args], env)


if __name__ == "__main__":
    import sys

    {"dagster": dagster}[sys.argv[1]]()
