"""BENCHMARKS.md is rendered from the benchmarks' results, and ``bench run --only`` replaces only
the sections and target rows of the benchmarks it ran, keeping the others as they were."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bench import report
from bench.__main__ import module_arguments

ORDER = ("swaps", "raw_limit", "startup")
LOAD = {"loadavg_1m": 0.5, "loadavg_5m": 0.4, "loadavg_15m": 0.3}


def _result(name: str, value: float, target: str = ">= 500") -> dict[str, Any]:
    return {
        "name": name,
        "metrics": {f"{name}_per_s": value, "loadavg_1m": 0.1},
        "targets": {f"{name}_per_s": target},
        "notes": f"what {name} measures",
        "command": f"uv run python -m bench.{name}",
        "elapsed_s": 12.0,
        "exit_code": 0,
    }


def _run(hour: int, only: tuple[str, ...] = (), cpu: str = "first cpu") -> report.Run:
    started = datetime(2026, 12, 7, hour, 0, tzinfo=UTC)
    return report.Run(started=started, load=LOAD, facts={"cpu": cpu}, only=only)


def _full_file() -> str:
    return report.render([_result("swaps", 600.0), _result("startup", 700.0)], _run(1))


def test_a_rerun_replaces_its_section_and_rows_and_keeps_the_others() -> None:
    before = _full_file()
    fresh = report.render([_result("startup", 400.0)], _run(2, only=("startup",), cpu="other cpu"))
    after = report.merge(before, fresh, rerun=["startup"], order=ORDER)
    old, new = report.parse(before), report.parse(after)

    assert new.blocks["swaps"] == old.blocks["swaps"]
    assert new.target_rows()["swaps"] == old.target_rows()["swaps"]
    assert "| startup_per_s | 400.0 | >= 500 | no |" in new.blocks["startup"]
    assert "| startup_per_s | 700.0 |" not in after
    assert new.target_rows()["startup"] == ["| startup | startup_per_s >= 500 | no |"]
    assert "Run on its own (`uv run python -m bench run --only startup`, 2026-12-07 02:00 UTC)" in after
    # The preamble and the machine are those of the full run the kept sections come from.
    assert new.preamble == old.preamble
    assert new.blocks[report.MACHINE] == old.blocks[report.MACHINE]
    assert new.benchmarks() == ["swaps", "startup"]


def test_a_rerun_of_a_benchmark_missing_from_the_file_adds_it_in_run_order() -> None:
    fresh = report.render([_result("raw_limit", 0.6, ">= 0.5")], _run(2, only=("raw_limit",)))
    after = report.parse(report.merge(_full_file(), fresh, rerun=["raw_limit"], order=ORDER))

    assert after.benchmarks() == ["swaps", "raw_limit", "startup"]
    assert list(after.target_rows()) == ["swaps", "raw_limit", "startup"]


def test_merging_with_nothing_rerun_gives_the_file_back() -> None:
    before = _full_file()
    assert report.merge(before, report.render([], _run(3)), rerun=[], order=ORDER) == before


def test_the_rendered_file_holds_no_history_and_links_to_it() -> None:
    text = _full_file()
    headings = ["How to run", "Machine", "Targets", "swaps", "startup", "See also"]
    assert [*report.parse(text).blocks] == headings
    assert "docs/perf-log.md" in text
    assert "What was fixed" not in text and "###" not in text


def test_a_heading_inside_a_code_block_does_not_start_a_section() -> None:
    text = _full_file().replace("```sh\n", "```sh\n## not a heading\n", 1)
    assert "not a heading" not in report.parse(text).blocks


def test_the_swaps_rate_is_read_back_for_raw_limit() -> None:
    text = report.render([_result("swaps", 600.0)], _run(1))
    assert report.metric(text, "swaps", "swaps_per_s") == 600.0
    assert report.metric(text, "swaps", "no_such_metric") is None
    assert report.metric(text, "startup", "startup_per_s") is None


def test_bench_run_names_pgledgers_sql_to_the_ledger_benchmark_alone() -> None:
    rates = {"sqlite": 600.0}
    assert module_arguments("ledger_transfers", rates, "/src/pgledger") == [
        "--pgledger-sql",
        "/src/pgledger",
    ]
    assert module_arguments("ledger_transfers", rates, None) == []
    assert module_arguments("swaps", rates, "/src/pgledger") == []
    assert module_arguments("raw_limit", rates, "/src/pgledger") == ["--swapd-sqlite", "600.0"]
