"""Fault drills for swapd (issue 5): a real ``swapd serve`` killed with SIGKILL under load, a
private PostgreSQL crashed under load, reconnect storms, and the checks that prove nothing
acknowledged was lost or applied twice.

The short versions run in the test suite (``tests/faults``); the long ones are a command:
``uv run python -m faults <scenario> [--rounds N]`` (results in RELIABILITY.md).
"""
