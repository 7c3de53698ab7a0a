"""Accounts, transfers and the rules a transfer must satisfy. Pure: no I/O.

Amounts are positive integers in the ledger's unit (money minor units, Wh, s, count), at most
``MAX_TRANSFER_AMOUNT`` each; no column of an account ever passes ``MAX_ACCOUNT_COLUMN_AMOUNT``, so
every balance stays an exact 64-bit integer in any database (``quantities`` says why). A ledger is
named after its unit or currency ("Wh", "s", "count", "KRW"); a transfer stays inside one ledger.
A *pending* transfer reserves its amount on both accounts; a later *post* moves up to that amount
for good and releases the rest, a *void* releases it all. Each pending transfer is resolved once.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from swapd.domain.quantities import MAX_ACCOUNT_COLUMN_AMOUNT, MAX_TRANSFER_AMOUNT

# The owner of the operator's accounts (revenue, allowance issued and consumed, ...): riders own
# theirs by rider id, the operator by the empty string.
OPERATOR = ""


class LedgerError(Exception):
    """A transfer the ledger refuses. ``code`` is stable (TigerBeetle's result names where they fit)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class AccountCode(enum.StrEnum):
    # Operator side, one account per ledger.
    CASH = "cash"  # money received from payment providers, less refunds paid out
    REVENUE = "revenue"  # money recognised as earned
    ALLOWANCE_ISSUED = "allowance_issued"  # every unit of allowance ever granted comes from here
    ALLOWANCE_CONSUMED = "allowance_consumed"  # metered usage
    ALLOWANCE_WITHDRAWN = "allowance_withdrawn"  # expired, refunded or adjusted away
    # Rider side, one account per rider and ledger.
    PREPAID = "prepaid"  # money paid in advance and not yet earned (a liability)
    RECEIVABLE = "receivable"  # money the rider owes (subscription overage)
    ALLOWANCE = "allowance"  # units the rider may still use
    OVERDRAWN = "overdrawn"  # units used beyond the allowance (time plans), settled by top-ups


RIDER_CODES = frozenset(
    {AccountCode.PREPAID, AccountCode.RECEIVABLE, AccountCode.ALLOWANCE, AccountCode.OVERDRAWN}
)


class AccountFlags(enum.IntFlag):
    NONE = 0
    DEBITS_MUST_NOT_EXCEED_CREDITS = 1  # credit-balance accounts that must not go below zero
    CREDITS_MUST_NOT_EXCEED_DEBITS = 2  # debit-balance accounts that must not go below zero


ACCOUNT_FLAGS: dict[AccountCode, AccountFlags] = {
    AccountCode.PREPAID: AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
    AccountCode.ALLOWANCE: AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
    AccountCode.RECEIVABLE: AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS,
    AccountCode.OVERDRAWN: AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS,
}


class TransferCode(enum.StrEnum):
    """The reason a transfer exists."""

    TOP_UP = "top_up"
    SUBSCRIPTION_FEE = "subscription_fee"
    HOLD = "hold"  # pending: a pack handed over
    USAGE = "usage"  # post of a hold, or usage beyond it
    RELEASE = "release"  # void of a hold: the hand-over was abandoned
    REVENUE = "revenue"  # prepaid money earned by usage
    OVERAGE = "overage"  # subscription usage beyond the allowance, billed at the overage price
    OVERDRAWN = "overdrawn"  # usage beyond the allowance on a plan without overage
    SETTLE = "settle"  # a top-up paying off overdrawn units
    EXPIRY = "expiry"  # allowance expired at the end of a subscription cycle
    REFUND = "refund"
    ADJUSTMENT = "adjustment"
    PAYMENT = "payment"  # money received against a receivable
    # A pack an offline station handed over beyond the allowance: the allowance it lacked, bought
    # on credit (receivable -> prepaid money, issued -> allowance units); see domain.offline.
    OFFLINE_CREDIT = "offline_credit"


class TransferFlags(enum.IntFlag):
    NONE = 0
    PENDING = 1
    POST_PENDING = 2
    VOID_PENDING = 4


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    ledger: str
    code: AccountCode
    owner: str  # rider id, or "" for the operator
    flags: AccountFlags
    debits_pending: int = 0
    debits_posted: int = 0
    credits_pending: int = 0
    credits_posted: int = 0

    @property
    def credit_balance(self) -> int:
        """Posted credits less posted debits: the balance of a credit-normal account."""
        return self.credits_posted - self.debits_posted

    @property
    def available(self) -> int:
        """Credit balance less what pending debits hold: what can still be spent."""
        return self.credits_posted - self.debits_posted - self.debits_pending

    @property
    def held(self) -> int:
        return self.debits_pending

    @property
    def debit_balance(self) -> int:
        return self.debits_posted - self.credits_posted

    def with_delta(self, delta: Delta) -> Account:
        # The constructor, not dataclasses.replace: this runs for every account of every
        # transfer, and replace() inspects the fields each time (2.5 % of the SQLite writer).
        return Account(
            id=self.id,
            ledger=self.ledger,
            code=self.code,
            owner=self.owner,
            flags=self.flags,
            debits_pending=self.debits_pending + delta.debits_pending,
            debits_posted=self.debits_posted + delta.debits_posted,
            credits_pending=self.credits_pending + delta.credits_pending,
            credits_posted=self.credits_posted + delta.credits_posted,
        )

    def check_limits(self) -> None:
        if (
            AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS in self.flags
            and self.debits_posted + self.debits_pending > self.credits_posted
        ):
            raise LedgerError(
                "exceeds_credits",
                f"account {self.id} ({self.code} {self.owner} {self.ledger}) would go below zero",
            )
        if (
            AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS in self.flags
            and self.credits_posted + self.credits_pending > self.debits_posted
        ):
            raise LedgerError(
                "exceeds_debits",
                f"account {self.id} ({self.code} {self.owner} {self.ledger}) would go below zero",
            )
        if min(self.debits_pending, self.debits_posted, self.credits_pending, self.credits_posted) < 0:
            raise LedgerError("negative_column", f"account {self.id} has a negative column")
        if (
            max(self.debits_pending, self.debits_posted, self.credits_pending, self.credits_posted)
            > MAX_ACCOUNT_COLUMN_AMOUNT
        ):
            self._overflow()

    def _overflow(self) -> None:
        for column in ("debits_pending", "debits_posted", "credits_pending", "credits_posted"):
            value = getattr(self, column)
            if value > MAX_ACCOUNT_COLUMN_AMOUNT:
                # TigerBeetle's result names: overflows_debits_pending, ..._credits_posted.
                raise LedgerError(
                    f"overflows_{column}",
                    f"account {self.id} ({self.code} {self.owner or 'operator'} {self.ledger}) "
                    f"would hold {value:,} {column}, above the limit of "
                    f"{MAX_ACCOUNT_COLUMN_AMOUNT:,}",
                )


@dataclass(frozen=True, slots=True)
class Delta:
    debits_pending: int = 0
    debits_posted: int = 0
    credits_pending: int = 0
    credits_posted: int = 0

    def __add__(self, other: Delta) -> Delta:
        return Delta(
            self.debits_pending + other.debits_pending,
            self.debits_posted + other.debits_posted,
            self.credits_pending + other.credits_pending,
            self.credits_posted + other.credits_posted,
        )


@dataclass(frozen=True, slots=True)
class TransferRequest:
    """What a caller asks for. ``key`` makes the request idempotent."""

    key: str
    ledger: str
    debit_account_id: int
    credit_account_id: int
    amount: int
    code: TransferCode
    flags: TransferFlags = TransferFlags.NONE
    pending_id: int | None = None
    rider_id: str | None = None
    actor: str = "system"
    memo: str = ""


@dataclass(frozen=True, slots=True)
class Transfer:
    id: int
    key: str
    ledger: str
    debit_account_id: int
    credit_account_id: int
    amount: int
    code: TransferCode
    flags: TransferFlags
    pending_id: int | None
    rider_id: str | None
    actor: str
    memo: str

    def same_request(self, request: TransferRequest) -> bool:
        return (
            self.ledger == request.ledger
            and self.debit_account_id == request.debit_account_id
            and self.credit_account_id == request.credit_account_id
            and self.amount == request.amount
            and self.code == request.code
            and self.flags == request.flags
            and self.pending_id == request.pending_id
        )


def validate_request(request: TransferRequest, debit: Account, credit: Account) -> None:
    """Checks that need only the request and its two accounts."""
    if isinstance(request.amount, bool) or not isinstance(request.amount, int):
        raise LedgerError("amount_must_be_integer", f"amount {request.amount!r} is not an integer")
    if request.amount <= 0:
        raise LedgerError("amount_must_be_positive", f"amount {request.amount} must be > 0")
    if request.amount > MAX_TRANSFER_AMOUNT:
        raise LedgerError(
            "amount_exceeds_limit",
            f"amount {request.amount:,} is above the limit of {MAX_TRANSFER_AMOUNT:,} for one transfer",
        )
    if not request.key:
        raise LedgerError("key_must_not_be_empty", "every transfer needs an idempotency key")
    if request.debit_account_id == request.credit_account_id:
        raise LedgerError("accounts_must_be_different", "debit and credit account are the same")
    if debit.ledger != request.ledger or credit.ledger != request.ledger:
        raise LedgerError(
            "ledger_mismatch",
            f"transfer on {request.ledger} between {debit.ledger} and {credit.ledger} accounts",
        )
    phase = request.flags & (
        TransferFlags.PENDING | TransferFlags.POST_PENDING | TransferFlags.VOID_PENDING
    )
    if phase not in (
        TransferFlags.NONE,
        TransferFlags.PENDING,
        TransferFlags.POST_PENDING,
        TransferFlags.VOID_PENDING,
    ):
        raise LedgerError("flags_are_mutually_exclusive", "a transfer has one phase")
    needs_pending = bool(phase & (TransferFlags.POST_PENDING | TransferFlags.VOID_PENDING))
    if needs_pending != (request.pending_id is not None):
        raise LedgerError("pending_id_mismatch", "post and void (only) name a pending transfer")


def check_pending(pending_id: int, pending: Transfer | None, resolution: int | None) -> Transfer:
    """The pending transfer a post or void names, if it may still be resolved. ``resolution`` is
    the flags of the transfer that resolved it already, None while it is unresolved."""
    if pending is None:
        raise LedgerError("pending_transfer_not_found", f"no transfer {pending_id}")
    if not pending.flags & TransferFlags.PENDING:
        raise LedgerError("pending_transfer_not_pending", f"transfer {pending_id} is not pending")
    if resolution is not None:
        state = "posted" if resolution & TransferFlags.POST_PENDING else "voided"
        raise LedgerError(f"pending_transfer_already_{state}", f"transfer {pending_id} is {state}")
    return pending


def answer_repeat(existing: Transfer, request: TransferRequest) -> Transfer:
    """The answer to a request whose key was used already: the first transfer, if it is the same
    transfer; a different one under the same key is refused."""
    if not existing.same_request(request):
        raise LedgerError(
            "exists_with_different_fields",
            f"transfer key {request.key!r} was used for a different transfer",
        )
    return existing


def deltas_for(request: TransferRequest, pending: Transfer | None) -> tuple[Delta, Delta]:
    """The change the request makes to its debit and credit account, in that order."""
    amount = request.amount
    if request.flags & TransferFlags.PENDING:
        return Delta(debits_pending=amount), Delta(credits_pending=amount)
    if request.flags & (TransferFlags.POST_PENDING | TransferFlags.VOID_PENDING):
        if pending is None or not pending.flags & TransferFlags.PENDING:
            raise LedgerError("pending_transfer_not_found", f"no pending transfer {request.pending_id}")
        if (pending.debit_account_id, pending.credit_account_id) != (
            request.debit_account_id,
            request.credit_account_id,
        ):
            raise LedgerError("pending_accounts_differ", "post/void must use the pending accounts")
        if request.flags & TransferFlags.VOID_PENDING:
            if amount != pending.amount:
                raise LedgerError("void_amount_differs", "a void releases the whole pending amount")
            return (
                Delta(debits_pending=-pending.amount),
                Delta(credits_pending=-pending.amount),
            )
        if amount > pending.amount:
            raise LedgerError(
                "exceeds_pending_transfer_amount",
                f"post of {amount} exceeds pending amount {pending.amount}",
            )
        return (
            Delta(debits_pending=-pending.amount, debits_posted=amount),
            Delta(credits_pending=-pending.amount, credits_posted=amount),
        )
    return Delta(debits_posted=amount), Delta(credits_posted=amount)
