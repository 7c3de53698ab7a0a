"""A CliRunner that builds the click command tree of a Typer app once.

typer.testing.CliRunner turns the Typer app into click commands on every ``invoke``: for
swapd's fifty commands that is about a tenth of a second of signature inspection a call, most of
the time of a CLI test. The tree holds no state of a run, so one build serves every call."""

from __future__ import annotations

from typing import Any

import click
from click.testing import CliRunner as ClickCliRunner
from click.testing import Result
from typer.main import Typer, get_command

_built: dict[int, tuple[Typer, click.Command]] = {}


def command_of(app: Typer) -> click.Command:
    built = _built.get(id(app))
    if built is None or built[0] is not app:
        built = _built[id(app)] = (app, get_command(app))
    return built[1]


class CliRunner(ClickCliRunner):
    def invoke(self, app: Typer, args: Any = None, **kwargs: Any) -> Result:  # type: ignore[override]
        return super().invoke(command_of(app), args, **kwargs)
