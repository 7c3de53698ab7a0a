"""The WebSocket protocol swapd runs under uvicorn: uvicorn's sans-I/O websockets one, reading on
while a station has a few messages waiting, refusing limited clients before the application,
and logging less.

Reading: uvicorn pauses reading a socket after every message it queues for the application and
resumes as soon as the application takes it. For OCPP-J, where a station sends one CALL and
waits for its answer, that is two ``epoll_ctl`` system calls and two selector updates per
message for no back-pressure gained: 7 % of the server's CPU in the swap benchmark (py-spy).
Here reading pauses only once ``PAUSE_AFTER_MESSAGES`` messages wait unread, and resumes when
the application has taken them all, so one socket still buffers at most that many frames of
``ws_max_size``.

Refusing early: a client address limited for failed logins (swapd.gateway.auth_limits) is
answered 429 here, as soon as its upgrade request is parsed, without the application's
middleware, routing and handler: under a flood of upgrades from such an address, each costs
the server as little as it can. The check comes from the application's lifespan state
(``EARLY_REFUSAL``); without it every upgrade goes to the application, which checks again.

TLS: uvicorn puts nothing of the connection's TLS into the ASGI scope. With client certificates
(security profile 3) the application must see the station's certificate, so the scope gets
ASGI's TLS extension (``TLS_EXTENSION``) from the transport's SSL object before the application
runs; see ``tls_extension``.

Logging: uvicorn and websockets write two or three lines for every upgrade, accepted or refused,
and an error ("returned without completing handshake") after every refusal, which is the right
answer to a wrong password, not an error. swapd logs what matters itself (a station connected,
disconnected, refused: swapd.gateway.auth), so these loggers keep only warnings and errors.
"""

from __future__ import annotations

import asyncio
import logging
import math
import ssl
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.auto import AutoHTTPProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request
from websockets.protocol import State

PAUSE_AFTER_MESSAGES = 4
# Lifespan state key: a function of the client's host giving seconds to wait, or None if the
# upgrade may go on to the application.
EARLY_REFUSAL = "swapd.early_refusal"
EarlyRefusal = Callable[[str], float | None]
OCPP_PATH_PREFIX = "/ocpp/"
# ASGI's extension key for the connection's TLS (asgi.readthedocs.io, "TLS Extension").
TLS_EXTENSION = "tls"
_TLS_VERSIONS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}
_LOG = logging.getLogger("swapd.gateway.websocket")
_LOG.setLevel(logging.WARNING)


class SwapdWebSocketProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.logger = _LOG
        self.conn.logger = _LOG
        self.conn.debug = False

    def handle_connect(self, event: Request) -> None:
        refusal: EarlyRefusal | None = self.app_state.get(EARLY_REFUSAL)
        if refusal is not None and self.client is not None and event.path.startswith(OCPP_PATH_PREFIX):
            retry_s = refusal(self.client[0])
            if retry_s is not None:
                self._refuse_early(retry_s)
                return
        super().handle_connect(event)

    def _refuse_early(self, retry_s: float) -> None:
        """429 with Retry-After and close, as uvicorn answers an upgrade it cannot accept."""
        response = self.conn.reject(429, "too many failed logins\n")
        response.headers["Retry-After"] = str(max(1, math.ceil(retry_s)))
        self.handshake_initiated = self.handshake_complete = self.close_sent = True
        self.conn.send_response(response)
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.transport.close()

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.http.response.body" and self.close_sent:
            # A refusal (401, 429, ...) was sent and the socket closed: that is the handshake's
            # end, and uvicorn should not report the application for not completing it.
            self.handshake_complete = True

    def shutdown(self) -> None:
        # uvicorn's shutdown sends close 1012 on every connection whose handshake is complete,
        # and websockets raises InvalidState (out of the server's shutdown) for one the client
        # has begun closing already, a close uvicorn's own flag does not record. That close
        # handshake is under way: only the socket is left to close.
        if self.handshake_complete and not self.close_sent and self.conn.state is not State.OPEN:
            self.stop_keepalive()
            self.transport.close()
            return
        super().shutdown()

    async def run_asgi(self) -> None:
        tls = tls_extension(self.transport)
        if tls is not None:
            extensions: dict[str, Any] = self.scope.setdefault("extensions", {})
            extensions[TLS_EXTENSION] = tls
        await super().run_asgi()

    def send_receive_event_to_app(self) -> None:
        paused = self.read_paused
        # uvicorn's method queues the message and pauses unless reading is paused already:
        # let it believe so, and decide here.
        self.read_paused = True
        try:
            super().send_receive_event_to_app()
        finally:
            self.read_paused = paused
        if not self.read_paused and self.queue.qsize() >= PAUSE_AFTER_MESSAGES:
            self.read_paused = True
            self.transport.pause_reading()


def tls_extension(transport: asyncio.BaseTransport) -> dict[str, Any] | None:
    """ASGI's TLS extension for a connection over TLS (None without TLS), with what swapd reads:
    ``client_cert_chain``, the peer's certificate in PEM when it sent one (the leaf alone: Python
    3.11's ssl gives no chain; the server's context verified it against its CA when it asked
    for one) and ``tls_version``. The other fields are None."""
    ssl_object = transport.get_extra_info("ssl_object")
    if not isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket):
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return {
        "server_cert": None,
        "client_cert_chain": [] if der is None else [ssl.DER_cert_to_PEM_cert(der)],
        "client_cert_name": None,
        "client_cert_error": None,
        "tls_version": _TLS_VERSIONS.get(ssl_object.version() or ""),
        "cipher_suite": None,
    }


class SwapdHTTPProtocol(AutoHTTPProtocol):  # type: ignore[misc,valid-type]
    """uvicorn's HTTP protocol (httptools when installed, else h11), answering 429 to an OCPP
    upgrade from a limited client address by the first bytes of its connection, before any
    HTTP parsing. A first read too short to tell goes the ordinary way, and is checked there."""

    _first_read = True
    _OCPP_REQUEST = b"GET " + OCPP_PATH_PREFIX.encode()

    def data_received(self, data: bytes) -> None:
        if self._first_read:
            self._first_read = False
            if data.startswith(self._OCPP_REQUEST) and self._refused_early():
                return
        super().data_received(data)

    def _refused_early(self) -> bool:
        refusal: EarlyRefusal | None = self.app_state.get(EARLY_REFUSAL)
        if refusal is None or self.client is None:
            return False
        retry_s = refusal(self.client[0])
        if retry_s is None:
            return False
        self.transport.write(
            b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: %d\r\nConnection: close\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: 23\r\n\r\n"
            b"too many failed logins\n" % max(1, math.ceil(retry_s))
        )
        self.transport.close()
        return True
