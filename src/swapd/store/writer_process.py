"""The writer process of ``swapd serve`` on SQLite (see swapd.store.writer for why and for the
gateway's side): it runs the groups of calls the gateway sends, as the gateway would have run
them, and answers with their outcomes.

Run by the gateway as ``python -m swapd.store.writer_process FD URL LOG_FORMAT CALLS_MODULE``.
It runs only the functions of CALLS_MODULE's calls table, by name, and reads frames in the
closed format of swapd.store.wire: a frame naming anything else is refused whole, and answered
with why.
"""

from __future__ import annotations

import contextvars
import functools
import signal
import socket
import sys
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

from swapd.logger import get_logger
from swapd.store.calls import MAX_GROUP, CallTable, load_calls
from swapd.store.database import Database
from swapd.store.wal_sync import DurableReplies, Reply, wal_syncer
from swapd.store.wire import ThisDatabase, WireRefused, dumps, encode_outcomes, loads
from swapd.store.writer import FrameReader, frame

log = get_logger(__name__)


@dataclass(slots=True)
class _RemoteCall:
    """A call received by the writer, in the shape ``Database.run_calls`` runs."""

    function: Callable[[], object]
    context: contextvars.Context
    result: object = None
    error: BaseException | None = None


def _raise(error: BaseException) -> NoReturn:
    raise error


def decode_calls(payload: bytes, db: Database, calls: CallTable) -> list[_RemoteCall] | WireRefused:
    """The calls of a request frame, or why the frame is refused. A name outside ``calls``
    fails its own call."""
    from structlog import contextvars as log_contextvars

    try:
        requests = loads(payload)
    except WireRefused as refused:
        log.error("request_refused", error=str(refused))
        return refused
    decoded = []
    for name, given_args, given_kwargs, log_context in requests:
        args = tuple(db if arg is ThisDatabase else arg for arg in given_args)
        kwargs = {key: db if value is ThisDatabase else value for key, value in given_kwargs.items()}
        context = contextvars.Context()
        context.run(log_contextvars.bind_contextvars, **log_context)
        function = calls.get(name)
        if function is None:
            unknown = WireRefused(f"no call named {name!r} in the writer's calls table")
            decoded.append(_RemoteCall(functools.partial(_raise, unknown), context))
        else:
            decoded.append(_RemoteCall(functools.partial(function, *args, **kwargs), context))
    return decoded


def _size(group: list[_RemoteCall] | WireRefused) -> int:
    return 0 if isinstance(group, WireRefused) else len(group)


def serve(
    sock: socket.socket,
    db: Database,
    calls: CallTable,
    after_commit: Callable[[], None] = lambda: None,
    reply: Reply | None = None,
) -> None:
    """Answer groups of calls until the gateway closes the socket. The groups that have arrived
    while one ran are run together, as one transaction (up to ``MAX_GROUP`` calls);
    ``after_commit`` is called after each (the WAL checkpoints). Every request frame gets one
    answer frame, in order: a refused frame is answered with why. ``reply`` sends them (a
    DurableReplies' once the WAL is on disk); by default they are sent here, at once."""
    sock.sendall(frame(b""))  # ready
    reader = FrameReader(sock)
    send = reply or functools.partial(_send_now, sock)
    waiting: deque[list[_RemoteCall] | WireRefused] = deque()
    while True:
        try:
            if not waiting:
                first = reader.next()
                if first is None:
                    return
                waiting.append(decode_calls(first, db, calls))
            waiting.extend(decode_calls(received, db, calls) for received in reader.arrived())
        except (OSError, EOFError):
            return
        groups = [waiting.popleft()]
        count = _size(groups[0])
        while waiting and count + _size(waiting[0]) <= MAX_GROUP:
            count += _size(waiting[0])
            groups.append(waiting.popleft())
        ran = [call for group in groups if not isinstance(group, WireRefused) for call in group]
        if ran:
            db.run_calls(ran)
            after_commit()
        answers = []
        for group in groups:
            if isinstance(group, WireRefused):
                answers.append(frame(dumps(str(group))))
                continue
            for call in group:
                if call.error is not None and not _expected(call.error):
                    # In the call's context: the log line carries the caller's (station, ...).
                    call.context.run(log.error, "call_failed", exc_info=call.error)
            answers.append(frame(encode_outcomes(group)))
        try:
            send(b"".join(answers), bool(ran))  # ran: maybe committed (a spare fsync costs little)
        except OSError:
            return  # the gateway is gone; what committed stays committed


def _send_now(sock: socket.socket, answers: bytes, _committed: bool) -> None:
    sock.sendall(answers)


def _expected(error: BaseException) -> bool:
    from swapd.domain.errors import DomainError

    return isinstance(error, DomainError)


def main(argv: list[str]) -> int:
    from swapd.heap import settle_heap
    from swapd.logs import configure_logging
    from swapd.store.checkpoints import WRITER_AUTOCHECKPOINT_PAGES, Checkpointer
    from swapd.store.engine import make_engine, sqlite_file_path

    fd, url, log_format, calls_module = int(argv[0]), argv[1], argv[2], argv[3]
    # Ctrl-C at a terminal reaches the whole process group, and a service manager's stop
    # (systemd's SIGTERM) the whole cgroup: the writer must not stop in the middle of a group
    # because of either; it stops when the gateway, shutting down, closes the socket (or dies).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    configure_logging(json_logs=log_format == "json")
    sock = socket.socket(fileno=fd)
    calls = load_calls(calls_module)
    # The gateway has migrated the schema. Checkpoints: see swapd.store.checkpoints; the WAL's
    # fsync before each answer: swapd.store.wal_sync.
    engine = make_engine(
        url, wal_autocheckpoint_pages=WRITER_AUTOCHECKPOINT_PAGES, wal_synced_by_caller=True
    )
    db = Database(engine)
    path = sqlite_file_path(url)
    assert path is not None, "the gateway starts a writer process for a SQLite file only"
    checkpointer = Checkpointer(path)
    checkpointer.start()
    replies = DurableReplies(sock, wal_syncer(path))
    replies.start()
    settle_heap()
    try:
        serve(sock, db, calls, checkpointer.nudge, replies.send)
    finally:
        answered = replies.close()  # the answers queued go out before the socket closes
        checkpointer.stop()
        db.dispose()
        sock.close()
    return 0 if answered else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]) if len(sys.argv) == 5 else 2)
