"""An anonymous 200 MB signup against a real ``swapd serve``: refused with 413 at once, whether the
body is chunked or declared by Content-Length, and the server's memory does not follow the body.

Without a limit the whole body was read and parsed before its 422, and the server's memory grew
by several times the body's size for the length of the request.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.security.conftest import ServeFactory, Server, migrated_sqlite_url

BODY_BYTES = 200 * 1024 * 1024
CHUNK_BYTES = 1024 * 1024
MAX_RSS_GROWTH_BYTES = 50 * 1024 * 1024
ANSWER_WITHIN_S = 15.0
SIGNUP = "/api/v1/auth/signup"


def rss_bytes(pid: int) -> int:
    """The resident memory of ``pid`` (the server's main process, not its writer process)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


class PeakRss:
    """The highest RSS of ``pid`` seen while the block runs, sampled every few milliseconds: the
    memory a body costs is given back once it is parsed, so the value after the answer says
    little."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_bytes = rss_bytes(pid)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._done.wait(0.005):
            self.peak_bytes = max(self.peak_bytes, rss_bytes(self.pid))

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._done.set()
        self._thread.join()
        self.peak_bytes = max(self.peak_bytes, rss_bytes(self.pid))


def body(sent: list[int]) -> Iterator[bytes]:
    """200 MB of a JSON string, made as it is sent: the test never holds it."""
    chunk = b"x" * CHUNK_BYTES
    yield b'{"email": "a@example.com", "password": "'
    for _ in range(BODY_BYTES // CHUNK_BYTES):
        sent[0] += CHUNK_BYTES
        yield chunk
    yield b'", "plan_id": "p"}'


def assert_refused(answer: httpx.Response) -> None:
    assert answer.status_code == 413, answer.text[:500]
    assert answer.json()["code"] == "body_too_large"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    assert answer.headers["cache-control"] == "no-store"


def head_only(server: Server) -> bytes:
    """A request that declares 200 MB and sends none of it: the answer must not wait for it."""
    head = (
        f"POST {SIGNUP} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {BODY_BYTES}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5.0) as connection:
        connection.sendall(head)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
            data = connection.recv(65_536)
            if not data:
                break
            answer += data
    return answer


def test_a_200_mb_signup_is_refused_at_once_and_costs_the_server_no_memory(
    serve: ServeFactory, tmp_path: Path
) -> None:
    server = serve(migrated_sqlite_url(tmp_path))
    pid = server.process.pid
    json_type = {"Content-Type": "application/json"}
    with server.client(timeout_s=ANSWER_WITHIN_S) as client:
        # Warm the code paths a signup takes, so that what is measured is the body alone.
        for _ in range(3):
            client.post(SIGNUP, json={"email": "w@example.com", "password": "x" * 12, "plan_id": "p"})
        before = rss_bytes(pid)

        # Chunked: no length declared, the bytes are counted as they arrive.
        chunked_sent = [0]
        started = time.monotonic()
        with PeakRss(pid) as during_chunked:
            chunked = client.post(SIGNUP, content=body(chunked_sent), headers=json_type)
        chunked_s = time.monotonic() - started
        assert_refused(chunked)
        assert chunked.request.headers["transfer-encoding"] == "chunked"

        # Declared: Content-Length says 200 MB; the body that follows is never read.
        declared_sent = [0]
        length = {"Content-Length": str(BODY_BYTES + 59)}
        started = time.monotonic()
        with PeakRss(pid) as during_declared:
            declared = client.post(SIGNUP, content=body(declared_sent), headers={**json_type, **length})
        declared_s = time.monotonic() - started
        assert_refused(declared)
        assert declared.request.headers["content-length"] == length["Content-Length"]

    mib = 2**20
    print(
        f"server RSS {before / mib:.1f} MiB before; at most {during_chunked.peak_bytes / mib:.1f} "
        f"during the chunked body ({chunked_s:.2f} s, {chunked_sent[0] / mib:.0f} MiB sent), "
        f"{during_declared.peak_bytes / mib:.1f} during the declared one "
        f"({declared_s:.2f} s, {declared_sent[0] / mib:.0f} MiB sent)"
    )
    assert chunked_s < ANSWER_WITHIN_S and declared_s < ANSWER_WITHIN_S
    assert during_chunked.peak_bytes - before < MAX_RSS_GROWTH_BYTES
    assert during_declared.peak_bytes - before < MAX_RSS_GROWTH_BYTES
    # The client stops sending when the server closes the connection.
    assert chunked_sent[0] < BODY_BYTES and declared_sent[0] < BODY_BYTES

    # Declared and never sent: answered at once, not after waiting for the body.
    answer = head_only(server)
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 413 "), answer[:300]
    headers = rest.split(b"\r\n\r\n", 1)[0].lower()
    assert b"connection: close" in headers
    assert b"x-content-type-options: nosniff" in headers
    assert b'"code":"body_too_large"' in answer

    # And the server still serves.
    assert httpx.get(f"{server.http_url}/healthz", timeout=5.0).status_code == 200
