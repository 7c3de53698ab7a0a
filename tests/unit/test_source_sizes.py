"""No module of swapd over 700 lines (migrations aside): small modules named for what they hold.
Function sizes are ruff's (PLR0912, PLR0915 in pyproject.toml)."""

from __future__ import annotations

from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "swapd"
MAX_LINES = 700


def test_no_module_is_over_700_lines() -> None:
    modules = [p for p in SRC.rglob("*.py") if "migrations" not in p.relative_to(SRC).parts]
    assert len(modules) > 100  # the walk found the package
    sizes = {str(p.relative_to(SRC)): len(p.read_text(encoding="utf-8").splitlines()) for p in modules}
    assert {name: lines for name, lines in sizes.items() if lines > MAX_LINES} == {}
