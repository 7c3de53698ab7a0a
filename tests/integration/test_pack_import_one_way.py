"""One importer behind ``swapd pack import`` and ``POST /api/v1/ops/packs/import``: the same file
is refused on the same lines for the same reasons either way, and an import is audited either way."""

from __future__ import annotations

import json
from pathlib import Path

from swapd.cli import app
from swapd.services import audit, back_office
from swapd.store.database import Database
from tests import network as net
from tests.cli_runner import CliRunner

FILE = (
    "serial,model,soh,soc,station,slot\n"
    "P-1,G2,95,80,ST1,1\n"
    "P-1,G2,95,80,,\n"  # serial again
    "P-3,G2,101,80,,\n"  # SoH above 100 (the catalog refuses it)
    "P-4,NOPE,95,80,,\n"  # unknown model
    "P-5,G2,95,80,ST1,1\n"  # slot of line 2 again
)


def _audit(db: Database) -> list[tuple[str, str]]:
    """(actor, action) of every audit entry, oldest first."""
    return [(entry.actor, entry.action) for entry in reversed(audit.entries(db))]


def test_the_command_line_and_the_api_refuse_the_same_lines(
    db: Database, db_url: str, tmp_path: Path
) -> None:
    net.pack_model(db)
    net.station(db, "ST1", slot_count=4)
    through_api = back_office.import_packs(db, "ops:kim", FILE)
    path = tmp_path / "packs.csv"
    path.write_text(FILE, encoding="utf-8")
    done = CliRunner().invoke(app, ["pack", "import", str(path), "--json", "--database", db_url])
    assert done.exit_code == 2, done.output
    through_cli = json.loads(done.stdout)["bad_rows"]

    expected = [(line.line, line.error) for line in through_api.rejected]
    assert [(row["line"], row["error"]) for row in through_cli] == expected
    assert [line for line, _ in expected] == [3, 4, 5, 6]
    assert through_api.imported == 0
    assert _audit(db) == []  # a refused import writes nothing, not even its audit row


def test_an_import_from_either_side_is_audited(db: Database, db_url: str, tmp_path: Path) -> None:
    net.pack_model(db)
    net.station(db, "ST1", slot_count=4)
    assert back_office.import_packs(db, "ops:kim", "serial,model\nA-1,G2\n").imported == 1
    path = tmp_path / "packs.csv"
    path.write_text("serial,model\nC-1,G2\nC-2,G2\n", encoding="utf-8")
    done = CliRunner().invoke(app, ["pack", "import", str(path), "--json", "--database", db_url])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["imported"] == 2
    assert _audit(db) == [("ops:kim", "pack.import"), ("cli", "pack.import")]
