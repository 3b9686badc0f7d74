"""Thin entry points: ``python -m jobs.NAME``."""
