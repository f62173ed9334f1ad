#!/bin/sh
# Initialises $PGDATA on first start (trust auth, listening everywhere),
# then runs postgres in the foreground as the postgres user.
set -e
bin=/usr/lib/postgresql/15/bin
mkdir -p "$PGDATA" /var/run/postgresql
chown -R postgres:postgres "$PGDATA" /var/run/postgresql
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  su postgres -s /bin/sh -c "$bin/initdb -D '$PGDATA' --auth=trust --username=postgres -E UTF8 >/dev/null"
  echo "host all all 0.0.0.0/0 trust" >>"$PGDATA/pg_hba.conf"
  echo "host all all ::/0 trust" >>"$PGDATA/pg_hba.conf"
  su postgres -s /bin/sh -c "$bin/pg_ctl -D '$PGDATA' -o '-c listen_addresses=' -w start >/dev/null"
  su postgres -s /bin/sh -c "$bin/psql -q -c 'CREATE DATABASE mcpstream'"
  su postgres -s /bin/sh -c "$bin/pg_ctl -D '$PGDATA' -m fast -w stop >/dev/null"
fi
exec su postgres -s /bin/sh -c "exec $bin/postgres -D '$PGDATA' -c listen_addresses='*' -c fsync=off $*"
