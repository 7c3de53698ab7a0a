"""Benchmarks of swapd: ``uv run python -m bench run`` runs them all and writes BENCHMARKS.md.

Each benchmark is a module ``bench.<name>`` runnable alone (``uv run python -m bench.<name>
[--quick]``) whose last stdout line is one JSON object: ``{"name", "metrics", "targets", "notes"}``.
"""
