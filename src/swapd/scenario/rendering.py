"""The outcome of a scenario as Rich tables: steps, rider balances, transfers, failures."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from swapd.domain.quantities import format_money
from swapd.scenario.runner import Outcome
from swapd.scenario.steps import quantity


def render(console: Console, outcome: Outcome) -> None:
    scenario = outcome.scenario
    console.print(f"[bold]{escape(scenario.title)}[/] ({escape(str(scenario.path))})", highlight=False)
    if scenario.description:
        console.print(escape(scenario.description), highlight=False)
    console.print(_steps_table(outcome))
    console.print(_balances_table(outcome))
    console.print(_transfers_table(outcome))
    _print_verdict(console, outcome)


def _steps_table(outcome: Outcome) -> Table:
    steps = Table("#", "step", "what", "outcome", title="Steps", title_justify="left")
    for record in outcome.steps:
        what = escape(record.description)
        if record.note:
            what += f"\n[dim]{escape(record.note)}[/]"
        lines = [escape(record.summary)] if record.summary else []
        lines += [f"[red]{escape(message)}[/]" for message in record.failures]
        result = "\n".join(lines)
        status = record.kind if record.ok else f"[red]{record.kind}[/]"
        steps.add_row(str(record.number), status, what, result)
    return steps


def _balances_table(outcome: Outcome) -> Table:
    balances = Table(title="Rider balances", title_justify="left")
    balances.add_column("rider")
    balances.add_column("plan")
    # Amounts never wrap: "9,622" on one line and "KRW" on the next reads as two numbers.
    for name in ("posted", "held", "available", "prepaid"):
        balances.add_column(name, justify="right", no_wrap=True)
    # Only subscriptions with overage can owe money: the column is shown when someone does.
    owing = any(b.receivable_minor for b in outcome.balances)
    if owing:
        balances.add_column("owed", justify="right", no_wrap=True)
    balances.add_column("packs held")
    for b in outcome.balances:
        available = quantity(b.available_units, b.unit)
        if b.overdrawn_units:
            available += f"\n[red]overdrawn {quantity(b.overdrawn_units, b.unit)}[/]"
        cells = [
            escape(b.rider_id),
            escape(b.plan_id),
            quantity(b.posted_units, b.unit),
            quantity(b.held_units, b.unit),
            available,
            format_money(b.prepaid_minor, b.currency),
        ]
        if owing:
            cells.append(format_money(b.receivable_minor, b.currency))
        cells.append(escape(", ".join(b.packs_held)) or "-")
        balances.add_row(*cells)
    return balances


def _transfers_table(outcome: Outcome) -> Table:
    transfers = Table(title="Transfers", title_justify="left")
    transfers.add_column("id", justify="right")
    transfers.add_column("code")
    transfers.add_column("ledger")
    transfers.add_column("debit -> credit", overflow="fold")
    transfers.add_column("amount", justify="right", no_wrap=True)
    transfers.add_column("phase")
    # Keys have no spaces to wrap at: fold them rather than cut them off.
    transfers.add_column("key", overflow="fold")
    for line in outcome.transfers:
        tr = line.transfer
        transfers.add_row(
            str(tr.id),
            tr.code.value,
            escape(tr.ledger),
            escape(f"{line.debit} -> {line.credit}"),
            f"{tr.amount:,}",
            line.phase,
            escape(tr.key),
        )
    return transfers


def _print_verdict(console: Console, outcome: Outcome) -> None:
    report = outcome.ledger
    if report.ok:
        console.print(
            f"ledger check: [green]consistent[/] ({report.accounts:,} accounts, "
            f"{report.transfers:,} transfers)"
        )
    failures = outcome.failures
    for failure in failures:
        where = "end" if failure.step is None else f"step {failure.step} ({failure.kind})"
        console.print(
            f"[bold red]FAILED[/] [red]{escape(where)}: {escape(failure.message)}[/]", highlight=False
        )
    if failures:
        console.print(f"[bold red]{len(failures)} failure(s)[/]; {outcome.checks:,} values checked")
    else:
        console.print(f"[bold green]scenario ok[/]: {outcome.checks:,} values checked, all hold")
