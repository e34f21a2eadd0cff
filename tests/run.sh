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
command -v iptables-restore >/dev/null || need_apt+=(iptables)
command -v conntrack >/dev/null || need_apt+=(conntrack)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
command -v nsenter >/dev/null || need_apt+=(util-linux)
[ -x /usr/lib/cni/bridge ] || need_apt+=(containernetworking-plugins)   # the reference CNI plugins
[ -x /bin/busybox ] || need_apt+=(busybox-static)                      # a real image for the image-store test
command -v dig >/dev/null || need_apt+=(dnsutils)
# builds the runtime's spawn helper (statically linked when libc.a is there)
{ command -v cc >/dev/null && [ "$(cc -print-file-name=libc.a)" != libc.a ]; } || need_apt+=(gcc libc6-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

set +o pipefail
python3 -m pip install -q --disable-pip-version-check -e '.[test]' 2>&1 | { grep -v -i 'running pip as the' || true; }
pip_rc=${PIPESTATUS[0]}
set -o pipefail
[ "$pip_rc" -eq 0 ] || { echo "pip install failed" >&2; exit 1; }

PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
PGDIR=$(mktemp -d /tmp/pocketkube-pg.XXXXXX)
chown postgres:postgres "$PGDIR"
chmod 700 "$PGDIR"
stop_pg() {
  su postgres -s /bin/sh -c "$PGBIN/pg_ctl -D $PGDIR/data -m immediate stop" >/dev/null 2>&1 || true
  rm -rf "$PGDIR"
}
trap stop_pg EXIT
su postgres -s /bin/sh -c "$PGBIN/initdb -D $PGDIR/data -A trust -U postgres --no-sync" >/dev/null
# A port below the ephemeral range (32768+), so no outgoing connection holds
# it; a few tries in case another server already listens there.
started=""
for try in 1 2 3 4 5 6 7 8; do
  PGPORT=$(( 20000 + RANDOM % 10000 ))
  if su postgres -s /bin/sh -c "$PGBIN/pg_ctl -D $PGDIR/data -l $PGDIR/log -w -t 60 -o '-p $PGPORT -k $PGDIR -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=300' start" >/dev/null; then
    started=1
    break
  fi
done
if [ -z "$started" ]; then
  echo "could not start PostgreSQL:" >&2
  cat "$PGDIR/log" >&2
  exit 1
fi
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
