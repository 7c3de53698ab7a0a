"""The command bus (swapd.services.messages): each command reaches its handler, and anything else
is refused before it runs."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from swapd.domain.riders import IdToken, TokenType
from swapd.services import messages
from swapd.services.swaps import BatteryReading


@dataclass(frozen=True)
class NotACommand(messages.Command[int]):
    value: int


def test_an_unregistered_command_is_refused_by_name() -> None:
    with pytest.raises(TypeError, match="no handler for NotACommand"):
        messages.handle(None, NotACommand(1))  # type: ignore[arg-type]


def test_each_command_calls_its_use_case_with_its_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[object, ...]] = []

    def fake(name: str):  # type: ignore[no-untyped-def]
        def run(*args: object, **kwargs: object) -> str:
            seen.append((name, args, tuple(sorted(kwargs.items()))))
            return name

        return run

    monkeypatch.setattr(messages.swaps, "battery_in", fake("battery_in"))
    monkeypatch.setattr(messages.stations, "seen", fake("seen"))
    readings = (BatteryReading(1, "P1", 5_000, 9_000),)
    token = IdToken(TokenType.RFID, "AA")
    db = object()
    assert messages.handle(db, messages.BatteryIn("ST1", "7", readings, token)) == "battery_in"  # type: ignore[arg-type]
    assert messages.handle(db, messages.Seen("ST1")) == "seen"  # type: ignore[arg-type]
    assert seen == [
        ("battery_in", (db, "ST1", "7", readings), (("offline_at", None), ("token", token))),
        ("seen", (db, "ST1"), ()),
    ]
