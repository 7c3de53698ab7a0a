"""Receipts and statements as PDF agree with the ledger: E1's return, its receipt and the rider's
November statement, in English and in Korean (Hangul from the embedded font), the CSV export of
the same month, and `swapd statements export --format pdf|csv`."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from pathlib import Path

from pypdf import PdfReader
from typer.testing import CliRunner

from swapd.cli import app
from swapd.documents.receipt import receipt_pdf
from swapd.documents.statement import statement_pdf
from swapd.domain.riders import IdToken, TokenType
from swapd.readmodels.money import rider_balance
from swapd.readmodels.swap_history import rider_swaps
from swapd.services import statements, swaps
from swapd.services.swaps import BatteryReading
from swapd.store.database import Database, ManualClock
from swapd.store.ledger_check import check_ledger
from tests import network as net

MONTH = "2026-11"  # the test clock starts on 2 November 2026


def _text(pdf: bytes) -> str:
    assert pdf.startswith(b"%PDF-")
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def _e1(db: Database, clock: ManualClock) -> int:
    net.network(db)
    net.pack(db, "B-1", station_id="ST1", slot_no=3)
    net.pack(db, "B-2", station_id="ST2", slot_no=1)
    net.rider(db, "R1", top_up_minor=10_000)
    token = IdToken(TokenType.APP, "R1")
    swaps.authorize(db, "ST1", token)
    swaps.battery_out(db, "ST1", "r1", [BatteryReading(3, "B-1", 9_800, 9_500)], token=token)
    clock.set(clock.now() + timedelta(hours=2))
    key = IdToken(TokenType.BATTERY_SERIAL, "B-1")
    swaps.authorize(db, "ST2", key, request_id="r2")
    back = swaps.battery_in(db, "ST2", "r2", [BatteryReading(5, "B-1", 2_000, 9_300)], token=key)
    assert back.swap_id is not None
    return back.swap_id


def test_the_statement_pdf_and_csv_agree_with_the_ledger(
    db: Database, clock: ManualClock, tmp_path: Path
) -> None:
    _e1(db, clock)
    s = statements.statement(db, "R1", MONTH)
    assert (s.used_units, s.usage_charge_minor, s.closing_prepaid_minor) == (1_260, 378, 9_622)
    balance = rider_balance(db, "R1")
    assert (s.closing_prepaid_minor, s.closing_allowance_units) == (
        balance.prepaid_minor,
        balance.posted_units,
    )
    with db.engine.connect() as connection:
        assert check_ledger(connection).ok
    english = _text(statement_pdf(s, "en"))
    for shown in ("Statement 2026-11", "1,260 Wh", "₩378", "₩9,622", "32,073 Wh", "₩10,000"):
        assert shown in english, (shown, english)
    korean = _text(statement_pdf(s, "ko"))
    for shown in ("명세서 2026-11", "기말 잔액", "₩9,622", "1,260 Wh"):
        assert shown in korean, (shown, korean)
    # The rider's API history (GET /api/v1/me/swaps reads rider_swaps) adds up to the same.
    history = rider_swaps(db, "R1", limit=50)
    returned = [r.charge for line in history for r in line.returned]
    assert sum(c.usage_units for c in returned) == s.used_units
    assert sum(c.amount_minor for c in returned) == s.usage_charge_minor
    exported = statements.export_csv(db, MONTH, tmp_path / "s.csv")
    (row,) = [r for r in csv.DictReader(exported.path.open()) if r["rider_id"] == "R1"]
    assert int(row["used_units"]) == s.used_units and int(row["usage_charge_minor"]) == 378
    assert int(row["closing_prepaid_minor"]) == s.closing_prepaid_minor


def test_the_receipt_pdf_shows_the_return_and_its_charge(db: Database, clock: ManualClock) -> None:
    swap_id = _e1(db, clock)
    (line,) = [s for s in rider_swaps(db, "R1", limit=5) if s.id == swap_id]
    text = _text(receipt_pdf(line, rider_balance(db, "R1"), "en"))
    for shown in (f"Receipt #{swap_id}", "Returned B-1", "98%", "20%", "1,260 Wh", "₩378"):
        assert shown in text, (shown, text)
    assert "영수증" in _text(receipt_pdf(line, rider_balance(db, "R1"), "ko"))


def test_swapd_statements_export_writes_a_pdf_per_rider_or_one_csv(
    db: Database, clock: ManualClock, tmp_path: Path
) -> None:
    _e1(db, clock)
    net.rider(db, "R2", top_up_minor=5_000, payment_ref="pay-2")
    url = str(db.engine.url.render_as_string(hide_password=False))
    runner = CliRunner()
    out = tmp_path / "statements"
    done = runner.invoke(
        app,
        ["statements", "export", "--month", MONTH, "--format", "pdf", "--out", str(out),
         "--language", "ko", "--database", url, "--json"],
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert sorted(p.name for p in out.iterdir()) == ["R1-2026-11.pdf", "R2-2026-11.pdf"]
    assert "₩5,000" in _text((out / "R2-2026-11.pdf").read_bytes())
    as_csv = runner.invoke(
        app, ["statements", "export", "--month", MONTH, "--out", str(out), "--database", url]
    )
    assert as_csv.exit_code == 0, as_csv.output
    assert (out / "statements-2026-11.csv").read_text().count("\n") == 3  # header and two riders
    bad = runner.invoke(
        app, ["statements", "export", "--month", MONTH, "--format", "doc", "--out", str(out)]
    )
    assert bad.exit_code == 2 and "--format must be csv or pdf" in bad.stderr
