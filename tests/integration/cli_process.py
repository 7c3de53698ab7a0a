"""Running the real ``swapd`` command (the console script of this environment) in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SWAPD = Path(sys.executable).with_name("swapd")
COMMAND_TIMEOUT_S = 120.0  # a loaded 2-core machine


def swapd(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``swapd ARGS``, with no SWAPD_* setting from the test's own environment (``env`` added),
    120 columns wide."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SWAPD_")}
    environment.update(env or {})
    environment["COLUMNS"] = "120"
    return subprocess.run(
        [str(SWAPD), *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )


def succeeded(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout
