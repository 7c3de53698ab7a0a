"""The console's swaps: the live feed (newest first, new swaps added as they happen, over
server-sent events) and one swap with the packs' readings, the charge and its transfers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from swapd import i18n
from swapd.domain.errors import NotFound
from swapd.readmodels import swaps
from swapd.web import session
from swapd.web.render import database, render, translator

router = APIRouter(include_in_schema=False)
FEED_LIMIT = 50
FEED_POLL_S = 1.0
FEED_STREAM_S = 600.0
FEED_KEEPALIVE_S = 15.0

STATE_TEXT = {
    "offered": "Offered",
    "refused": "Refused",
    "completed": "Completed",
    "abandoned": "Abandoned",
    "returned": "Returned",
}


def feed_line(row: swaps.SwapRow, t: i18n.Translator) -> dict[str, object]:
    """One line of the feed, as the page draws it and the live stream sends it."""
    return {
        "id": row.id,
        "at": t.when(row.created_at),
        "station_id": row.station_id,
        "rider_id": row.rider_id or "",
        "state": row.state,
        "state_text": t.gettext(STATE_TEXT.get(row.state, row.state)),
        "reason": row.reason or "",
    }


@router.get("/swaps")
def swaps_page(request: Request, station: str = "", rider: str = "") -> HTMLResponse:
    db = database(request)
    user = session.staff(db, request)
    t = translator(request)
    station_id, rider_id = station.strip()[:40] or None, rider.strip()[:40] or None
    rows = swaps.swaps(db, station_id=station_id, rider_id=rider_id, limit=FEED_LIMIT)
    lines = [feed_line(r, t) for r in rows]
    return render(
        request, "swaps.html", user=user, lines=lines, station=station_id or "", rider=rider_id or ""
    )


@router.get("/swaps/live")
async def swaps_live(request: Request, after: int = 0, station: str = "", rider: str = "") -> Response:
    db = database(request)
    await run_in_threadpool(session.staff, db, request)
    t = translator(request)
    station_id, rider_id = station.strip()[:40] or None, rider.strip()[:40] or None

    async def events() -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        started = last_sent = loop.time()
        newest = max(after, 0)
        while loop.time() - started < FEED_STREAM_S and not await request.is_disconnected():
            rows = await run_in_threadpool(
                lambda: swaps.swaps(db, station_id=station_id, rider_id=rider_id, limit=FEED_LIMIT)
            )
            new = [feed_line(r, t) for r in reversed(rows) if r.id > newest]
            if new:
                newest = max(int(str(line["id"])) for line in new)
                last_sent = loop.time()
                yield f"event: swaps\ndata: {json.dumps(new, separators=(',', ':'))}\n\n"
            elif loop.time() - last_sent > FEED_KEEPALIVE_S:
                last_sent = loop.time()
                yield ": keep-alive\n\n"
            await asyncio.sleep(FEED_POLL_S)

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


@router.get("/swaps/{swap_id}")
def swap_page(request: Request, swap_id: int) -> HTMLResponse:
    db = database(request)
    user = session.staff(db, request)
    try:
        detail = swaps.swap_detail(db, swap_id)
    except NotFound:
        return render(request, "not_found.html", status=404, user=user, what=str(swap_id))
    t = translator(request)
    return render(
        request,
        "swap.html",
        user=user,
        d=detail,
        state_text=t.gettext(STATE_TEXT.get(detail.swap.state, detail.swap.state)),
    )
