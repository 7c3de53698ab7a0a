"""Documents for riders and operators: a receipt per swap and a monthly statement, as PDF.

Rendered with fpdf2 in the rider's language (``swapd.i18n``); the font (NanumSquare, SIL Open Font
License, ``fonts/``) ships in the package and covers all 11,172 Hangul syllables, so Korean
renders the same on any machine. A document states only what the read models and the statement
say: its figures are those of the ledger."""
