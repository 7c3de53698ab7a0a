"""The console's swaps: the live feed (newest first, new swaps added as they happen, over
server-sent events) and one swap with the packs' readings, the charge and its transfers."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from swapd import i18n
from swapd.domain.errors import NotFound
from swapd.readmodels import swaps
from swapd.web import live, session
from swapd.web.render import database, read_database, render, translator

router = APIRouter(include_in_schema=False)
FEED_LIMIT = 50
FEED_STREAM_S = 600.0

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
    # The replica: the swap feed, a history; new swaps come by the live stream.
    reads = read_database(request)
    t = translator(request)
    station_id, rider_id = station.strip()[:40] or None, rider.strip()[:40] or None
    rows = swaps.swaps(reads, station_id=station_id, rider_id=rider_id, limit=FEED_LIMIT)
    lines = [feed_line(r, t) for r in rows]
    return render(
        request, "swaps.html", user=user, lines=lines, station=station_id or "", rider=rider_id or ""
    )


@router.get("/swaps/live")
async def swaps_live(request: Request, after: int = 0, station: str = "", rider: str = "") -> Response:
    db = database(request)
    await run_in_threadpool(session.staff, db, request)
    # The replica: each poll shows what it has replayed; a swap it lags on comes a poll later.
    reads = read_database(request)
    t = translator(request)
    station_id, rider_id = station.strip()[:40] or None, rider.strip()[:40] or None
    newest = max(after, 0)

    async def step() -> list[str]:
        nonlocal newest
        rows = await run_in_threadpool(
            lambda: swaps.swaps(reads, station_id=station_id, rider_id=rider_id, limit=FEED_LIMIT)
        )
        new = [feed_line(r, t) for r in reversed(rows) if r.id > newest]
        if not new:
            return []
        newest = max(r.id for r in rows)
        return [live.event("swaps", new)]

    return live.stream(request, step, lasting_s=FEED_STREAM_S)


@router.get("/swaps/{swap_id}")
def swap_page(request: Request, swap_id: int) -> HTMLResponse:
    db = database(request)
    user = session.staff(db, request)
    # The replica: one swap as inspected; nothing is decided on it.
    reads = read_database(request)
    try:
        detail = swaps.swap_detail(reads, swap_id)
    except NotFound:
        return render(request, "not_found.html", status=404, user=user, what=str(swap_id))
    t = translator(request)
    return render(
        request,
        "swap.html",
        user=user,
        d=detail,
        choice=swaps.choice_view(detail.choice),
        state_text=t.gettext(STATE_TEXT.get(detail.swap.state, detail.swap.state)),
    )
