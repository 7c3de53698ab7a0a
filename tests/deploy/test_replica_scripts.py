"""The scripts compose.yaml gives the postgres images, run here on private clusters (faults.pg):
deploy/postgres/primary-init.sh on a primary, then deploy/postgres/replica-entrypoint.sh makes a
hot standby of it that streams through its replication slot, logging in as ``replicator`` with
a password (SCRAM: the cluster's trust lines for replication are taken out first)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from faults.pg import PrivatePostgres, postgres_bin

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "deploy" / "postgres"
PASSWORD = "replication secret"
SLOT = "replica1"


# PostgreSQL refuses to run as root: as root, the scripts run as the postgres user, as in the image.
RUN_AS = "postgres" if os.geteuid() == 0 else None


def _environment(**values: str) -> dict[str, str]:
    bin_dir = postgres_bin()
    assert bin_dir is not None
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", **values}


@pytest.fixture
def primary() -> Iterator[PrivatePostgres]:
    if postgres_bin() is None:
        if os.environ.get("SWAPD_REQUIRE_POSTGRES"):
            pytest.fail("SWAPD_REQUIRE_POSTGRES is set but PostgreSQL's server programs are missing")
        pytest.skip("no PostgreSQL server programs (initdb) here")
    server = PrivatePostgres()
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.close()


def _scalar(url: str, sql: str) -> object:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return connection.exec_driver_sql(sql).scalar()
    finally:
        engine.dispose()


def _execute(url: str, sql: str) -> None:
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql(sql)
    finally:
        engine.dispose()


def test_the_compose_scripts_make_a_replica_that_streams_with_a_password(
    primary: PrivatePostgres,
) -> None:
    init = subprocess.run(
        ["sh", str(SCRIPTS / "primary-init.sh")],
        user=RUN_AS,
        env=_environment(
            POSTGRES_USER="postgres",
            POSTGRES_DB="postgres",
            PGDATA=str(primary.data),
            PGHOST="127.0.0.1",
            PGPORT=str(primary.port),
            REPLICATION_PASSWORD=PASSWORD,
        ),
        capture_output=True,
        text=True,
        check=False,
    )
    assert init.returncode == 0, init.stdout + init.stderr
    # Only the script's line may let a replication connection in now: a password is needed.
    hba = primary.data / "pg_hba.conf"
    lines = hba.read_text().splitlines()
    hba.write_text("\n".join(line for line in lines if not ("replication" in line and "trust" in line)))
    _execute(primary.admin_url, "SELECT pg_reload_conf()")
    assert "replicator all scram-sha-256" in hba.read_text()

    replica = PrivatePostgres()  # its directory and port; the script makes the data
    log_path = replica.root / "script.log"
    # As compose.yaml gives it: a standby refuses to start with fewer connections than its primary.
    postgres_options = ["-c", "max_connections=200", "-p", str(replica.port), "-k", str(replica.root)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ["sh", str(SCRIPTS / "replica-entrypoint.sh"), *postgres_options],
            env=_environment(
                PGDATA=str(replica.data),
                PRIMARY_HOST="127.0.0.1",
                PRIMARY_PORT=str(primary.port),
                REPLICATION_PASSWORD=PASSWORD,
                REPLICATION_SLOT=SLOT,
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
            user=RUN_AS,
        )
    try:
        try:
            replica.wait_ready()
        except sa.exc.OperationalError as error:
            raise AssertionError(log_path.read_text(errors="replace")) from error
        assert _scalar(replica.admin_url, "SELECT pg_is_in_recovery()") is True
        auto_conf = (replica.data / "postgresql.auto.conf").read_text()
        assert "user=replicator" in auto_conf and "password=" in auto_conf  # for its restarts
        assert f"primary_slot_name = '{SLOT}'" in auto_conf
        assert _scalar(
            primary.admin_url, f"SELECT active FROM pg_replication_slots WHERE slot_name = '{SLOT}'"
        )

        _execute(primary.admin_url, "CREATE TABLE written_on_the_primary (id int)")
        replayed = "SELECT count(*) FROM pg_tables WHERE tablename = 'written_on_the_primary'"
        for _ in range(300):
            if _scalar(replica.admin_url, replayed) == 1:
                break
            process.poll()
            assert process.returncode is None
            time.sleep(0.05)
        else:
            raise AssertionError("the replica did not replay the primary's table")
    finally:
        # The script exec'd postgres: SIGINT is its fast shutdown.
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        replica.close()
