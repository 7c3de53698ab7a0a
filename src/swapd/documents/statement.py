"""A rider's monthly statement as PDF: opening balance, payments, usage and charges, refunds and
adjustments, closing balance, as ``services.statements.statement`` computed them."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from swapd.documents.pdf import Document
from swapd.i18n import Translator
from swapd.services.statements import Month, Statement, iter_statements
from swapd.store.database import Database


def statement_pdf(s: Statement, language: str) -> bytes:
    t = Translator(language)
    _ = t.gettext
    doc = Document(f"{_('Statement')} {s.month}", f"{_('Rider')} {s.rider_id} · {_('Plan')} {s.plan_id}")

    def units(value: int) -> str:
        return f"{t.number(value)} {s.unit}"

    def money(value: int) -> str:
        return t.money(value, s.currency)

    doc.section(_("Opening balance"))
    doc.row(_("Allowance"), units(s.opening_allowance_units))
    doc.row(_("Prepaid, not yet earned"), money(s.opening_prepaid_minor))
    if s.opening_receivable_minor or s.opening_overdrawn_units:
        doc.row(_("Owed"), f"{money(s.opening_receivable_minor)} · {units(s.opening_overdrawn_units)}")

    doc.section(_("Payments"))
    doc.row(
        f"{_('Top-ups')} ({t.number(s.topups_count)})",
        f"{money(s.topup_minor)} → {units(s.topup_units)}",
    )
    if s.subscription_payments_count:
        doc.row(
            f"{_('Subscription fees')} ({t.number(s.subscription_payments_count)})",
            f"{money(s.subscription_fee_minor)} → {units(s.subscription_units)}",
        )
    if s.receivable_paid_minor:
        doc.row(_("Paid against what was owed"), money(s.receivable_paid_minor))

    doc.section(_("Swaps"))
    doc.row(_("Packs taken"), t.number(s.packs_taken_count))
    doc.row(_("Packs returned"), t.number(s.packs_returned_count))
    doc.row(_("Usage"), units(s.used_units))
    doc.row(_("From the allowance"), units(s.charged_units))
    if s.overage_units:
        doc.row(_("Overage"), f"{units(s.overage_units)} · {money(s.overage_minor)}")
    if s.overdrawn_units:
        doc.row(_("Used beyond the allowance, owed"), units(s.overdrawn_units))
    doc.row(_("Charged"), money(s.usage_charge_minor), bold=True)

    if s.refunds_count or s.adjustment_units or s.expired_units:
        doc.section(_("Refunds and adjustments"))
        if s.refunds_count:
            doc.row(
                f"{_('Refunds')} ({t.number(s.refunds_count)})",
                f"{money(s.refund_minor)} · {units(s.refund_units)}",
            )
        if s.adjustment_units:
            doc.row(_("Adjustments"), units(s.adjustment_units))
        if s.expired_units:
            doc.row(_("Expired at the cycle's end"), units(s.expired_units))

    doc.section(_("Closing balance"))
    doc.row(_("Allowance"), units(s.closing_allowance_units), bold=True)
    doc.row(_("Prepaid, not yet earned"), money(s.closing_prepaid_minor), bold=True)
    if s.closing_receivable_minor or s.closing_overdrawn_units:
        doc.row(_("Owed"), f"{money(s.closing_receivable_minor)} · {units(s.closing_overdrawn_units)}")
    doc.note(_("Amounts in the plan's unit and currency, as the ledger holds them (UTC month)."))
    return doc.bytes()


def export_pdfs(
    db: Database,
    month: Month,
    directory: Path,
    language: str,
    *,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Every rider's statement for ``month`` as ``<directory>/<rider>-<month>.pdf``, from one
    consistent snapshot (``iter_statements``); each file appears whole (written beside, then
    renamed). Returns how many were written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = 0
    for item in iter_statements(db, month):
        target = directory / f"{_file_safe(item.rider_id)}-{month}.pdf"
        partial = target.with_name(f".{target.name}.partial")
        partial.write_bytes(statement_pdf(item, language))
        os.replace(partial, target)
        written += 1
        if progress is not None:
            progress(written)
    return written


def _file_safe(rider_id: str) -> str:
    """A rider id as a file name: ids are codes (letters, digits, ``._-``), anything else is ``_``."""
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in rider_id).lstrip(".") or "_"
