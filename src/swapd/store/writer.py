"""SQLite under ``swapd serve``: the event loop's service calls run in a writer process.

One server process holds one GIL. Its event loop (WebSocket frames, OCPP parsing, replies) and
its SQLite call thread took turns on it, and together they could not use more than one core:
the call thread, which runs every write of the one SQLite writer, waited for the event loop
between statements. With the calls in a process of their own, the writer has a core to itself
and the event loop the other.

The gateway's call thread (``Database._serve_calls``) sends each group of calls it collected
as one frame; the writer runs the group as it would have run it in the gateway (one
transaction, a savepoint a call, one COMMIT) and answers with every call's outcome in one frame.
A call crosses as a command: its function's name in the calls table both processes import
(swapd.store.calls), its arguments (the gateway's ``Database`` replaced by a marker, for which
the writer puts its own) and the caller's log context, in the closed format of swapd.store.wire.
There is no other way across: ``Database.call`` refuses a function outside the table, and a call
whose arguments will not pickle fails, naming its function; nothing falls back to running here.

The writer is a child process that lives as long as its socket: it finishes the group it holds
and exits when the gateway closes the socket or dies (kill -9 included). If the writer dies,
the calls it held fail (the stations resend them; every station event is idempotent) and the
next group starts a new writer.

The writer process itself is swapd.store.writer_process; this module is the gateway's side and
the frames both sides share.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from swapd.logger import get_logger
from swapd.store.calls import Request, Work, load_calls
from swapd.store.wire import WireRefused, dumps, encode_call, loads

log = get_logger(__name__)

_HEADER = struct.Struct("!I")
# What gets a group back with its outcomes filled in (the Database hands them to its callers).
Done = Callable[[Sequence[Work]], None]
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0


class WriterUnavailable(RuntimeError):
    """The writer process died before answering: the call may or may not have committed."""


# -- frames: a 4-byte length, then a pickle ------------------------------------------------------


def frame(payload: bytes) -> bytes:
    return _HEADER.pack(len(payload)) + payload


class FrameReader:
    """Frames as they arrive on a socket: the next one (waiting for it), or every one that has
    arrived already (without waiting)."""

    CHUNK = 1 << 16

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = bytearray()
        self._ended = False

    def next(self) -> bytes | None:
        """The next frame, or None when the other side closed the socket between frames."""
        while (frame := self._take()) is None:
            chunk = b"" if self._ended else self._sock.recv(self.CHUNK)
            if not chunk:
                if self._buffer:
                    raise EOFError("the other process closed the socket in the middle of a frame")
                return None
            self._buffer += chunk
        return frame

    def arrived(self) -> list[bytes]:
        """Every whole frame received so far, without waiting for more."""
        while not self._ended:
            try:
                chunk = self._sock.recv(self.CHUNK, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            if not chunk:
                self._ended = True  # next() reports it once the frames before it are taken
                break
            self._buffer += chunk
        frames = []
        while (frame := self._take()) is not None:
            frames.append(frame)
        return frames

    def _take(self) -> bytes | None:
        if len(self._buffer) < _HEADER.size:
            return None
        (size,) = _HEADER.unpack_from(self._buffer)
        end = _HEADER.size + size
        if len(self._buffer) < end:
            return None
        frame = bytes(self._buffer[_HEADER.size : end])
        del self._buffer[:end]
        return frame


# -- the gateway's side ---------------------------------------------------------------------------


class WriterClient:
    """The gateway's handle on its writer process.

    ``submit`` (from the call thread) sends a group and returns; a reply thread reads the
    answers in order and hands each group to ``done``. Up to ``IN_FLIGHT`` groups are out at
    once: the writer runs the groups that arrived while it ran one as one transaction, so a
    group need not wait for the answer to the one before it."""

    IN_FLIGHT = 8

    def __init__(self, url: str, *, json_logs: bool, calls_module: str) -> None:
        self._url = url
        self._json_logs = json_logs
        self._calls_module = calls_module
        self._names = {function: name for name, function in load_calls(calls_module).items()}
        self._process: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._replies: threading.Thread | None = None
        self._lock = threading.Lock()  # the process, the socket and the groups in flight
        self._in_flight: deque[tuple[Sequence[Request], Done]] = deque()
        self._slots = threading.Semaphore(self.IN_FLIGHT)

    def name_of(self, function: Callable[..., object]) -> str:
        """``function``'s name in the calls table; TypeError, naming it, for one outside it."""
        try:
            name = self._names.get(function)
        except TypeError:  # unhashable: not in the table either
            name = None
        if name is None:
            described = getattr(function, "__qualname__", None) or repr(function)
            module = getattr(function, "__module__", None)
            raise TypeError(
                f"{module}.{described} is not in the writer's calls table ({self._calls_module}.CALLS):"
                " only the calls registered there run while a writer process runs"
            )
        return name

    @property
    def pid(self) -> int | None:
        process = self._process
        return None if process is None else process.pid

    def start(self) -> None:
        with self._lock:
            self._start()

    def _start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            command = [
                sys.executable,
                "-m",
                "swapd.store.writer_process",
                str(theirs.fileno()),
                self._url,
                "json" if self._json_logs else "console",
                self._calls_module,
            ]
            process = subprocess.Popen(command, pass_fds=[theirs.fileno()])
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        # The writer says it is ready (imports done, database open) with an empty frame.
        ours.settimeout(START_TIMEOUT_S)
        reader = FrameReader(ours)
        try:
            ready = reader.next()
        except (OSError, EOFError) as error:
            ready = None
            reason = repr(error)
        else:
            reason = "it exited while starting"
        if ready is None:
            ours.close()
            _end(process)
            raise WriterUnavailable(f"the writer process did not start: {reason}")
        ours.settimeout(None)
        self._process, self._sock = process, ours
        self._replies = threading.Thread(
            target=self._read_replies,
            args=(ours, reader, process),
            name="swapd-writer-replies",
            daemon=True,
        )
        self._replies.start()
        log.info("writer_started", pid=process.pid)

    def submit(self, group: Sequence[Request], db: object, done: Done) -> None:
        """Send ``group`` to the writer; ``done`` gets it back with every outcome filled in."""
        from structlog import contextvars as log_contextvars  # imported by then: the server logs

        requests = [
            encode_call(call, call.context.run(log_contextvars.get_contextvars), db) for call in group
        ]
        try:
            payload = dumps(requests)
        except Exception:
            group, payload = _without_unpicklable(group, requests, done)
        if not group:
            return
        self._slots.acquire()
        with self._lock:
            try:
                if self._sock is None:
                    self._start()
                assert self._sock is not None
                self._in_flight.append((group, done))
                self._sock.sendall(frame(payload))
            except (OSError, WriterUnavailable) as error:
                # A send that failed: the reply thread fails what is in flight (this group too,
                # once it sees the socket end); a writer that would not start fails it here.
                log.error("writer_unavailable", error=repr(error))
                if self._sock is None:
                    self._slots.release()
                    _fail(group, done, error)
                else:
                    self._sock.shutdown(socket.SHUT_RDWR)

    def _read_replies(
        self, sock: socket.socket, reader: FrameReader, process: subprocess.Popen[bytes]
    ) -> None:
        while True:
            try:
                answer = reader.next()
                error: BaseException | None = None if answer is not None else EOFError("closed")
            except (OSError, EOFError) as failure:
                answer, error = None, failure
            if answer is None:
                break
            with self._lock:
                calls, done = self._in_flight.popleft()
            self._slots.release()
            _settle(calls, answer)
            done(calls)
        # The writer is gone (or the gateway is stopping it): whatever it still held failed.
        with self._lock:
            lost = list(self._in_flight)
            self._in_flight.clear()
            if self._sock is sock:
                self._sock, self._process = None, None
        sock.close()
        returncode = _end(process)
        if lost or returncode not in (0, None):
            log.error(
                "writer_lost",
                pid=process.pid,
                returncode=returncode,
                groups=len(lost),
                error=repr(error),
            )
        for calls, done in lost:
            self._slots.release()
            _fail(calls, done, error)

    def stop(self) -> None:
        """Let the writer answer what it holds, then end it (it exits when its socket ends)."""
        with self._lock:
            sock, replies = self._sock, self._replies
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_WR)
        if replies is not None:
            replies.join(timeout=STOP_TIMEOUT_S + 5)


def _settle(calls: Sequence[Work], answer: bytes) -> None:
    """Each call's outcome from the writer's answer; every call of the group fails when the
    writer refused the request frame or the answer is outside the wire format."""
    try:
        outcomes = loads(answer)
    except WireRefused as refused:
        log.error("writer_answer_refused", error=str(refused))
        outcomes = f"the writer's answer was refused: {refused}"
    if isinstance(outcomes, str):
        for call in calls:
            call.result, call.error = None, WireRefused(outcomes)
        return
    for call, (ok, value) in zip(calls, outcomes, strict=True):
        call.result, call.error = (value, None) if ok else (None, value)


def _without_unpicklable(
    group: Sequence[Request], requests: list[tuple[Any, ...]], done: Done
) -> tuple[list[Request], bytes]:
    """The calls whose requests pickle, and their frame's payload. The others are programming
    errors (an argument outside the wire format): each fails with a TypeError naming its call,
    and runs nowhere."""
    kept: list[Request] = []
    kept_requests: list[tuple[Any, ...]] = []
    refused: list[Request] = []
    for call, request in zip(group, requests, strict=True):
        try:
            dumps(request)
        except Exception as failure:
            call.result = None
            call.error = TypeError(
                f"the arguments of writer call {call.name!r} will not pickle: {failure!r}"
            )
            refused.append(call)
        else:
            kept.append(call)
            kept_requests.append(request)
    if refused:
        done(refused)
    return kept, dumps(kept_requests)


def _fail(calls: Sequence[Work], done: Done, error: BaseException | None) -> None:
    failure = WriterUnavailable(f"the writer process is gone: {error!r}")
    for call in calls:
        call.result, call.error = None, failure
    done(calls)


def _end(process: subprocess.Popen[bytes]) -> int | None:
    """Wait for the writer to exit; kill it if it will not."""
    try:
        return process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        log.error("writer_stop_timeout", pid=process.pid)
        process.kill()
        return process.wait()
