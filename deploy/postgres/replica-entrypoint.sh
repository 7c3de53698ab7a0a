#!/bin/sh
# The streaming replica: on first start, copy the primary with pg_basebackup -R (which writes
# standby.signal and primary_conninfo) into its own replication slot, then run as a hot standby.
# Later starts find the copy and go on streaming from where they were. Arguments are passed on to
# postgres (tests/deploy/test_replica_scripts.py gives a port and a socket directory).
set -eu
: "${PGDATA:=/var/lib/postgresql/data}"
: "${PRIMARY_PORT:=5432}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    until pg_isready -h "${PRIMARY_HOST:?}" -p "$PRIMARY_PORT" -q; do sleep 1; done
    export PGPASSWORD="${REPLICATION_PASSWORD:?}"
    pg_basebackup -h "$PRIMARY_HOST" -p "$PRIMARY_PORT" -U replicator -D "$PGDATA" \
        -R -X stream -C -S "${REPLICATION_SLOT:-replica1}" -c fast
    chmod 700 "$PGDATA"
fi
# hot_standby_feedback: the primary keeps the rows a long export on the replica still reads, so
# the export is not cancelled by a conflict with recovery (at the price of some bloat while it
# runs).
exec postgres -c hot_standby=on -c hot_standby_feedback=on "$@"
