"""Running a scenario through the services, and what came of it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from swapd.domain.errors import DomainError, InvalidInput
from swapd.ledger.model import Account, LedgerError, Transfer, TransferFlags
from swapd.readmodels.money import RiderBalance, rider_balance, transfers_of
from swapd.scenario.expect import Expect
from swapd.scenario.loader import Scenario, Step
from swapd.scenario.steps import Context
from swapd.store.database import Database, ManualClock
from swapd.store.ledger_check import CheckReport, check_ledger


def clock_for(loaded: Scenario) -> ManualClock:
    """The clock a scenario runs on: stopped at its start, moved only by its steps."""
    return ManualClock(loaded.start)


@dataclass
class StepRecord:
    number: int
    kind: str
    description: str
    note: str | None
    at: datetime  # the clock when the step ran
    result: dict[str, Any] = field(default_factory=dict)
    summary: str = ""
    failures: list[str] = field(default_factory=list)
    checks: int = 0  # values an expect step compared

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.number,
            "do": self.kind,
            "description": self.description,
            "note": self.note,
            "at": self.at.isoformat(),
            "ok": self.ok,
            "summary": self.summary,
            "result": self.result,
            "failures": self.failures,
        }


@dataclass(frozen=True, slots=True)
class TransferLine:
    """A transfer with its accounts named as people read them ("allowance R1", "cash")."""

    transfer: Transfer
    debit: str
    credit: str

    @property
    def phase(self) -> str:
        flags = self.transfer.flags
        if TransferFlags.PENDING in flags:
            return "pending"
        if TransferFlags.POST_PENDING in flags:
            return f"post of {self.transfer.pending_id}"
        if TransferFlags.VOID_PENDING in flags:
            return f"void of {self.transfer.pending_id}"
        return "posted"

    def to_json(self) -> dict[str, Any]:
        tr = self.transfer
        return {
            "id": tr.id,
            "key": tr.key,
            "code": tr.code.value,
            "ledger": tr.ledger,
            "debit_account": self.debit,
            "credit_account": self.credit,
            "debit_account_id": tr.debit_account_id,
            "credit_account_id": tr.credit_account_id,
            "amount": tr.amount,
            "phase": self.phase,
            "pending_id": tr.pending_id,
            "rider_id": tr.rider_id,
            "actor": tr.actor,
            "memo": tr.memo,
        }


@dataclass(frozen=True, slots=True)
class Failure:
    step: int | None  # None: the ledger check at the end
    kind: str
    message: str


@dataclass(frozen=True, slots=True)
class Outcome:
    scenario: Scenario
    steps: tuple[StepRecord, ...]
    balances: tuple[RiderBalance, ...]
    transfers: tuple[TransferLine, ...]
    ledger: CheckReport
    finished_at: datetime

    @property
    def failures(self) -> list[Failure]:
        found = [Failure(s.number, s.kind, m) for s in self.steps for m in s.failures]
        found += [Failure(None, "ledger", f"ledger check: {p}") for p in self.ledger.problems]
        return found

    @property
    def checks(self) -> int:
        return sum(s.checks for s in self.steps)

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_json(self) -> dict[str, Any]:
        report = self.ledger
        return {
            "ok": self.ok,
            "scenario": {
                "file": str(self.scenario.path),
                "title": self.scenario.title,
                "description": self.scenario.description,
                "start": self.scenario.start.isoformat(),
                "end": self.finished_at.isoformat(),
            },
            "checks": self.checks,
            "failures": [dataclasses.asdict(f) for f in self.failures],
            "steps": [s.to_json() for s in self.steps],
            "balances": [
                dataclasses.asdict(b) | {"packs_held": list(b.packs_held)} for b in self.balances
            ],
            "transfers": [t.to_json() for t in self.transfers],
            "ledger": {
                "ok": report.ok,
                "accounts": report.accounts,
                "transfers": report.transfers,
                "ledgers": {name: dataclasses.asdict(t) for name, t in report.ledgers.items()},
                "problems": report.problems,
            },
        }


def run(db: Database, loaded: Scenario) -> Outcome:
    """Run every step in order. A step the services refuse, or an expectation that does not hold,
    is recorded as a failure and the run goes on, so one report shows every problem."""
    clock = db.clock
    if not isinstance(clock, ManualClock):
        raise InvalidInput("a scenario needs a database on a ManualClock (see scenario.clock_for)")
    clock.set(loaded.start)
    ctx = Context(db, clock)
    records: list[StepRecord] = []
    last_result: dict[str, Any] | None = None
    for step in loaded.steps:
        record = StepRecord(step.number, step.kind, step.action.describe(), step.note, clock.now())
        if isinstance(step.action, Expect):
            record.checks = step.action.checks
            record.failures = step.action.check(ctx, last_result)
            passed = record.checks - len(record.failures)
            record.summary = f"{passed} of {record.checks} hold" if record.failures else "all hold"
        else:
            _act(ctx, step, record)
            if not step.action.moves_clock:
                last_result = record.result
        records.append(record)
    # The scenario's riders in the order it added them, then any the database had before
    # (a --database that is not fresh), so every balance the transfers touch is shown.
    riders = list(ctx.riders)
    riders += [r.id for r in db.read(lambda tx: tx.repo.riders()) if r.id not in riders]
    balances = tuple(rider_balance(db, r) for r in riders)
    transfers = transfers_of(db)
    with db.engine.connect() as connection:
        report = check_ledger(connection)
    return Outcome(loaded, tuple(records), balances, _named(db, transfers), report, clock.now())


def _act(ctx: Context, step: Step, record: StepRecord) -> None:
    assert not isinstance(step.action, Expect)
    try:
        done = step.action.run(ctx)
    except (DomainError, LedgerError) as error:
        # The services wrote nothing: record why, and let the expectations judge what follows.
        code = error.code
        record.result = {"error": code, "message": error.message}
        if step.error == code:
            record.summary = f"failed as expected ({code}): {error.message}"
        else:
            wanted = "" if step.error is None else f", expected {step.error}"
            record.failures.append(f"refused ({code}{wanted}): {error.message}")
        return
    record.result = done.result
    record.summary = done.summary
    if step.error is not None:
        record.failures.append(f"expected the step to fail with {step.error}, but it succeeded")


def _account_name(account: Account) -> str:
    return account.code.value if not account.owner else f"{account.code.value} {account.owner}"


def _named(db: Database, transfers: list[Transfer]) -> tuple[TransferLine, ...]:
    ids = sorted({tr.debit_account_id for tr in transfers} | {tr.credit_account_id for tr in transfers})
    names = db.read(lambda tx: {i: _account_name(tx.book.get(i)) for i in ids})
    return tuple(
        TransferLine(tr, names[tr.debit_account_id], names[tr.credit_account_id]) for tr in transfers
    )
