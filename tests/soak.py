"""Sizes for the soak tests: the long runs (kill -9 rounds, reconnect storms, a simulated day,
API fuzzing, random ledger sequences) that prove the most and cost the most.

``uv run pytest`` (and so CI) runs every soak at its small size, which still exercises each
path the soak is there for; ``SWAPD_SOAK=full uv run pytest -m soak`` runs them at full size.
The full runs of the fault drills are ``uv run python -m faults`` (RELIABILITY.md)."""

from __future__ import annotations

import os

FULL = os.environ.get("SWAPD_SOAK", "").strip().lower() == "full"


def size(small: int, full: int) -> int:
    """``full`` under SWAPD_SOAK=full, else ``small``."""
    return full if FULL else small
