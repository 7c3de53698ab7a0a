"""Reading a pack CSV, before the database is asked: what one importer refuses line by line and
what makes a whole file unreadable (swapd.services.pack_import.parse)."""

from __future__ import annotations

import pytest

from swapd.domain.errors import InvalidInput
from swapd.services.pack_import import ImportLine, PackRow, parse

HEADER = "serial,model,soh,soc,station,slot\n"


def test_a_good_file_gives_its_rows_with_defaults_for_what_is_left_out() -> None:
    parsed = parse("\ufeff" + HEADER + "A-1,G2,95,80,ST1,3\n\n  ,  ,,,,\nA-2,G2,,,,\n", max_rows=10)
    assert parsed.refused == ()
    assert parsed.rows == (
        PackRow(2, "A-1", "G2", "95", "80", "ST1", 3),
        PackRow(5, "A-2", "G2", "100", "0", None, None),  # blank lines skipped, numbering kept
    )


def test_lines_are_refused_one_by_one_with_what_is_wrong() -> None:
    text = HEADER + (
        "A-1,G2,95,80,ST1,1\n"  # 2: good
        ",G2,95,80,,\n"  # 3: no serial
        "A-3,,95,80,,\n"  # 4: no model
        "A-4,G2,95,80,ST1,x\n"  # 5: slot not a number
        "A-5,G2,95,80,ST1,2,extra\n"  # 6: too many fields
        "A-1,G2,95,80,,\n"  # 7: serial of line 2 again
        "A-7,G2,95,80,ST1,1\n"  # 8: slot of line 2 again
    )
    parsed = parse(text, max_rows=100)
    assert [row.line for row in parsed.rows] == [2]
    assert parsed.refused == (
        ImportLine(3, None, "serial is missing"),
        ImportLine(4, "A-3", "model is missing"),
        ImportLine(5, "A-4", "slot must be a whole number, got 'x'"),
        ImportLine(6, None, "7 fields, but the header names 6"),
        ImportLine(7, "A-1", "pack A-1 is given on line 2 already"),
        ImportLine(8, "A-7", "slot 1 of station ST1 is given on line 2 already"),
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the CSV is empty"),
        ("A-1,G2\n", "line 1: header 'A-1,G2' must name the columns"),
        ("serial,model,colour\nA-1,G2,red\n", "must name the columns"),
        ("serial,serial,model\n", "must name the columns"),
        ("serial,soh\nA-1,90\n", "must name the columns"),  # model is required
        ("serial,model\n\n", "has no pack rows"),
    ],
)
def test_a_file_that_cannot_be_read_as_a_whole_is_refused(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse(text, max_rows=100)


def test_the_number_of_rows_is_bounded() -> None:
    rows = "".join(f"A-{n},G2\n" for n in range(4))
    assert len(parse("serial,model\n" + rows, max_rows=4).rows) == 4
    with pytest.raises(InvalidInput, match="at most 3 rows per import"):
        parse("serial,model\n" + rows, max_rows=3)
