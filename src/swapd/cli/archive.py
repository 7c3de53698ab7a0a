"""``swapd archive``: old months of the history tables to files (swapd.store.archive)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer

from swapd.cli.common import DatabaseOption, JsonOption, fail, out, print_json, run


def archive(
    before: Annotated[
        str, typer.Option("--before", help="Archive every month before this one (YYYY-MM).")
    ],
    out_dir: Annotated[
        Path, typer.Option("--out", help="Directory for the CSV files and manifest.json.")
    ],
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Write whole months of transfers and station events older than --before to files, carry
    the archived balances as checkpoints, and take the months out of the database."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from swapd.store.archive import archive as archive_months
    from swapd.store.engine import make_engine
    from swapd.store.partitions import Month

    try:
        month = Month.parse(before)
    except ValueError as error:
        fail(str(error))

    def action() -> Any:
        engine = make_engine(database)
        try:
            with Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                TextColumn("{task.completed:,} rows"),
                TimeElapsedColumn(),
                console=out,
                transient=True,
                disable=as_json,
            ) as progress:
                tasks: dict[str, Any] = {}

                def step(what: str, rows: int) -> None:
                    if what not in tasks:
                        tasks[what] = progress.add_task(what, total=None)
                    progress.update(tasks[what], completed=rows)

                return archive_months(engine, month, out_dir, progress=step)
        finally:
            engine.dispose()

    report = run(action)
    if as_json:
        print_json(
            {
                "archived": [asdict(f) for f in report.archived],
                "already_archived": report.already,
                "checkpointed_accounts": report.checkpointed_accounts,
            }
        )
        return
    for month_file in report.archived:
        out.print(
            f"{month_file.table} {month_file.month}: {month_file.row_count:,} rows to "
            f"{out_dir / month_file.file} (sha256 {month_file.sha256[:12]}…)",
            highlight=False,
            soft_wrap=True,
        )
    if report.already:
        out.print(f"already archived: {', '.join(report.already)}", highlight=False)
    if not report.archived and not report.already:
        out.print(f"nothing to archive before {month}", highlight=False)
    elif report.archived:
        out.print(f"{report.checkpointed_accounts:,} account checkpoints updated", highlight=False)
