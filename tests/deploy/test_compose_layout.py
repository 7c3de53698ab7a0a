"""compose.yaml cannot run here (no images can be pulled), so its wiring is read instead: every
swapd process writes through PgBouncer to the primary, reads what may lag from the replica,
LISTENs on the primary directly, and runs without named prepared statements; PgBouncer pools in
transaction mode and its databases are the compose services. The pooling itself runs for real in
test_pgbouncer.py, with the same pgbouncer.ini.
"""

from __future__ import annotations

import configparser
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from swapd.store.replica import LISTEN_DATABASE_ENV, READ_DATABASE_ENV

ROOT = Path(__file__).resolve().parents[2]
PGBOUNCER_PORT = 6432


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def pgbouncer_databases() -> dict[str, dict[str, str]]:
    config = configparser.ConfigParser(interpolation=None)
    config.read_string((ROOT / "deploy" / "pgbouncer" / "pgbouncer.ini").read_text())
    assert config["pgbouncer"]["pool_mode"] == "transaction"
    assert int(config["pgbouncer"]["listen_port"]) == PGBOUNCER_PORT
    return {
        name: dict(part.split("=", 1) for part in value.split())
        for name, value in config["databases"].items()
    }


def _url(value: str) -> sa.URL:
    # compose substitutes ${...} when it runs; any password will do to read the rest.
    return sa.make_url(re.sub(r"\$\{[^}]*\}", "pw", value))


def test_every_swapd_process_writes_through_pgbouncer_and_reads_lagging_data_from_the_replica(
    compose: dict[str, Any], pgbouncer_databases: dict[str, dict[str, str]]
) -> None:
    services = compose["services"]
    env = services["swapd"]["environment"]
    assert services["swapd"]["deploy"]["replicas"] >= 2
    assert env["SWAPD_PG_PREPARE"] == "off"

    write = _url(env["SWAPD_DATABASE_URL"])
    assert (write.host, write.port) == ("pgbouncer", PGBOUNCER_PORT)
    assert pgbouncer_databases[str(write.database)]["host"] == "postgres-primary"

    read = _url(env[READ_DATABASE_ENV])
    assert (read.host, read.port) == ("pgbouncer", PGBOUNCER_PORT)
    replica = pgbouncer_databases[str(read.database)]
    assert replica["host"] == "postgres-replica"
    assert replica["dbname"] == write.database

    listen = _url(env[LISTEN_DATABASE_ENV])
    assert (listen.host, listen.port, listen.database) == ("postgres-primary", 5432, write.database)

    migrate = _url(services["swapd-migrate"]["environment"]["SWAPD_DATABASE_URL"])
    assert (migrate.host, migrate.port) == ("postgres-primary", 5432)
    assert services["swapd-migrate"]["command"] == ["swapd", "db", "upgrade"]
    assert services["swapd"]["depends_on"]["swapd-migrate"]["condition"] == (
        "service_completed_successfully"
    )
    for name in ("postgres-primary", "postgres-replica", "pgbouncer", "proxy"):
        assert name in services, name


def _settings(arguments: list[str]) -> dict[str, str]:
    return dict(
        a.split("=", 1) for a, flag in zip(arguments[1:], arguments, strict=False) if flag == "-c"
    )


def test_the_replica_has_at_least_the_primarys_connection_limits(compose: dict[str, Any]) -> None:
    """A standby refuses to start with less (test_replica_scripts.py met that)."""
    primary = _settings(compose["services"]["postgres-primary"]["command"])
    replica = _settings(["postgres", *compose["services"]["postgres-replica"]["command"]])
    for setting in ("max_connections", "max_wal_senders"):
        assert int(replica[setting]) >= int(primary[setting]), setting


def test_the_deployment_scripts_are_valid_shell() -> None:
    scripts = sorted((ROOT / "deploy").rglob("*.sh"))
    assert len(scripts) == 3
    for script in scripts:
        subprocess.run(["sh", "-n", str(script)], check=True)
