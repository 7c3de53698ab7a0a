"""SQLite under ``swapd serve``: the event loop's service calls run in a writer process.

One server process holds one GIL. Its event loop (WebSocket frames, OCPP parsing, replies) and
its SQLite call thread took turns on it, and together they could not use more than one core:
the call thread, which runs every write of the one SQLite writer, waited for the event loop
between statements. With the calls in a process of their own, the writer has a core to itself
and the event loop the other.

The gateway's call thread (``Database._serve_calls``) sends each group of calls it collected
as one frame; the writer runs the group as it would have run it in the gateway (one
transaction, a savepoint a call, one COMMIT) and answers with every call's outcome in one frame.
A call is sent as its function (a module-level function: pickled by name), its arguments (the
gateway's ``Database`` replaced by a marker, for which the writer puts its own) and the caller's
log context. A call that cannot be pickled runs in the gateway as before.

The writer is a child process that lives as long as its socket: it finishes the group it holds
and exits when the gateway closes the socket or dies (kill -9 included). If the writer dies,
the calls it held fail (the stations resend them; every station event is idempotent) and the
next group starts a new writer.

The writer process itself is swapd.store.writer_process; this module is the gateway's side and
the wire format both sides share.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import pickle
import socket
import struct
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from swapd.logger import get_logger
from swapd.store.calls import Work

log = get_logger(__name__)

_HEADER = struct.Struct("!I")
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0


class ThisDatabase:
    """Stands for the caller's ``Database`` in a call's arguments: the writer puts its own in
    its place. (A class, so that pickle sends it by name.)"""


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


# -- what crosses the boundary -------------------------------------------------------------------


def encode_call(
    function: Callable[[], object], context: contextvars.Context, db: object
) -> tuple[Any, ...]:
    """A call as (function, args, kwargs, log context), ``db`` replaced by ``ThisDatabase``.
    Raises TypeError for a call that is not a ``functools.partial`` of a function."""
    if not isinstance(function, functools.partial):
        raise TypeError("only functools.partial calls go to the writer")
    args = tuple(ThisDatabase if arg is db else arg for arg in function.args)
    kwargs = {key: ThisDatabase if value is db else value for key, value in function.keywords.items()}
    from structlog import contextvars as log_contextvars  # imported by then: the server logs

    log_context = context.run(log_contextvars.get_contextvars)
    return (function.func, args, kwargs, log_context)


def encode_outcomes(calls: Sequence[Work]) -> bytes:
    """A group's outcomes in one pickle (one call of the pickler, not one a call); a result that
    will not pickle makes its own call fail, not the group."""
    outcomes = [
        _outcome(call.result, call.error) if call.error is not None else (True, call.result)
        for call in calls
    ]
    try:
        return pickle.dumps(outcomes, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        return pickle.dumps(
            [_outcome(call.result, call.error) for call in calls], protocol=pickle.HIGHEST_PROTOCOL
        )


def _outcome(result: object, error: BaseException | None) -> tuple[bool, object]:
    if error is None:
        try:
            pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
            return (True, result)
        except Exception as failure:
            error = RuntimeError(f"the writer could not send a call's result back: {failure!r}")
    try:
        # An exception whose __init__ does not take its args pickles but fails to unpickle.
        pickle.loads(pickle.dumps(error, protocol=pickle.HIGHEST_PROTOCOL))
        return (False, error)
    except Exception:
        return (False, RuntimeError(f"{type(error).__name__}: {error}"))


# -- the gateway's side ---------------------------------------------------------------------------


class WriterClient:
    """The gateway's handle on its writer process.

    ``submit`` (from the call thread) sends a group and returns; a reply thread reads the
    answers in order and hands each group to ``done``. Up to ``IN_FLIGHT`` groups are out at
    once: the writer runs the groups that arrived while it ran one as one transaction, so a
    group need not wait for the answer to the one before it."""

    IN_FLIGHT = 8

    def __init__(self, url: str, *, json_logs: bool) -> None:
        self._url = url
        self._json_logs = json_logs
        self._process: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._replies: threading.Thread | None = None
        self._lock = threading.Lock()  # the process, the socket and the groups in flight
        self._in_flight: deque[tuple[list[Work], Callable[[list[Work]], None]]] = deque()
        self._slots = threading.Semaphore(self.IN_FLIGHT)

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

    def submit(
        self,
        group: Sequence[Work],
        db: object,
        here: Callable[[list[Work]], None],
        done: Callable[[list[Work]], None],
    ) -> None:
        """Send ``group`` to the writer; ``done`` gets it back with every outcome filled in.
        Calls that cannot be pickled run through ``here`` (the gateway's own group runner)."""
        remote: list[Work] = []
        requests: list[tuple[Any, ...]] = []
        local: list[Work] = []
        for call in group:
            try:
                requests.append(encode_call(call.function, call.context, db))
                remote.append(call)
            except TypeError:
                local.append(call)
        try:
            payload = pickle.dumps(requests, pickle.HIGHEST_PROTOCOL)
        except Exception:
            # Some call's arguments will not pickle (a closure among them): those run here.
            remote, requests, local = _picklable(remote, requests, local)
            payload = pickle.dumps(requests, pickle.HIGHEST_PROTOCOL)
        if local:
            here(local)
            done(local)
        if not remote:
            return
        self._slots.acquire()
        with self._lock:
            try:
                if self._sock is None:
                    self._start()
                assert self._sock is not None
                self._in_flight.append((remote, done))
                self._sock.sendall(frame(payload))
            except (OSError, WriterUnavailable) as error:
                # A send that failed: the reply thread fails what is in flight (this group too,
                # once it sees the socket end); a writer that would not start fails it here.
                log.error("writer_unavailable", error=repr(error))
                if self._sock is None:
                    self._slots.release()
                    _fail(remote, done, error)
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
            for call, (ok, value) in zip(calls, pickle.loads(answer), strict=True):
                call.result, call.error = (value, None) if ok else (None, value)
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


def _picklable(
    remote: list[Work], requests: list[tuple[Any, ...]], local: list[Work]
) -> tuple[list[Work], list[tuple[Any, ...]], list[Work]]:
    """The calls whose requests pickle, their requests, and the rest added to ``local``."""
    kept: list[Work] = []
    kept_requests: list[tuple[Any, ...]] = []
    for call, request in zip(remote, requests, strict=True):
        try:
            pickle.dumps(request, pickle.HIGHEST_PROTOCOL)
        except Exception:
            local.append(call)
        else:
            kept.append(call)
            kept_requests.append(request)
    return kept, kept_requests, local


def _fail(calls: list[Work], done: Callable[[list[Work]], None], error: BaseException | None) -> None:
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
