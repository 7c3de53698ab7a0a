"""bench.swaps reads the server's own decision times of the open-loop phase from two scrapes of
its cumulative histogram."""

from __future__ import annotations

from bench.swaps import _server_side

INF = float("inf")


def test_one_phase_is_the_difference_of_two_scrapes() -> None:
    before = {0.005: 100.0, 0.01: 100.0, 0.02: 100.0, 0.05: 1000.0, INF: 1000.0}
    # This phase: 1,000 decisions, 900 within 5 ms, 985 within 20 ms, the rest within 50 ms.
    after = {0.005: 1000.0, 0.01: 1050.0, 0.02: 1085.0, 0.05: 2000.0, INF: 2000.0}
    side = _server_side(before, after)
    assert side["server_decisions_within_20ms"] == 0.985
    assert side["server_decision_p99_at_most_ms"] == 50.0


def test_the_p99_bucket_is_the_first_that_holds_99_percent() -> None:
    after = {0.001: 10.0, 0.0025: 990.0, 0.005: 999.0, 0.01: 1000.0, INF: 1000.0}
    assert _server_side({}, after)["server_decision_p99_at_most_ms"] == 2.5


def test_no_decisions_in_the_phase_gives_no_numbers() -> None:
    same = {0.02: 5.0, INF: 5.0}
    assert _server_side(same, same) == {}


def test_within_the_target_counts_only_buckets_known_to_be_within_it() -> None:
    # No bucket ends at 20 ms: what lies between 10 and 50 ms may be above it, so it is left out.
    after = {0.01: 600.0, 0.05: 990.0, INF: 1000.0}
    assert _server_side({}, after)["server_decisions_within_20ms"] == 0.6
