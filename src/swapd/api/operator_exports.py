"""CSV exports for staff, streamed: swaps, riders, packs and ledger transfers. Amounts are integers
(money in minor units beside a currency column, allowance beside a unit column).

Every export reads the read replica when one is configured (``ReadDb``, swapd.store.replica): an
export is a report of the past, and one a few seconds behind the primary is what an export
started a few seconds earlier would have been. Nothing is decided on it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from pydantic import AwareDatetime

from swapd.api.deps import ReadDb, Staff
from swapd.api.errors import responses
from swapd.api.operator_common import PREFIX, csv_response
from swapd.readmodels import money, packs, riders, swaps

router = APIRouter(prefix=f"{PREFIX}/exports", tags=["operator: exports"])

Since = Annotated[AwareDatetime | None, Query(alias="from", description="Inclusive")]
Until = Annotated[AwareDatetime | None, Query(alias="to", description="Exclusive")]
_CSV: dict[int | str, dict[str, Any]] = {200: {"content": {"text/csv": {"schema": {"type": "string"}}}}}


@router.get(
    "/swaps.csv",
    response_class=StreamingResponse,
    responses={**_CSV, **responses(401, 403, 422)},
    summary="Swaps in a time range with usage and charges, as CSV",
)
def export_swaps(
    _caller: Staff, db: ReadDb, since: Since = None, until: Until = None
) -> StreamingResponse:
    rows = swaps.export_swaps(db, since=since, until=until)
    return csv_response("swaps.csv", swaps.SWAP_COLUMNS, rows)


@router.get(
    "/riders.csv",
    response_class=StreamingResponse,
    responses={**_CSV, **responses(401, 403)},
    summary="Riders with their balances, as CSV",
)
def export_riders(_caller: Staff, db: ReadDb) -> StreamingResponse:
    return csv_response("riders.csv", riders.RIDER_COLUMNS, riders.export_riders(db))


@router.get(
    "/packs.csv",
    response_class=StreamingResponse,
    responses={**_CSV, **responses(401, 403)},
    summary="The fleet and where each pack is, as CSV",
)
def export_packs(_caller: Staff, db: ReadDb) -> StreamingResponse:
    return csv_response("packs.csv", packs.PACK_COLUMNS, packs.export_packs(db))


@router.get(
    "/transfers.csv",
    response_class=StreamingResponse,
    responses={**_CSV, **responses(401, 403, 422)},
    summary="Ledger transfers in a time range, as CSV",
)
def export_transfers(
    _caller: Staff, db: ReadDb, since: Since = None, until: Until = None
) -> StreamingResponse:
    rows = money.export_transfers(db, since=since, until=until)
    return csv_response("transfers.csv", money.TRANSFER_COLUMNS, rows)
