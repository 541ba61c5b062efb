"""The local stack: tooling that runs the platform on one machine, not part of the code location.

`stack` (`electricity-stack`: broker, `dagster dev`, dashboard, MLflow UI), `seed` (the first
run's history, through real Dagster runs), `postgres` (a local PostgreSQL for Dagster's storage),
`instance_storage` (the sqlite instance storage `dagster.yaml` names) and `cli` (the stack's
entry points, `./dev dagster`). `electricity_assets` never imports this package.
"""
