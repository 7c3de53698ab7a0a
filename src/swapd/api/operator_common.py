"""What the operator route modules share: pages, reasons, percentages in basis points, CSV."""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal
from typing import Annotated, Generic, TypeVar

from fastapi import Depends, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from swapd import csv_safe
from swapd.api.deps import allow
from swapd.services.identity import Principal, Role

T = TypeVar("T")

PREFIX = "/ops"
PAGE_LIMIT_DEFAULT = 100
PAGE_LIMIT_MAX = 500
CSV_FLUSH_ROWS = 500  # rows per chunk sent while streaming an export

Limit = Annotated[int, Query(ge=1, le=PAGE_LIMIT_MAX, description="Rows per page")]
# Basis points of a percent: 9000 == 90.00 %; exact integers like every quantity here.
Bp = Annotated[int, Field(ge=0, le=10_000)]

# The audit log is read by admins and support (who answer riders' questions); operators run the
# network and do not need who-did-what on money.
AuditReader = Annotated[Principal, Depends(allow(Role.ADMIN, Role.SUPPORT))]


class Page(BaseModel, Generic[T]):
    """One page of a list; pass ``next`` back as the cursor for the following page."""

    items: list[T]
    next: str | None = Field(description="Cursor of the next page; null on the last page")


def page_of(items: Sequence[T], limit: int, cursor: str | None) -> Page[T]:
    return Page[T](items=list(items), next=cursor if len(items) == limit else None)


class Reason(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=500, description="Why; kept in the audit log")


def bp_to_percent(value_bp: int) -> Decimal:
    """The services take percentages; basis points convert exactly."""
    return Decimal(value_bp).scaleb(-2)


def csv_response(
    filename: str, header: Sequence[str], rows: Iterable[Sequence[object]]
) -> StreamingResponse:
    """A CSV download written as the rows arrive: memory stays bounded whatever the size. Text
    cells that a spreadsheet would run as formulas are written as text (swapd.csv_safe)."""

    def chunks() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv_safe.writer(buffer, lineterminator="\n")
        writer.writerow(header)
        pending = 1
        for row in rows:
            writer.writerow(row)
            pending += 1
            if pending >= CSV_FLUSH_ROWS:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
                pending = 0
        yield buffer.getvalue()

    return StreamingResponse(
        chunks(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
