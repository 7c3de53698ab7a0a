"""What the console and the app share for downloads: a PDF answer, and the months a rider has
statements for."""

from __future__ import annotations

from fastapi.responses import Response

from swapd.readmodels import riders
from swapd.store.database import Database


def months_of(db: Database, rider_id: str, *, most: int = 12) -> list[str]:
    """The months a rider has statements for, newest first: from the month they joined to the
    database clock's month, at most ``most``."""
    joined = riders.rider(db, rider_id).created_at
    now = db.clock.now()
    months: list[str] = []
    year, month = now.year, now.month
    while len(months) < most and (year, month) >= (joined.year, joined.month):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return months


def pdf_response(body: bytes, filename: str) -> Response:
    headers = {
        "Content-Disposition": f'attachment; filename="{filename}"',
        "Cache-Control": "no-store",
    }
    return Response(body, media_type="application/pdf", headers=headers)
