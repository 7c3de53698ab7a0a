"""SQLite under ``swapd serve``: service calls from the event loop run in a writer process
(swapd.store.writer). They must commit there, answer with their results and errors as if run
here, fail alone inside a group, survive the writer dying, and end with the server. Only the
calls of the calls table cross (here tests/writer_test_calls.py), and only in the closed wire
format (swapd.store.wire): anything else is refused and runs nowhere."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import structlog

from swapd.domain.errors import Conflict, RateLimited
from swapd.domain.stations import SlotState
from swapd.services import catalog
from swapd.store import wire
from swapd.store.checkpoints import WRITER_AUTOCHECKPOINT_PAGES
from swapd.store.database import Database
from swapd.store.engine import make_engine, sqlite_file_path, upgrade
from swapd.store.wire import WireRefused, encode_outcomes
from swapd.store.writer import FrameReader, WriterUnavailable, frame
from tests import writer_test_calls

CALLS_MODULE = writer_test_calls.__name__


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Database]:
    """A Database as ``swapd serve`` has it on SQLite: migrated, with its writer process."""
    url = f"sqlite:///{tmp_path / 'writer.db'}"
    engine = make_engine(url)
    upgrade(engine)
    db = Database(engine)
    db.start_writer_process(json_logs=True, calls_module=CALLS_MODULE)
    yield db
    db.dispose()


def _exited(pid: int, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_calls_run_and_commit_in_the_writer_process(served: Database) -> None:
    pid = served.writer_pid
    assert pid is not None and pid != os.getpid()

    async def scenario() -> tuple[int, object]:
        where = await served.call(os.getpid)
        added = await served.call(catalog.add_pack_model, served, "WRITER", 1700)
        return where, added

    where, added = asyncio.run(scenario())
    assert where == pid
    assert getattr(added, "code", None) == "WRITER"
    # Committed: this process reads it from the file.
    assert served.read(lambda tx: [m.code for m in tx.repo.pack_models()]) == ["WRITER"]


def test_a_domain_error_comes_back_as_itself_and_fails_its_call_alone(served: Database) -> None:
    catalog.add_pack_model(served, "TAKEN", 1000)

    async def scenario() -> list[object]:
        codes = [f"M{i:02d}" for i in range(30)]
        codes[7] = "TAKEN"
        codes[21] = "TAKEN"
        calls = [served.call(catalog.add_pack_model, served, code, 1000) for code in codes]
        return await asyncio.gather(*calls, return_exceptions=True)

    outcomes = asyncio.run(scenario())
    failed = [i for i, outcome in enumerate(outcomes) if isinstance(outcome, BaseException)]
    assert failed == [7, 21]
    error = outcomes[7]
    assert isinstance(error, Conflict) and "TAKEN" in error.message
    stored = served.read(lambda tx: {m.code for m in tx.repo.pack_models()})
    assert stored == {"TAKEN"} | {f"M{i:02d}" for i in range(30)} - {"M07", "M21"}


def _not_in_the_table(db: Database, ran: list[str]) -> None:
    ran.append("ran")
    catalog.add_pack_model(db, "NOWHERE", 1000)


def test_a_function_outside_the_calls_table_is_refused_at_the_call_site_and_runs_nowhere(
    served: Database,
) -> None:
    ran: list[str] = []
    with pytest.raises(TypeError, match="_not_in_the_table is not in the writer's calls table"):
        asyncio.run(served.call(_not_in_the_table, served, ran))
    with pytest.raises(TypeError, match="lambda"):
        asyncio.run(served.call(lambda: os.getpid()))
    assert ran == []
    assert served.read(lambda tx: tx.repo.pack_models()) == []
    # The refusal is the caller's: the calls in the table go on crossing.
    assert asyncio.run(served.call(os.getpid)) == served.writer_pid


class _RunsACommand:
    """Unpickles as a call of os.system: what a frame outside the wire format could do."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (self.command,))


def test_a_frame_naming_a_class_outside_the_wire_format_is_refused_by_the_writer(
    served: Database, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"

    async def scenario() -> tuple[object, object]:
        # Queued together, so that they travel as one frame: the writer refuses it whole.
        return await asyncio.gather(
            served.call(writer_test_calls.fail_with, _RunsACommand(f"touch {marker}")),
            served.call(catalog.add_pack_model, served, "SAME-FRAME", 1000),
            return_exceptions=True,
        )

    refused, neighbour = asyncio.run(scenario())
    assert isinstance(refused, WireRefused) and "system is outside the writer's wire format" in str(
        refused
    )
    assert isinstance(neighbour, WireRefused)
    assert not marker.exists()
    assert served.read(lambda tx: tx.repo.pack_models()) == []
    # The writer reads on: the next frame is answered.
    assert asyncio.run(served.call(os.getpid)) == served.writer_pid


def test_a_call_whose_arguments_will_not_pickle_fails_alone_and_runs_nowhere(served: Database) -> None:
    async def both() -> tuple[object, object]:
        # Queued together, so that they travel as one group: the closure's call fails here.
        return await asyncio.gather(
            served.call(writer_test_calls.fail_with, lambda: None),
            served.call(os.getpid),
            return_exceptions=True,
        )

    refused, there = asyncio.run(both())
    assert isinstance(refused, TypeError) and "'fail_with' will not pickle" in str(refused)
    assert there == served.writer_pid != os.getpid()


def test_an_unexpected_error_is_logged_by_the_writer_with_the_callers_context(
    capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Started here, after capfd has taken file descriptor 2: the writer inherits it.
    engine = make_engine(f"sqlite:///{tmp_path / 'log.db'}")
    upgrade(engine)
    served = Database(engine)
    served.start_writer_process(json_logs=True, calls_module=CALLS_MODULE)

    async def scenario() -> None:
        with structlog.contextvars.bound_contextvars(station="ST-CONTEXT"):
            await served.call(int, "not a number")

    try:
        with pytest.raises(ValueError, match="not a number"):
            asyncio.run(scenario())
    finally:
        served.dispose()
    logged = [json.loads(line) for line in capfd.readouterr().err.splitlines() if line.startswith("{")]
    failures = [entry for entry in logged if entry.get("event") == "call_failed"]
    assert failures and failures[0]["station"] == "ST-CONTEXT"
    assert "ValueError" in failures[0]["exception"]


def test_a_writer_that_dies_fails_the_calls_it_held_and_the_next_call_starts_another(
    served: Database,
) -> None:
    first = served.writer_pid
    assert first is not None

    async def scenario() -> tuple[BaseException | object, int]:
        # The call holds the writer's transaction for 30 s: kill the writer meanwhile.
        held = asyncio.ensure_future(served.call(time.sleep, 30))
        await asyncio.sleep(1.0)
        os.kill(first, signal.SIGKILL)
        try:
            outcome: BaseException | object = await asyncio.wait_for(held, 20)
        except WriterUnavailable as error:
            outcome = error
        return outcome, await served.call(os.getpid)

    outcome, where = asyncio.run(scenario())
    assert isinstance(outcome, WriterUnavailable)
    assert where == served.writer_pid and where not in (first, os.getpid())


def test_the_writer_checkpoints_the_wal_in_a_thread_of_its_own(served: Database) -> None:
    # Its own connection checkpoints only past a large WAL, so that a COMMIT seldom stalls...
    assert (
        asyncio.run(served.call(writer_test_calls.wal_autocheckpoint_pages, served))
        == WRITER_AUTOCHECKPOINT_PAGES
    )
    # ...and commits far below that size still reach the database file: the thread copied them.
    path = Path(str(sqlite_file_path(served.engine.url)))
    before = path.stat().st_size

    async def scenario() -> None:
        for start in range(0, 2000, 100):
            codes = [f"CHECKPOINT-{i:05d}" for i in range(start, start + 100)]
            await asyncio.gather(*(served.call(catalog.add_pack_model, served, c, 1000) for c in codes))

    asyncio.run(scenario())
    deadline = time.monotonic() + 10
    while path.stat().st_size < before + 100_000 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert path.stat().st_size >= before + 100_000


def test_the_writer_outlives_a_stop_signal_and_ends_with_its_socket(served: Database) -> None:
    # systemd stops a service with SIGTERM to every process of it, Ctrl-C sends SIGINT to the
    # process group: the writer waits for the server to close its socket instead.
    pid = served.writer_pid
    assert pid is not None
    os.kill(pid, signal.SIGTERM)
    os.kill(pid, signal.SIGINT)
    time.sleep(0.5)
    assert asyncio.run(served.call(os.getpid)) == pid
    served.dispose()
    assert _exited(pid)


def test_the_writer_ends_with_the_server(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'end.db'}"
    engine = make_engine(url)
    upgrade(engine)
    db = Database(engine)
    db.start_writer_process(json_logs=True, calls_module=CALLS_MODULE)
    pid = db.writer_pid
    assert pid is not None
    assert asyncio.run(db.call(os.getpid)) == pid
    db.dispose()
    assert _exited(pid)


@pytest.mark.parametrize(
    "url", ["sqlite://", "sqlite:///file:writer_test?mode=memory&cache=shared&uri=true"]
)
def test_an_in_memory_database_keeps_its_calls_here(url: str) -> None:
    db = Database(make_engine(url))
    db.start_writer_process(json_logs=True, calls_module=CALLS_MODULE)
    try:
        assert db.writer_pid is None
        assert asyncio.run(db.call(os.getpid)) == os.getpid()
    finally:
        db.dispose()


@dataclass
class _Done:
    result: object = None
    error: BaseException | None = None


def test_outcomes_that_cannot_cross_whole_cross_as_text_and_fail_alone() -> None:
    calls = [
        _Done(error=RateLimited("slow down", 30)),  # __init__ takes two args, pickles one
        _Done(result=lambda: None),  # a result that will not pickle
        _Done(result={"a": 1}),
        _Done(error=ValueError("bad")),
        _Done(result=Path("/outside/the/format")),  # pickles, but the gateway would refuse it
    ]
    outcomes = wire.loads(encode_outcomes(calls))  # type: ignore[arg-type]
    (ok1, limited), (ok2, unsent), (ok3, value), (ok4, bad), (ok5, outside) = outcomes
    assert not ok1 and isinstance(limited, RuntimeError) and "RateLimited: slow down" in str(limited)
    assert not ok2 and isinstance(unsent, RuntimeError) and "result" in str(unsent)
    assert ok3 and value == {"a": 1}
    assert not ok4 and isinstance(bad, ValueError) and str(bad) == "bad"
    assert not ok5 and isinstance(outside, RuntimeError) and "Path is outside" in str(outside)


def test_frames_are_read_whole_however_they_arrive() -> None:
    left, right = socket.socketpair()
    try:
        reader = FrameReader(right)
        one, two, three = frame(b"one"), frame(b""), frame(b"x" * 100_000)
        left.sendall(one[:2])
        assert reader.arrived() == []
        left.sendall(one[2:] + two)
        assert reader.arrived() == [b"one", b""]
        left.sendall(three[:50_000])
        assert reader.arrived() == []
        left.sendall(three[50_000:] + frame(b"last"))
        assert reader.next() == b"x" * 100_000
        assert reader.next() == b"last"
        left.sendall(frame(b"cut")[:5])
        left.close()
        with pytest.raises(EOFError):
            reader.next()
    finally:
        right.close()


def test_the_end_of_the_socket_between_frames_is_the_end() -> None:
    left, right = socket.socketpair()
    reader = FrameReader(right)
    left.sendall(frame(b"only"))
    left.close()
    assert reader.arrived() == [b"only"]
    assert reader.next() is None
    right.close()


def test_the_writer_module_refuses_to_run_without_its_arguments() -> None:
    # ``python -m swapd.store.writer_process`` is only for the gateway to start; wrong use exits 2.
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "swapd.store.writer_process"], capture_output=True, check=False
    )
    assert done.returncode == 2
    assert wire.ThisDatabase.__module__ == "swapd.store.wire"


def test_a_failure_on_the_way_to_the_writer_fails_its_group_not_later_calls(
    served: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = served._writer
    assert client is not None
    submit = client.submit

    def broken_once(*args: object, **kwargs: object) -> None:
        monkeypatch.setattr(client, "submit", submit)
        raise RuntimeError("a bug in submit")

    monkeypatch.setattr(client, "submit", broken_once)
    with pytest.raises(RuntimeError, match="a bug in submit"):
        asyncio.run(served.call(os.getpid))
    assert asyncio.run(served.call(os.getpid)) == served.writer_pid


def test_the_gateway_sends_the_writer_commands_of_the_bus_only() -> None:
    # Every ``db.call`` of the gateway's session and server passes ``messages.handle`` (the one
    # entry of the writer's calls table), and every command they build has a handler.
    import ast
    import importlib

    from swapd.gateway.writer_calls import CALLS
    from swapd.services import messages

    assert dict(CALLS) == {"handle": messages.handle}
    calls, built = 0, set()
    for name in ("swapd.gateway.session", "swapd.gateway.server"):
        module = importlib.import_module(name)
        tree = ast.parse(Path(str(module.__file__)).read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            func = node.func
            if func.attr == "call" and isinstance(func.value, ast.Attribute) and func.value.attr == "db":
                calls += 1
                assert ast.unparse(node.args[0]) == "messages.handle", ast.unparse(node)
            named = isinstance(func.value, ast.Name) and func.value.id == "messages"
            if named and func.attr != "handle":
                built.add(getattr(messages, func.attr))
    assert calls >= 2
    commands = {
        value
        for value in vars(messages).values()
        if isinstance(value, type)
        and issubclass(value, messages.Command)
        and value is not messages.Command
    }
    assert built == commands == set(messages.HANDLERS)


def test_the_wire_format_builds_no_function_and_no_class_outside_it() -> None:
    for value in (eval, getattr, os.system, Path("/x"), type, object()):
        with pytest.raises(WireRefused, match="outside the writer's wire format"):
            wire.loads(wire.dumps(value))
    plain = [
        {1, 2},
        frozenset({"a"}),
        Decimal("1.25"),
        datetime(2026, 1, 2, 3, 4, tzinfo=UTC),
        timedelta(seconds=5),
        SlotState.AVAILABLE,
        Conflict("taken"),
        wire.ThisDatabase,
    ]
    back = wire.loads(wire.dumps(plain))
    assert back[:6] == plain[:6] and back[7] is wire.ThisDatabase
    assert isinstance(back[6], Conflict) and back[6].message == "taken"


def test_a_name_outside_the_writers_table_fails_its_call_alone(tmp_path: Path) -> None:
    # The gateway sends only names of its table; a writer with another table refuses the rest.
    import threading

    from swapd.store.writer_process import serve

    engine = make_engine(f"sqlite:///{tmp_path / 'names.db'}")
    upgrade(engine)
    db = Database(engine)
    ours, theirs = socket.socketpair()
    thread = threading.Thread(target=serve, args=(theirs, db, writer_test_calls.CALLS))
    thread.start()
    try:
        reader = FrameReader(ours)
        assert reader.next() == b""  # ready
        ours.sendall(frame(wire.dumps([("no_such_call", (), {}, {}), ("getpid", (), {}, {})])))
        answer = reader.next()
        assert answer is not None
        (ok1, unknown), (ok2, pid) = wire.loads(answer)
        assert not ok1 and isinstance(unknown, WireRefused) and "'no_such_call'" in str(unknown)
        assert ok2 and pid == os.getpid()
    finally:
        ours.close()
        thread.join(timeout=10)
        theirs.close()
        db.dispose()
