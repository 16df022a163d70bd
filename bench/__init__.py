"""Benchmarks of multipar-console: every performance goal measured beside its naive baseline.

Run ``python -m bench`` (see ``bench/__main__.py``). Benchmarks print figures; they are not
tests and fail nothing.
"""
