"""Maintenance scripts run by hand from the repository root (``uv run python -m scripts.NAME``)."""
