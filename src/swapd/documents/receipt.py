"""One swap's receipt as PDF: the packs returned (readings, usage, charge) and taken (readings,
hold), and the allowance after it."""

from __future__ import annotations

from swapd.documents.pdf import Document
from swapd.i18n import Translator
from swapd.readmodels.money import RiderBalance
from swapd.readmodels.swap_history import RiderSwapLine


def receipt_pdf(s: RiderSwapLine, balance: RiderBalance, language: str) -> bytes:
    t = Translator(language)
    _ = t.gettext
    where = s.station_name or s.station_id
    doc = Document(f"{_('Receipt')} #{s.id}", f"{t.when(s.at)} · {where} · {balance.rider_id}")
    for r in s.returned:
        c = r.charge
        doc.section(f"{_('Returned')} {r.serial}")
        doc.row(_("SoC when taken"), t.percent_bp(r.soc_out_bp))
        doc.row(_("SoC when returned"), t.percent_bp(r.soc_in_bp))
        doc.row(_("SoH"), t.percent_bp(r.soh_in_bp))
        doc.row(_("Usage"), f"{t.number(c.usage_units)} {c.unit}")
        doc.row(_("From the allowance"), f"{t.number(c.charged_units)} {c.unit}")
        doc.row(_("Charged"), t.money(c.amount_minor, c.currency), bold=True)
    for p in s.taken:
        doc.section(f"{_('Taken')} {p.serial}")
        doc.row(_("Slot"), str(p.slot_no))
        doc.row(_("SoC"), t.percent_bp(p.soc_out_bp))
        doc.row(_("SoH"), t.percent_bp(p.soh_out_bp))
        doc.row(_("Held"), f"{t.number(p.hold_units)} {p.unit}")
    doc.section(_("Available now"))
    doc.row(_("Allowance"), f"{t.number(balance.available_units)} {balance.unit}", bold=True)
    doc.row(_("Worth"), t.money(balance.available_value_minor, balance.currency))
    return doc.bytes()
