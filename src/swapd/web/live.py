"""Server-sent events for the pages that update themselves (a station's slots, the swap feed, a
rider's swap under way): a stream that polls a read model, sends what changed, keeps proxies from
closing an idle stream, and ends by itself (the browser's EventSource then reconnects)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi.responses import StreamingResponse
from starlette.requests import Request

POLL_S = 1.0
KEEPALIVE_S = 15.0
HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


def event(name: str, data: object) -> str:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def stream(
    request: Request, step: Callable[[], Awaitable[list[str] | None]], *, lasting_s: float
) -> StreamingResponse:
    """Every ``POLL_S``: ``step`` returns the events to send now (none: nothing changed), or
    None when the stream is over; a comment goes out after ``KEEPALIVE_S`` of silence."""

    async def events() -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        started = last_sent = loop.time()
        while loop.time() - started < lasting_s and not await request.is_disconnected():
            sent = await step()
            if sent is None:
                return
            for message in sent:
                yield message
            if sent:
                last_sent = loop.time()
            elif loop.time() - last_sent > KEEPALIVE_S:
                last_sent = loop.time()
                yield ": keep-alive\n\n"
            await asyncio.sleep(POLL_S)

    return StreamingResponse(events(), media_type="text/event-stream", headers=HEADERS)
