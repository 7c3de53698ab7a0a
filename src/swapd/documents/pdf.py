"""What the documents share: an A4 page with the embedded font, a title, and rows of figures."""

from __future__ import annotations

from pathlib import Path

from fpdf import FPDF

FONTS = Path(__file__).parent / "fonts"
FAMILY = "NanumSquare"
MARGIN_MM = 18
LABEL_WIDTH_MM = 95
ROW_MM = 7


class Document(FPDF):
    """An A4 document with swapd's header line and page numbers."""

    def __init__(self, title: str, subtitle: str) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.add_font(FAMILY, "", str(FONTS / "NanumSquareR.ttf"))
        self.add_font(FAMILY, "B", str(FONTS / "NanumSquareB.ttf"))
        self.set_margins(MARGIN_MM, MARGIN_MM, MARGIN_MM)
        self.set_auto_page_break(auto=True, margin=MARGIN_MM)
        self.set_title(title)
        self.set_creator("swapd")
        self.add_page()
        self.set_font(FAMILY, "B", 18)
        self.cell(0, 10, title, new_x="LMARGIN", new_y="NEXT")
        self.set_font(FAMILY, "", 10)
        self.set_text_color(90, 100, 118)
        self.cell(0, 6, subtitle, new_x="LMARGIN", new_y="NEXT")
        self.set_text_color(29, 36, 48)
        self.ln(4)

    def section(self, heading: str) -> None:
        self.ln(3)
        self.set_font(FAMILY, "B", 12)
        self.cell(0, 8, heading, new_x="LMARGIN", new_y="NEXT")
        self.set_draw_color(217, 222, 231)
        self.line(self.l_margin, self.get_y(), self.w - self.r_margin, self.get_y())
        self.ln(1)

    def row(self, label: str, value: str, *, bold: bool = False) -> None:
        self.set_font(FAMILY, "", 10)
        self.cell(LABEL_WIDTH_MM, ROW_MM, label)
        self.set_font(FAMILY, "B" if bold else "", 10)
        self.cell(0, ROW_MM, value, align="R", new_x="LMARGIN", new_y="NEXT")

    def note(self, text: str) -> None:
        self.ln(2)
        self.set_font(FAMILY, "", 8)
        self.set_text_color(90, 100, 118)
        self.multi_cell(0, 4.5, text)
        self.set_text_color(29, 36, 48)

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(FAMILY, "", 8)
        self.set_text_color(140, 148, 166)
        self.cell(0, 6, f"swapd · {self.page_no()}", align="C")

    def bytes(self) -> bytes:
        return bytes(self.output())
