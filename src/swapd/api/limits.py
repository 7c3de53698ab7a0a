"""A limit on every HTTP request body, enforced before the body is read.

A body over the limit is refused with 413 ``body_too_large``: at once when its Content-Length says
so (the app is not even called), else as soon as the bytes received so far pass the limit (a
chunked or streamed body is counted as it arrives, never buffered). Either way the connection is
closed after the answer, so the rest of the body is never read.

The limit is ``SWAPD_MAX_BODY_BYTES`` (default 1 MiB). A few routes keep limits of their own
(payment webhooks, pack imports): ``BodyLimit`` takes them by path prefix.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from swapd.api.errors import ErrorBody

ENV_MAX_BODY_BYTES = "SWAPD_MAX_BODY_BYTES"
DEFAULT_MAX_BODY_BYTES = 1024 * 1024


class BodyLimitConfigError(ValueError):
    """``SWAPD_MAX_BODY_BYTES`` is not a positive whole number: fail at startup."""


def max_body_bytes_from_env(env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    text = env.get(ENV_MAX_BODY_BYTES, "").strip()
    if not text:
        return DEFAULT_MAX_BODY_BYTES
    if not text.isdigit() or int(text) < 1:
        raise BodyLimitConfigError(
            f"{ENV_MAX_BODY_BYTES} must be a whole number of bytes, at least 1; got {text!r}"
        )
    return int(text)


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once the body passes its limit. An HTTPException, so that FastAPI's
    body parsing passes it on unchanged; ``BodyLimit`` answers it either way."""

    def __init__(self, limit_bytes: int) -> None:
        super().__init__(status_code=413, detail=too_large_detail(limit_bytes))


def too_large_detail(limit_bytes: int) -> str:
    return f"the request body is over this route's limit of {limit_bytes} bytes"


class BodyLimit:
    """Pure ASGI middleware: at most ``default_bytes`` of request body, or the limit of the first
    prefix in ``route_limits`` the path starts with. Only HTTP scopes: WebSocket (OCPP frames have
    their own limit) and lifespan pass through untouched."""

    def __init__(
        self, app: ASGIApp, *, default_bytes: int, route_limits: Mapping[str, int] | None = None
    ) -> None:
        assert default_bytes >= 1
        self.app = app
        self.default_bytes = default_bytes
        self.route_limits = dict(route_limits or {})

    def limit_for(self, path: str) -> int:
        for prefix, limit_bytes in self.route_limits.items():
            if path.startswith(prefix):
                return limit_bytes
        return self.default_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit_bytes = self.limit_for(str(scope["path"]))
        declared = Headers(scope=scope).get("content-length", "")
        # The server has already refused a malformed Content-Length; a too large one is refused
        # here before anything reads the body.
        if declared.isdigit() and int(declared) > limit_bytes:
            await _refuse(send, limit_bytes)
            return

        received_bytes = 0
        refused = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received_bytes, refused
            if refused:
                raise BodyTooLarge(limit_bytes)
            message = await receive()
            if message["type"] == "http.request":
                received_bytes += len(message.get("body", b""))
                if received_bytes > limit_bytes:
                    refused = True
                    raise BodyTooLarge(limit_bytes)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused and not started:
                return  # whatever the app makes of the refusal, the 413 below is the answer
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            # Once refused, however the app ends (BodyTooLarge itself, or what a handler made of
            # it) the refusal is the answer.
            if not refused or started:
                raise
        if refused and not started:
            await _refuse(send, limit_bytes)


async def _refuse(send: Send, limit_bytes: int) -> None:
    body = ErrorBody(code="body_too_large", detail=too_large_detail(limit_bytes))
    content = body.model_dump_json(exclude_none=True).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(content)).encode()),
                # The unread rest of the body must not be taken for the next request.
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": content})
