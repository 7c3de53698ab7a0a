"""Pack models and packs for staff: lists with filters, registration one by one or from a CSV
file (all or nothing, with a report per line), quarantine, retirement, issuing a pack to a rider
outside a swap, and a pack's history.

Pack serials may contain '/', so the routes take them as path parameters of the ``path`` kind;
the routes with a suffix (``/history``, ``/quarantine``, ``/retire``, ``/issue``) are declared
first.
"""

from __future__ import annotations

import dataclasses
import email.parser
import email.policy
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from swapd.api.deps import Db, IdempotencyKey, Operator, ReadDb, Staff, once
from swapd.api.errors import ErrorBody, responses
from swapd.api.operator_common import PREFIX, Bp, Limit, Page, Reason, bp_to_percent, page_of
from swapd.domain.errors import InvalidInput
from swapd.domain.packs import Pack, PackModel, PackStatus
from swapd.readmodels import packs
from swapd.services import back_office, catalog, issue

router = APIRouter(prefix=PREFIX, tags=["operator: packs"])

MAX_IMPORT_BYTES = 2 * 1024 * 1024


class PackModelOut(BaseModel):
    code: str
    nominal_wh: int
    packs: int  # in the fleet, retired ones included


class NewPackModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(min_length=1, max_length=40, examples=["G2"])
    nominal_wh: int = Field(ge=1, le=1_000_000)


class PackOut(BaseModel):
    serial: str
    model: str
    nominal_wh: int
    status: PackStatus
    place: str  # for people: "slot 3 of station ST1", "with rider R1", "quarantined"
    station_id: str | None
    slot_no: int | None
    rider_id: str | None
    reserved_swap_id: int | None
    soc_bp: int
    soh_bp: int
    deliverable_wh: int
    cycle_count: int

    @classmethod
    def of(cls, pack: Pack) -> PackOut:
        return cls.model_validate(packs.pack_view(pack))


class NewPack(BaseModel):
    model_config = ConfigDict(extra="forbid")
    serial: str = Field(min_length=1, max_length=50)
    model: str = Field(min_length=1, max_length=40)
    soh_bp: Bp = 10_000
    soc_bp: Bp = 0
    station_id: str | None = Field(None, min_length=1, max_length=40)
    slot_no: int | None = Field(None, ge=1, le=10_000)


class ImportLineOut(BaseModel):
    line: int
    serial: str | None
    error: str | None  # null: the line was good


class ImportOut(BaseModel):
    """All or nothing: ``imported`` is 0 and nothing was written when any line was refused."""

    imported: int
    rejected: int
    lines: list[ImportLineOut]


class PossessionOut(BaseModel):
    """One stay with a rider: out of a station (with its SoC) and back into one, or not yet."""

    rider_id: str
    swap_out_id: int | None
    station_out: str
    slot_out: int
    at_out: datetime
    soc_out_bp: int
    soh_out_bp: int
    swap_in_id: int | None
    station_in: str | None
    slot_in: int | None
    at_in: datetime | None
    soc_in_bp: int | None
    soh_in_bp: int | None
    usage_units: int | None
    anomaly: str | None

    @classmethod
    def of(cls, p: packs.Possession) -> PossessionOut:
        return cls.model_validate(p, from_attributes=True)


class PackHistoryOut(BaseModel):
    pack: PackOut
    history: list[PossessionOut]  # oldest first; the last one open while the pack is with a rider


# The replica (ReadDb): a catalogue list; create_model answers from the primary itself.
@router.get("/pack-models", responses=responses(401, 403), summary="Pack models")
def list_models(_caller: Staff, db: ReadDb) -> list[PackModelOut]:
    return [
        PackModelOut(code=m.model.code, nominal_wh=m.model.nominal_wh, packs=m.packs)
        for m in packs.pack_models(db)
    ]


@router.post(
    "/pack-models",
    status_code=status.HTTP_201_CREATED,
    responses=responses(401, 403, 409, 422),
    summary="Add a pack model",
)
def create_model(body: NewPackModel, _caller: Operator, db: Db) -> PackModelOut:
    model: PackModel = catalog.add_pack_model(db, body.code, body.nominal_wh)
    return PackModelOut(code=model.code, nominal_wh=model.nominal_wh, packs=0)


# The replica (ReadDb): the fleet list, filtered; one pack after a change is get_pack (primary).
@router.get("/packs", responses=responses(401, 403), summary="Packs, filtered, in serial order")
def list_packs(
    _caller: Staff,
    db: ReadDb,
    status_: Annotated[PackStatus | None, Query(alias="status")] = None,
    station_id: Annotated[str | None, Query(max_length=40)] = None,
    model: Annotated[str | None, Query(max_length=40)] = None,
    after: Annotated[str | None, Query(max_length=50, description="Cursor: last serial seen")] = None,
    limit: Limit = 100,
) -> Page[PackOut]:
    found = packs.packs(
        db,
        status=None if status_ is None else status_.value,
        station_id=station_id,
        model_code=model,
        after=after,
        limit=limit,
    )
    return page_of([PackOut.of(p) for p in found], limit, found[-1].serial if found else None)


@router.post(
    "/packs",
    status_code=status.HTTP_201_CREATED,
    responses=responses(401, 403, 404, 409, 422),
    summary="Register a pack, in the depot or straight into an empty slot",
)
def register_pack(body: NewPack, _caller: Operator, db: Db) -> PackOut:
    pack = catalog.register_pack(
        db,
        body.serial,
        body.model,
        soh=bp_to_percent(body.soh_bp),
        soc=bp_to_percent(body.soc_bp),
        station_id=body.station_id,
        slot_no=body.slot_no,
    )
    return PackOut.of(pack)


CSV_TYPES = ("text/csv", "text/plain")


class UnsupportedCsvType(Exception):
    """The body is neither CSV nor a form: 415, before anything is parsed."""

    def __init__(self, kind: str) -> None:
        super().__init__(
            f"send the CSV as text/csv or as multipart/form-data field 'file', not {kind or 'no type'}"
        )


def _csv_text(content_type: str, raw: bytes) -> str:
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "multipart/form-data":
        # The standard library's MIME parser reads form-data; the first file part is the CSV.
        header = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1")
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(header + raw)
        if not message.is_multipart():
            raise InvalidInput("the multipart body could not be read")
        for part in message.iter_parts():
            if part.get_param("name", header="content-disposition") in ("file", "csv"):
                payload = part.get_payload(decode=True)
                raw = payload if isinstance(payload, bytes) else b""
                break
        else:
            raise InvalidInput("send the CSV as the form field 'file'")
    elif kind not in CSV_TYPES:
        raise UnsupportedCsvType(kind)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("the CSV is not UTF-8 text") from None


_IMPORT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
        },
    }
}


@router.post(
    "/packs/import",
    # 422: an import whose every line was rejected (ImportOut), or a body that cannot be read.
    responses={**responses(401, 403, 413, 415), 422: {"model": ImportOut | ErrorBody}},
    openapi_extra=_IMPORT_BODY,
    summary="Import packs from CSV (serial,model,soh,soc[,station,slot]): all or none",
)
async def import_packs(request: Request, caller: Operator, db: Db) -> JSONResponse:
    # The body is read here, not by FastAPI: it is CSV (plain or in a form), not JSON.
    raw = bytearray()
    async for chunk in request.stream():
        raw.extend(chunk)
        if len(raw) > MAX_IMPORT_BYTES:
            return JSONResponse(
                {"code": "too_large", "detail": f"at most {MAX_IMPORT_BYTES} bytes per import"},
                status_code=413,
            )
    try:
        text = _csv_text(request.headers.get("content-type", ""), bytes(raw))
    except UnsupportedCsvType as error:
        return JSONResponse(
            {"code": "unsupported_media_type", "detail": str(error)},
            status_code=status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
        )
    report = await run_in_threadpool(back_office.import_packs, db, caller.actor, text)
    body = ImportOut(
        imported=report.imported,
        rejected=len(report.rejected),
        lines=[ImportLineOut(line=x.line, serial=x.serial, error=x.error) for x in report.lines],
    )
    return JSONResponse(body.model_dump(), status_code=200 if report.imported else 422)


# The replica (ReadDb): a pack's past stays with riders, a report.
@router.get(
    "/packs/{serial:path}/history",
    responses=responses(401, 403, 404),
    summary="Where a pack is and has been: each stay with a rider, out and back, with SoC",
)
def pack_history(serial: str, _caller: Staff, db: ReadDb) -> PackHistoryOut:
    history = packs.pack_history(db, serial)
    return PackHistoryOut(
        pack=PackOut.of(history.pack), history=[PossessionOut.of(p) for p in history.possessions]
    )


@router.post(
    "/packs/{serial:path}/quarantine",
    responses=responses(401, 403, 404, 409, 422),
    summary="Take a pack out of its slot or the depot into quarantine (audited)",
)
def quarantine_pack(serial: str, body: Reason, caller: Operator, db: Db) -> PackOut:
    pack = back_office.take_out_of_service(db, caller.actor, serial, PackStatus.QUARANTINED, body.reason)
    return PackOut.of(pack)


@router.post(
    "/packs/{serial:path}/retire",
    responses=responses(401, 403, 404, 409, 422),
    summary="Retire a pack for good (audited)",
)
def retire_pack(serial: str, body: Reason, caller: Operator, db: Db) -> PackOut:
    pack = back_office.take_out_of_service(db, caller.actor, serial, PackStatus.RETIRED, body.reason)
    return PackOut.of(pack)


class NewIssue(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rider_id: str = Field(min_length=1, max_length=40, examples=["R1"])


class IssuedOut(BaseModel):
    serial: str
    rider_id: str
    station_id: str  # the station and slot it was handed over from
    slot_no: int
    soc_bp: int
    soh_bp: int
    hold_units: int
    unit: str
    available_units: int
    swap_id: int | None
    repeated: bool  # the rider held this pack already: nothing was written


@router.post(
    "/packs/{serial:path}/issue",
    status_code=status.HTTP_201_CREATED,
    response_model=IssuedOut,
    responses={
        200: {"model": IssuedOut, "description": "The rider holds the pack already"},
        **responses(401, 403, 404, 409, 422),
    },
    summary="Hand a pack from its slot to a rider outside a swap, as a station would "
    "(Idempotency-Key; audited)",
)
def issue_pack(
    serial: str,
    body: NewIssue,
    caller: Operator,
    db: Db,
    request: Request,
    idempotency_key: IdempotencyKey,
) -> JSONResponse:
    def work() -> tuple[int, IssuedOut]:
        done = issue.issue_pack(db, caller.actor, serial, body.rider_id)
        code = status.HTTP_200_OK if done.repeated else status.HTTP_201_CREATED
        return code, IssuedOut(**dataclasses.asdict(done))

    return once(db, caller, idempotency_key, request, body, work)


@router.get("/packs/{serial:path}", responses=responses(401, 403, 404), summary="One pack")
def get_pack(serial: str, _caller: Staff, db: Db) -> PackOut:
    return PackOut.of(packs.pack(db, serial))
