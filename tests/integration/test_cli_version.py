"""``swapd --version`` prints the version and nothing else, as the real command."""

from __future__ import annotations

import subprocess
import sys

from swapd import __version__


def test_swapd_version_flag_prints_the_version() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "swapd.cli", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{__version__}\n"
