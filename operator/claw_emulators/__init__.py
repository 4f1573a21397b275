"""Emulators of the Kubernetes API and Railway's GraphQL API, for tests, benchmarks and `make run`.

Shipped behind the `emulators` extra. Never imported by `claw_operator`, and never
importing it: the operator is tested against these exactly as it runs against the real
services."""
