"""``expect`` steps: what the scenario says must be true at that point of the run.

An expect step has one or more of these parts, each a table (or an array of tables):

- ``balance``: a rider's numbers from :func:`swapd.readmodels.money.rider_balance`.
- ``result``: fields of the result of the last step that did something (clock steps and other
  expect steps are skipped), e.g. ``accepted``, ``reason``, ``usage_units``, ``revenue_minor``.
- ``transfers``: how many transfers there are (of a rider, a code, a ledger), their amounts.
- ``alerts``: how many alerts were recorded (of a kind, for a pack, at a station).

Expected values are integers, strings, booleans and arrays or tables of them; never floats.
A failed expectation is reported and the run goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from swapd.domain.errors import DomainError
from swapd.ledger.model import TransferCode
from swapd.readmodels.alerts import recent_alerts as alerts
from swapd.readmodels.money import rider_balance, transfers_of
from swapd.scenario.fields import Fields, describe_value, suggestion
from swapd.scenario.steps import OFFER_RESULT_KEYS, PACK_RESULT_KEYS, Action, Context

# The rider balance fields an expectation may name, and the type each is written in.
BALANCE_INTS = (
    "posted_units",
    "held_units",
    "available_units",
    "overdrawn_units",
    "prepaid_minor",
    "available_value_minor",
    "receivable_minor",
)
BALANCE_TEXTS = ("status", "plan_id", "unit", "currency")
BALANCE_LISTS = ("packs_held",)
BALANCE_KEYS = (*BALANCE_INTS, *BALANCE_TEXTS, *BALANCE_LISTS)

# Keys whose value is an array of tables, each checked as a partial match of one entry.
NESTED_RESULT_KEYS: dict[str, frozenset[str]] = {
    "packs": PACK_RESULT_KEYS,
    "offered": OFFER_RESULT_KEYS,
}
ERROR_RESULT_KEYS = frozenset({"error", "message"})


def show(value: object) -> str:
    """A value in a failure message, with thousands separators for counts and amounts."""
    if isinstance(value, bool) or value is None:
        return describe_value(value) if value is not None else "nothing"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {show(v)}" for k, v in value.items()) + "}"
    return repr(value) if isinstance(value, str) else str(value)


def same(expected: object, actual: object) -> bool:
    """Equality that does not take true for 1; tables match when every expected key matches."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    if isinstance(expected, list):
        return (
            isinstance(actual, list | tuple)
            and len(expected) == len(actual)
            and all(same(e, a) for e, a in zip(expected, actual, strict=True))
        )
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            k in actual and same(v, actual[k]) for k, v in expected.items()
        )
    return expected == actual


def _check_value(f: Fields, name: str, value: object) -> None:
    """Expected values are exact: floats (and TOML dates) have no place in them."""
    if isinstance(value, list):
        for item in value:
            _check_value(f, name, item)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_value(f, f"{name}.{key}", item)
    elif not isinstance(value, bool | int | str):
        raise f.error(name, f"expected values are integers, strings or booleans, got {value!r}")


@dataclass(frozen=True, slots=True)
class BalanceCheck:
    rider_id: str
    expected: Mapping[str, object]

    @classmethod
    def parse(cls, f: Fields) -> BalanceCheck:
        rider_id = f.code("rider", "rider")
        expected: dict[str, object] = {}
        for name in f.names():
            if name == "rider":
                continue
            if name in BALANCE_INTS:
                expected[name] = f.integer(name, minimum=0)
            elif name in BALANCE_TEXTS:
                expected[name] = f.text(name)
            elif name in BALANCE_LISTS:
                expected[name] = f.text_list(name)
            else:
                raise f.error(name, f"not a balance field{suggestion(name, BALANCE_KEYS)}")
        if not expected:
            raise f.fail(f"name at least one of {', '.join(BALANCE_INTS[:3])}, ...")
        return cls(rider_id, expected)

    def describe(self) -> str:
        parts = ", ".join(f"{k.removesuffix('_units')} {show(v)}" for k, v in self.expected.items())
        return f"{self.rider_id}: {parts}"

    def check(self, ctx: Context) -> list[str]:
        try:
            balance = rider_balance(ctx.db, self.rider_id)
        except DomainError as error:
            return [f"balance of {self.rider_id}: {error.message}"]
        failures = []
        for name, expected in self.expected.items():
            actual = getattr(balance, name)
            if not same(expected, list(actual) if isinstance(actual, tuple) else actual):
                failures.append(f"{self.rider_id} {name}: expected {show(expected)}, got {show(actual)}")
        return failures


@dataclass(frozen=True, slots=True)
class ResultCheck:
    step: int  # the number of the step whose result is checked
    expected: Mapping[str, object]

    @classmethod
    def parse(cls, f: Fields, previous: tuple[int, type[Action]] | None) -> ResultCheck:
        if previous is None:
            raise f.fail("no step before this one has a result to check")
        number, action = previous
        allowed = action.result_keys | ERROR_RESULT_KEYS
        expected: dict[str, object] = {}
        for name in f.names():
            if name not in allowed:
                raise f.error(
                    name,
                    f"not in the result of step {number} ({action.kind}){suggestion(name, allowed)}",
                )
            value = f.raw(name)
            _check_value(f, name, value)
            nested = NESTED_RESULT_KEYS.get(name)
            if nested is not None:
                _check_nested(f, name, value, nested)
            expected[name] = value
        if not expected:
            raise f.fail("name at least one field of the result")
        return cls(number, expected)

    def describe(self) -> str:
        parts = ", ".join(f"{k} = {show(v)}" for k, v in self.expected.items())
        return f"step {self.step}: {parts}"

    def check(self, result: Mapping[str, Any] | None) -> list[str]:
        if result is None:
            return [f"step {self.step} has no result"]
        failures = []
        for name, expected in self.expected.items():
            if name not in result:
                if "error" in result:
                    failures.append(
                        f"step {self.step} {name}: expected {show(expected)}, but the step "
                        f"failed: {result.get('message')}"
                    )
                else:
                    failures.append(f"step {self.step} {name}: expected {show(expected)}, got nothing")
            elif not same(expected, result[name]):
                failures.append(
                    f"step {self.step} {name}: expected {show(expected)}, got {show(result[name])}"
                )
        return failures


def _check_nested(f: Fields, name: str, value: object, keys: frozenset[str]) -> None:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise f.error(name, "must be an array of tables (one per entry, in order)")
    for i, item in enumerate(value, 1):
        assert isinstance(item, dict)
        for key in item:
            if key not in keys:
                raise f.error(f"{name}[{i}].{key}", f"unknown field{suggestion(key, keys)}")


@dataclass(frozen=True, slots=True)
class TransferCheck:
    rider_id: str | None
    code: TransferCode | None
    ledger: str | None
    count: int | None
    amounts: tuple[int, ...] | None
    total: int | None

    @classmethod
    def parse(cls, f: Fields) -> TransferCheck:
        rider_id = f.code("rider", "rider") if f.has("rider") else None
        code = f.choice("code", {c.value: c for c in TransferCode}) if f.has("code") else None
        ledger = f.text("ledger") if f.has("ledger") else None
        count = f.optional_integer("count", minimum=0)
        total = f.optional_integer("total", minimum=0)
        amounts = None
        if f.has("amounts"):
            value = f.raw("amounts")
            if not isinstance(value, list) or not all(
                isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value
            ):
                raise f.error("amounts", "must be an array of positive integers, in transfer order")
            amounts = tuple(value)
        if count is None and amounts is None and total is None:
            raise f.fail("name at least one of count, amounts, total")
        f.finish()
        return cls(rider_id, code, ledger, count, amounts, total)

    def subject(self) -> str:
        text = "transfers" if self.rider_id is None else f"transfers of {self.rider_id}"
        if self.code is not None:
            text += f" with code {self.code.value}"
        if self.ledger is not None:
            text += f" on ledger {self.ledger}"
        return text

    def describe(self) -> str:
        parts = []
        if self.count is not None:
            parts.append(f"count {show(self.count)}")
        if self.amounts is not None:
            parts.append(f"amounts {show(list(self.amounts))}")
        if self.total is not None:
            parts.append(f"total {show(self.total)}")
        return f"{self.subject()}: {', '.join(parts)}"

    def check(self, ctx: Context) -> list[str]:
        found = [
            tr
            for tr in transfers_of(ctx.db, self.rider_id)
            if (self.code is None or tr.code is self.code)
            and (self.ledger is None or tr.ledger == self.ledger)
        ]
        amounts = [tr.amount for tr in found]
        failures = []
        if self.count is not None and len(found) != self.count:
            failures.append(f"{self.subject()}: expected count {show(self.count)}, got {len(found):,}")
        if self.amounts is not None and amounts != list(self.amounts):
            failures.append(
                f"{self.subject()}: expected amounts {show(list(self.amounts))}, got {show(amounts)}"
            )
        if self.total is not None and sum(amounts) != self.total:
            failures.append(
                f"{self.subject()}: expected total {show(self.total)}, got {show(sum(amounts))}"
            )
        return failures


@dataclass(frozen=True, slots=True)
class AlertCheck:
    kind: str | None
    pack: str | None
    station: str | None
    rider: str | None
    count: int

    @classmethod
    def parse(cls, f: Fields) -> AlertCheck:
        def text(name: str) -> str | None:
            return f.text(name) if f.has(name) else None

        check = cls(
            text("kind"), text("pack"), text("station"), text("rider"), f.integer("count", minimum=0)
        )
        f.finish()
        return check

    def subject(self) -> str:
        text = "alerts" if self.kind is None else f"{self.kind} alerts"
        for label, value in (("pack", self.pack), ("station", self.station), ("rider", self.rider)):
            if value is not None:
                text += f" {label} {value}"
        return text

    def describe(self) -> str:
        return f"{self.subject()}: count {show(self.count)}"

    def check(self, ctx: Context) -> list[str]:
        wanted: list[tuple[str, str | None]] = [
            ("kind", self.kind),
            ("pack_serial", self.pack),
            ("station_id", self.station),
            ("rider_id", self.rider),
        ]
        found = [
            a
            for a in alerts(ctx.db, limit=100_000)
            if all(value is None or a.get(column) == value for column, value in wanted)
        ]
        if len(found) != self.count:
            return [f"{self.subject()}: expected count {show(self.count)}, got {len(found):,}"]
        return []


@dataclass(frozen=True, slots=True)
class Expect:
    balances: tuple[BalanceCheck, ...]
    result: ResultCheck | None
    transfers: tuple[TransferCheck, ...]
    alerts: tuple[AlertCheck, ...]

    @classmethod
    def parse(cls, f: Fields, previous: tuple[int, type[Action]] | None) -> Expect:
        def many(name: str, parse: Callable[[Fields], Any]) -> tuple[Any, ...]:
            if not f.has(name):
                return ()
            return tuple(parse(table) for table in f.tables(name))

        balances = many("balance", BalanceCheck.parse)
        result = ResultCheck.parse(f.table("result"), previous) if f.has("result") else None
        transfers = many("transfers", TransferCheck.parse)
        alert_checks = many("alerts", AlertCheck.parse)
        if not (balances or result or transfers or alert_checks):
            raise f.fail("needs at least one of balance, result, transfers, alerts")
        return cls(balances, result, transfers, alert_checks)

    @property
    def checks(self) -> int:
        """How many values this step compares (for the summary)."""
        return (
            sum(len(b.expected) for b in self.balances)
            + (len(self.result.expected) if self.result else 0)
            + sum(
                (t.count is not None) + (t.amounts is not None) + (t.total is not None)
                for t in self.transfers
            )
            + len(self.alerts)
        )

    def describe(self) -> str:
        parts = [b.describe() for b in self.balances]
        if self.result is not None:
            parts.append(self.result.describe())
        parts += [t.describe() for t in self.transfers]
        parts += [a.describe() for a in self.alerts]
        return "\n".join(parts)

    def check(self, ctx: Context, last_result: Mapping[str, Any] | None) -> list[str]:
        failures: list[str] = []
        for balance in self.balances:
            failures += balance.check(ctx)
        if self.result is not None:
            failures += self.result.check(last_result)
        for transfers in self.transfers:
            failures += transfers.check(ctx)
        for alert in self.alerts:
            failures += alert.check(ctx)
        return failures
