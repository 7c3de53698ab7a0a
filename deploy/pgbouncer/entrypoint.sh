#!/bin/sh
# The auth file from the environment (never baked into the image): PgBouncer checks clients'
# SCRAM logins against these passwords and logs in to PostgreSQL with them.
set -eu
umask 077
printf '"%s" "%s"\n' "${DB_USER:?}" "${DB_PASSWORD:?}" > /tmp/userlist.txt
exec pgbouncer /etc/pgbouncer/pgbouncer.ini
