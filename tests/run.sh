#!/usr/bin/env bash
# The test command (README): install what the tests need, start a throwaway
# PostgreSQL server as the `postgres` user, run every tier of the suite with
# nothing allowed to skip, and stop the server again whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
need_apt=()
command -v ip >/dev/null || need_apt+=(iproute2)
command -v openssl >/dev/null || need_apt+=(openssl)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

python3 -m pip install -q --disable-pip-version-check -e '.[test]' 2>&1 | grep -v -i 'running pip as the' || true

PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
PGDIR=$(mktemp -d /tmp/pocketkube-pg.XXXXXX)
chown postgres:postgres "$PGDIR"
chmod 700 "$PGDIR"
PGPORT=${PGPORT:-55432}
while (exec 3<>/dev/tcp/127.0.0.1/$PGPORT) 2>/dev/null; do PGPORT=$((PGPORT+1)); done
stop_pg() {
  su postgres -s /bin/sh -c "$PGBIN/pg_ctl -D $PGDIR/data -m immediate stop" >/dev/null 2>&1 || true
  rm -rf "$PGDIR"
}
trap stop_pg EXIT
su postgres -s /bin/sh -c "$PGBIN/initdb -D $PGDIR/data -A trust -U postgres --no-sync" >/dev/null
su postgres -s /bin/sh -c "$PGBIN/pg_ctl -D $PGDIR/data -l $PGDIR/log -w -o '-p $PGPORT -k $PGDIR -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=200' start" >/dev/null
export POCKETKUBE_TEST_PG_URL="postgresql+psycopg://postgres@127.0.0.1:$PGPORT/postgres"
export POCKETKUBE_NO_SKIP=1

set +e
python3 -m pytest -q -p no:cacheprovider "$@" tests
rc=$?
set -e
if [ $rc -eq 5 ]; then
  echo "pytest collected no tests"
  rc=0
fi
exit $rc
