"""Scenarios: scripted sequences of network set-up, payments, swaps and expectations, run
through the services (never SQL) on a manual clock. ``swapd scenario run FILE`` runs one.

A scenario is a TOML file::

    title = "E1, prepaid energy"
    start = 2026-11-02T09:00:00Z          # the clock at the first step (needs an offset)

    [[step]]
    do = "top_up"                         # what the step does
    rider = "R1"
    amount_minor = 10000
    ref = "pay-1"

    [[step]]
    do = "expect"
    balance = { rider = "R1", posted_units = 33333, held_units = 0 }

Steps: pack_model, plan, station, pack, rider, token, top_up, subscribe, close_cycle, refund,
adjust, at, advance, authorize, battery_in, battery_out, timeout, expect. See
``swapd.scenario.steps`` for each step's fields and ``swapd.scenario.expect`` for expectations.
Any action step may say ``error = "conflict"`` (a domain or ledger error code) when it is meant to
be refused, and any step may carry a ``note``.
"""

from __future__ import annotations

from swapd.scenario.loader import Scenario, Step, load
from swapd.scenario.rendering import render
from swapd.scenario.runner import Outcome, StepRecord, clock_for, run

__all__ = ["Outcome", "Scenario", "Step", "StepRecord", "clock_for", "load", "render", "run"]
