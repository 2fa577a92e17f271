"""Synchroteam to DuckDB through dlt and Dagster."""
