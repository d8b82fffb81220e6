"""The HTTP service room: PNG charts, published tables as JSON/CSV, pipeline status and refresh.

It imports core (and Dagster only inside service.dagster_bridge), never assets, orchestration, ml or charts.
"""
