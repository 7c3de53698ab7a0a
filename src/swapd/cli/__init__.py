"""The ``swapd`` command line. Errors are one clear line on stderr and exit code 2, never a
traceback (with ``--json``, one JSON object; see swapd.cli.common).

Every module of this package is light at import time (typer, rich and the pure domain): the
server, the store and SQLAlchemy are imported by the commands that use them, so that
``swapd --version`` and the read-only commands start quickly. tests/integration/
test_cli_startup.py fails if importing this package pulls in a heavy one.
"""

from __future__ import annotations

from typing import Annotated

import click
import typer
from typer.core import TyperGroup

from swapd import __version__
from swapd.cli import archive, certificates, money, right_sizing, station_admin
from swapd.cli.common import out
from swapd.cli.demo import demo
from swapd.cli.operations import alerts, ledger_app, scenario_app, swap_app
from swapd.cli.packs import pack_app, pack_model_app
from swapd.cli.plans import plan_app
from swapd.cli.riders import card_app, rider_app
from swapd.cli.server import db_app, serve
from swapd.cli.statements import statements_app
from swapd.cli.stations import station_app
from swapd.cli.users import user_app
from swapd.sim.cli import sim_command

station_admin.register(station_app)
certificates.register(station_app)

SET_UP = "Network set-up"
RIDERS_AND_MONEY = "Riders and money"
OPERATIONS = "Operations"
SERVER = "Server"


# The order of ``swapd --help``: by panel, then as listed.
HELP_ORDER = (
    *("pack-model", "pack", "station", "plan"),
    *("rider", "card", "topup", "subscribe", "refund", "adjust", "settle", "statements"),
    *("swap", "alerts", "ledger", "scenario", "sim"),
    *("demo", "serve", "db", "user", "ca", "version"),
)


class _InOrder(TyperGroup):
    """Lists the commands in HELP_ORDER (Typer puts single commands before groups), so that
    ``--help`` shows the panels and their commands in that order."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        rank = {name: index for index, name in enumerate(HELP_ORDER)}
        return sorted(self.commands, key=lambda name: rank.get(name, len(rank)))


app = typer.Typer(
    cls=_InOrder,
    help="swapd: operation server for battery-swap networks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Right-sizing and the fleet policy: commands of the station, pack and rider groups.
station_app.command("pack-policy")(right_sizing.station_pack_policy)
station_app.command("right-sizing")(right_sizing.station_right_sizing)
pack_app.command("spread")(right_sizing.pack_spread)
rider_app.command("right-size")(right_sizing.rider_right_size)

app.add_typer(pack_model_app, name="pack-model", rich_help_panel=SET_UP)
app.add_typer(pack_app, name="pack", rich_help_panel=SET_UP)
app.add_typer(station_app, name="station", rich_help_panel=SET_UP)
app.add_typer(plan_app, name="plan", rich_help_panel=SET_UP)

app.add_typer(rider_app, name="rider", rich_help_panel=RIDERS_AND_MONEY)
app.add_typer(card_app, name="card", rich_help_panel=RIDERS_AND_MONEY)
app.command("topup", context_settings=money.NUMBERS, rich_help_panel=RIDERS_AND_MONEY)(money.topup)
app.command("subscribe", rich_help_panel=RIDERS_AND_MONEY)(money.subscribe)
app.command("refund", context_settings=money.NUMBERS, rich_help_panel=RIDERS_AND_MONEY)(money.refund)
app.command("adjust", context_settings=money.NUMBERS, rich_help_panel=RIDERS_AND_MONEY)(money.adjust)
app.command("settle", context_settings=money.NUMBERS, rich_help_panel=RIDERS_AND_MONEY)(money.settle)
app.add_typer(statements_app, name="statements", rich_help_panel=RIDERS_AND_MONEY)

app.add_typer(swap_app, name="swap", rich_help_panel=OPERATIONS)
app.command("alerts", rich_help_panel=OPERATIONS)(alerts)
app.add_typer(ledger_app, name="ledger", rich_help_panel=OPERATIONS)
app.command("archive", rich_help_panel=OPERATIONS)(archive.archive)
app.add_typer(scenario_app, name="scenario", rich_help_panel=OPERATIONS)
app.command("sim", rich_help_panel=OPERATIONS)(sim_command)

app.command("demo", rich_help_panel=SERVER)(demo)
app.command("serve", rich_help_panel=SERVER)(serve)
app.add_typer(db_app, name="db", rich_help_panel=SERVER)
app.add_typer(user_app, name="user", rich_help_panel=SERVER)
app.add_typer(certificates.ca_app, name="ca", rich_help_panel=SERVER)


@app.command(rich_help_panel=SERVER)
def version() -> None:
    """Print the version."""
    out.print(__version__)


def _print_version(given: bool) -> None:
    if given:
        out.print(__version__)
        raise typer.Exit()


@app.callback()
def _options(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """swapd: operation server for battery-swap networks."""


def main() -> None:
    app()
