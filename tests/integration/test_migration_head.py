"""The fast path of ``store.engine.upgrade``: the head read from the migration files is alembic's
head, and a database already there is opened without importing alembic."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from alembic.script import ScriptDirectory

from swapd.store.engine import alembic_config, at_head, head_revision, make_engine, upgrade


def test_the_head_read_from_the_migration_files_is_alembics_head() -> None:
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    assert heads == [head_revision()]


def test_a_new_database_is_not_at_head_until_upgraded(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'new.db'}")
    try:
        assert not at_head(engine)
        upgrade(engine)
        assert at_head(engine)
    finally:
        engine.dispose()


def test_a_database_one_migration_behind_is_not_at_head(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        upgrade(engine)
        with engine.connect() as connection, connection.begin():
            connection.exec_driver_sql("UPDATE alembic_version SET version_num = 'older'")
        assert not at_head(engine)
    finally:
        engine.dispose()


def test_opening_a_database_at_head_does_not_import_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ready.db'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    probe = (
        "import sys\n"
        "from swapd.store.database import Database\n"
        f"Database.open({url!r}).dispose()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'alembic'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_opening_a_new_database_still_migrates_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    probe = (
        "import sys\n"
        "from swapd.store.database import Database\n"
        f"Database.open({url!r}).dispose()\n"
        "print('alembic' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"
    engine = make_engine(url)
    try:
        assert at_head(engine)
    finally:
        engine.dispose()
