"""Benchmarks of AegisQueue: `python -m bench` runs them all.

Each measurement group starts its own database server, so one group's
writes never slow the next one down.
"""
