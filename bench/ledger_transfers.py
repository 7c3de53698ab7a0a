"""Ledger transfers per second through swapd's ledger (``swapd.store.ledger_book.Book``).

Each transfer is one database transaction through ``Database.write``, as the services run them:
the idempotency lookup, the two accounts read (the rider's locked on PostgreSQL), the transfer row,
the rider's balance update, and the operator account's update deferred to just before commit.

Phases, each on a fresh PostgreSQL database (``swapd_bench_ledger_<pid>``) and a SQLite file:
1. single: one writer, posted transfers rider allowance -> operator ``allowance_consumed``.
2. two-phase: one writer, a pending hold then its post (2 transactions, as a swap does).
3. concurrent: N writer processes, each on its own rider, all crediting the same operator account
   (the contention every swap has), for N in 2, 4, 8.

Reported: transfers per second, p50/p99/max latency of one transaction (milliseconds), and how
evenly the writers were served (``slowest_writer_share``: SQLite's lock is not fair, a writer can
wait seconds while others commit, which a percentile over all transactions hides).

``--smoke`` (for the tests) runs every phase for 0.05 s with writers started 0.25 s after they are
made (1.5 s otherwise): it proves that each phase measures and the ledger still checks, not how
fast.

With ``--pgledger-sql PATH`` (a local checkout of pgledger, or its ``pgledger.sql`` with the
``vendor/`` ULID functions beside it as in the repository; an SQL-only ledger:
one function call a transfer; https://github.com/pgr0ss/pgledger, not shipped here), the same
shape of work runs through pgledger on the same PostgreSQL server in the same run, for the
comparison: one client, then 4 client processes, each transferring from its own account to one
shared account (``pgledger_create_transfer`` in autocommit: one transaction a transfer).

Run: ``uv run python -m bench.ledger_transfers [--quick | --smoke] [--seconds S]
[--databases postgresql,sqlite] [--pgledger-sql PATH]``
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa

from bench._common import PG_ADMIN_URL, console, emit, load_average, percentile, pg_available
from swapd.ledger.model import AccountCode, TransferCode, TransferFlags, TransferRequest
from swapd.store.database import Database, Tx
from swapd.store.engine import make_engine, upgrade

NAME = "ledger_transfers"
LEDGER = "Wh"
RIDERS = 16  # one per writer, enough for the most writers a phase runs
ALLOWANCE_WH = 10**15
WRITERS = (2, 4, 8)
TARGET_SINGLE_PER_S = 500  # a swap is about 3 transfers; 500/s leaves room for ~150 swaps/s
# Writer processes start together this long after they are made: time to fork, connect and look
# up their accounts, so that none measures alone.
LEAD_S = 1.5
SMOKE_LEAD_S = 0.25
SMOKE_SECONDS = 0.05


def _rider(index: int) -> str:
    return f"BENCH{index:02d}"


def _setup(url: str) -> None:
    """Operator accounts and one funded allowance account per rider."""
    db = Database(make_engine(url))

    def work(tx: Tx) -> None:
        issued = tx.book.account(LEDGER, AccountCode.ALLOWANCE_ISSUED)
        tx.book.account(LEDGER, AccountCode.ALLOWANCE_CONSUMED)
        for index in range(RIDERS):
            allowance = tx.book.account(LEDGER, AccountCode.ALLOWANCE, _rider(index))
            tx.book.transfer(
                TransferRequest(
                    key=f"fund:{index}",
                    ledger=LEDGER,
                    debit_account_id=issued.id,
                    credit_account_id=allowance.id,
                    amount=ALLOWANCE_WH,
                    code=TransferCode.TOP_UP,
                    rider_id=_rider(index),
                )
            )

    db.write(work)
    db.dispose()


def _ids(db: Database, rider: str) -> tuple[int, int]:
    def work(tx: Tx) -> tuple[int, int]:
        allowance = tx.book.existing(LEDGER, AccountCode.ALLOWANCE, rider)
        consumed = tx.book.existing(LEDGER, AccountCode.ALLOWANCE_CONSUMED)
        assert allowance is not None and consumed is not None
        return allowance.id, consumed.id

    return db.read(work)


def _writer(url: str, phase: str, index: int, start_at: float, duration_s: float) -> list[float]:
    """Write transfers for ``duration_s`` from ``start_at``; the latency of each, in seconds."""
    db = Database(make_engine(url, pool_size=2))
    rider = _rider(index)
    allowance_id, consumed_id = _ids(db, rider)

    def request(
        n: int, flags: TransferFlags = TransferFlags.NONE, pending_id: int | None = None
    ) -> TransferRequest:
        return TransferRequest(
            key=f"{phase}:{index}:{n}",
            ledger=LEDGER,
            debit_account_id=allowance_id,
            credit_account_id=consumed_id,
            amount=1_700 if flags & TransferFlags.PENDING else 1_260,
            code=TransferCode.HOLD if flags & TransferFlags.PENDING else TransferCode.USAGE,
            flags=flags,
            pending_id=pending_id,
            rider_id=rider,
        )

    def once(work: Callable[[Tx], Any]) -> Any:
        began = time.perf_counter()
        result = db.write(work)
        latencies.append(time.perf_counter() - began)
        return result

    latencies: list[float] = []
    time.sleep(max(0.0, start_at - time.time()))
    deadline = time.perf_counter() + duration_s
    n = 0
    # At least one transfer, however late a busy machine lets the writer run: a phase never
    # reports nothing measured.
    while n == 0 or time.perf_counter() < deadline:
        n += 1
        if phase.startswith("two_phase"):
            pending = request(2 * n, TransferFlags.PENDING)
            hold = once(_transfer(pending))
            post = request(2 * n + 1, TransferFlags.POST_PENDING, hold.id)
            once(_transfer(post))
        else:
            single = request(n)
            once(_transfer(single))
    db.dispose()
    return latencies


def _transfer(request: Any) -> Callable[[Tx], Any]:
    """One ledger transfer as a unit of work (a function, not a lambda in a loop)."""

    def work(tx: Tx) -> Any:
        return tx.book.transfer(request)

    return work


def _phase(url: str, phase: str, writers: int, duration_s: float, lead_s: float) -> dict[str, float]:
    start_at = time.time() + (lead_s if writers > 1 else 0.0)
    if writers == 1:
        per_writer = [_writer(url, phase, 0, start_at, duration_s)]
    else:
        # Processes, not threads: the Python side of a transfer is real work and the GIL would
        # measure itself rather than the database.
        with ProcessPoolExecutor(writers, mp_context=multiprocessing.get_context("fork")) as pool:
            futures = [pool.submit(_writer, url, phase, i, start_at, duration_s) for i in range(writers)]
            per_writer = [future.result() for future in futures]
    latencies = sorted(value for values in per_writer for value in values)
    counts = [len(values) for values in per_writer]
    return {
        "transfers_per_s": round(len(latencies) / duration_s, 1),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "max_ms": round(latencies[-1] * 1000, 2) if latencies else 0.0,
        # Fairness: the least served writer's transfers over the mean (1.0 = all served alike). A
        # writer kept waiting for the lock adds one slow sample only, which p99 can hide.
        "slowest_writer_share": round(min(counts) * len(counts) / max(1, sum(counts)), 2),
    }


def _check(url: str) -> None:
    """The ledger must still reconcile after the run: every balance equals its transfers."""
    from swapd.store.ledger_check import check_ledger

    engine = make_engine(url)
    with engine.connect() as connection:
        report = check_ledger(connection)
    engine.dispose()
    if not report.ok:
        raise SystemExit(f"ledger check failed after the benchmark: {report.problems[:3]}")


def _run(kind: str, url: str, duration_s: float, lead_s: float) -> dict[str, float]:
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    _setup(url)
    metrics: dict[str, float] = {}
    phases = [("single", 1), ("two_phase", 1)] + [(f"concurrent_{n}w", n) for n in WRITERS]
    for phase, writers in phases:
        result = _phase(url, phase, writers, duration_s, lead_s)
        console.print(
            f"  {kind} {phase}: {result['transfers_per_s']:,.0f} transfers/s, "
            f"p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, max {result['max_ms']} ms, "
            f"slowest writer {result['slowest_writer_share']:.0%} of the mean"
        )
        metrics |= {f"{kind}_{phase}_{key}": value for key, value in result.items()}
    _check(url)
    return metrics


PGLEDGER_WRITERS = (1, 4)


def _pgledger_writer(
    url: str, from_id: str, to_id: str, start_at: float, duration_s: float
) -> list[float]:
    latencies: list[float] = []
    with psycopg.connect(url, autocommit=True) as connection:
        time.sleep(max(0.0, start_at - time.time()))
        deadline = time.perf_counter() + duration_s
        while not latencies or time.perf_counter() < deadline:
            began = time.perf_counter()
            connection.execute(
                "SELECT id FROM pgledger_create_transfer(%s, %s, %s)", (from_id, to_id, 1_260)
            ).fetchall()
            latencies.append(time.perf_counter() - began)
    return latencies


def _pgledger_scripts(path: str) -> list[Path]:
    """pgledger's SQL in its load order (its justfile): the vendored ULID functions, then
    pgledger.sql. ``path`` is the checkout or its pgledger.sql."""
    given = Path(path)
    root = given if given.is_dir() else given.parent
    ulid = root / "vendor" / "scoville-pgsql-ulid"
    scripts = [ulid / "ulid-to-uuid.sql", ulid / "uuid-to-ulid.sql", root / "pgledger.sql"]
    missing = [str(s) for s in scripts if not s.is_file()]
    if missing:
        raise SystemExit(f"--pgledger-sql: not found: {', '.join(missing)} (give pgledger's checkout)")
    return scripts


def _pgledger(sql_path: str, duration_s: float, lead_s: float) -> dict[str, float]:
    """pgledger's transfers per second on a database of its own, beside swapd's figures."""
    name = f"swapd_bench_pgledger_{os.getpid()}"
    with psycopg.connect(_plain(PG_ADMIN_URL), autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {name}")
    url = _plain(sa.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False))
    metrics: dict[str, float] = {}
    try:
        with psycopg.connect(url, autocommit=True) as connection:
            for script in _pgledger_scripts(sql_path):
                connection.execute(script.read_text("utf-8"))
            ids = [
                connection.execute(
                    "SELECT id FROM pgledger_create_account(%s, 'Wh')", (f"a{i}",)
                ).fetchone()[0]  # type: ignore[index]
                for i in range(max(PGLEDGER_WRITERS) + 1)
            ]
        shared = ids[-1]
        for writers in PGLEDGER_WRITERS:
            start_at = time.time() + (lead_s if writers > 1 else 0.0)
            with ProcessPoolExecutor(writers, mp_context=multiprocessing.get_context("fork")) as pool:
                futures = [
                    pool.submit(_pgledger_writer, url, ids[i], shared, start_at, duration_s)
                    for i in range(writers)
                ]
                per_writer = [future.result() for future in futures]
            latencies = sorted(value for values in per_writer for value in values)
            phase = "single" if writers == 1 else f"concurrent_{writers}w"
            rate = round(len(latencies) / duration_s, 1)
            p50_ms, p99_ms = (percentile(latencies, q) * 1000 for q in (0.5, 0.99))
            console.print(
                f"  pgledger {phase}: {rate:,.0f} transfers/s, p50 {p50_ms:.2f} ms, p99 {p99_ms:.2f} ms"
            )
            metrics[f"pgledger_{phase}_transfers_per_s"] = rate
            metrics[f"pgledger_{phase}_p50_ms"] = round(percentile(latencies, 0.5) * 1000, 2)
    finally:
        with psycopg.connect(_plain(PG_ADMIN_URL), autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    return metrics


def _plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ledger_transfers", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="a short smoke run (< 60 s)")
    parser.add_argument(
        "--smoke", action="store_true", help="the shortest run that measures every phase (tests)"
    )
    parser.add_argument(
        "--seconds", type=float, help="length of each phase (default 20, quick 2, smoke 0.05)"
    )
    parser.add_argument("--databases", default="postgresql,sqlite", help="comma-separated")
    parser.add_argument(
        "--pgledger-sql",
        metavar="PATH",
        help="a local checkout of pgledger (or its pgledger.sql): measure it beside swapd",
    )
    args = parser.parse_args(argv)
    duration_s = args.seconds or (SMOKE_SECONDS if args.smoke else 2.0 if args.quick else 20.0)
    lead_s = SMOKE_LEAD_S if args.smoke else LEAD_S
    kinds = [k.strip() for k in args.databases.split(",") if k.strip()]
    metrics: dict[str, Any] = {}
    notes = [f"{duration_s:g} s per phase; one transfer per transaction (Database.write)"]
    if "postgresql" in kinds:
        if not pg_available():
            notes.append("PostgreSQL unreachable: not measured")
        else:
            name = f"swapd_bench_ledger_{os.getpid()}"
            with psycopg.connect(_plain(PG_ADMIN_URL), autocommit=True) as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
                admin.execute(f"CREATE DATABASE {name}")
            try:
                console.print("[bold]ledger transfers on PostgreSQL[/]")
                url = sa.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
                metrics |= _run("pg", url, duration_s, lead_s)
            finally:
                with psycopg.connect(_plain(PG_ADMIN_URL), autocommit=True) as admin:
                    admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            if args.pgledger_sql:
                console.print("[bold]pgledger on the same PostgreSQL[/]")
                metrics |= _pgledger(args.pgledger_sql, duration_s, lead_s)
                for phase in ("single", "concurrent_4w"):
                    theirs = metrics[f"pgledger_{phase}_transfers_per_s"]
                    ours = metrics[f"pg_{phase}_transfers_per_s"]
                    metrics[f"pg_{phase}_vs_pgledger"] = round(ours / theirs, 2) if theirs else 0.0
                notes.append("pgledger from " + os.path.basename(args.pgledger_sql))
    if "sqlite" in kinds:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="swapd-bench-ledger-") as scratch:
            console.print("[bold]ledger transfers on SQLite[/]")
            metrics |= _run("sqlite", f"sqlite:///{scratch}/swapd.db", duration_s, lead_s)
    metrics |= load_average()
    targets = {f"{k}_single_transfers_per_s": f">= {TARGET_SINGLE_PER_S}" for k in ("pg", "sqlite")}
    # Level with pgledger (one function call a transfer) for the same work, where it was measured.
    targets |= {f"pg_{phase}_vs_pgledger": ">= 1" for phase in ("single", "concurrent_4w")}
    targets = {k: v for k, v in targets.items() if k in metrics}
    emit(NAME, metrics, targets, "; ".join(notes))


if __name__ == "__main__":
    main()
