"""Dagster only: assets, checks, schedules and jobs, run config, run metadata. `definitions.py` assembles them."""
