"""Security headers on every HTTP answer: the API, /healthz, /metrics, /docs and every error.

One policy for all of it. Scripts, styles and images come from swapd only: /docs is served from
the package (see swapd.api.docs) and starts Swagger UI from a file, so no inline script is allowed.
Inline *styles* are (Swagger UI and the sandbox payment page set style attributes). No page may be
framed (clickjacking), no referrer leaves, and browsers must not guess content types.

API answers carry personal data (balances, emails, tokens): they are ``no-store`` unless a route
says otherwise.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "img-src 'self' data:",
        "style-src 'self' 'unsafe-inline'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    )
)

SECURITY_HEADERS: dict[str, str] = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Referrer-Policy": "no-referrer",
}

NO_STORE = "no-store"


class SecurityHeaders:
    """Pure ASGI middleware: adds ``SECURITY_HEADERS`` to each HTTP answer that lacks them, and
    ``Cache-Control: no-store`` to the answers under ``no_store_prefix``. WebSocket and lifespan
    scopes pass through untouched."""

    def __init__(self, app: ASGIApp, *, no_store_prefix: str) -> None:
        self.app = app
        self.no_store_prefix = no_store_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        no_store = str(scope["path"]).startswith(self.no_store_prefix)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])  # optional in ASGI
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
                if no_store:
                    headers.setdefault("Cache-Control", NO_STORE)
            await send(message)

        await self.app(scope, receive, send_with_headers)
