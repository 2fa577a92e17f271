"""Benchmarks of the Synchroteam -> dlt -> DuckDB sync against the emulator over loopback (`make bench`).

Not part of `make test` or CI. See BENCHMARKS.md for the numbers and bench/run.py for the phases.
"""
