#!/usr/bin/env bash
# The test command (README): install what the tests need, start a throwaway
# PostgreSQL server as the `postgres` user, check the import layers
# (lint-imports, pyproject.toml), run the suite with nothing allowed to skip,
# and stop the server again whatever happens.
#
#   bash tests/run.sh                  every tier, one after another: tests/unit,
#                                      tests/integration, tests/e2e
#   bash tests/run.sh -x -k watch      the same, with these pytest options
#   bash tests/run.sh tests/unit ...   one pytest run of the paths given
#
# A broken layer contract or a failing tier fails the run, but everything
# still runs, so one run reports all of it. The last line is the sum over the
# tiers, `N passed, N failed, N skipped` (pytest errors count as failed, and a
# broken contract or a pytest run that ended without its summary as one
# failure each), after each tier's wall time.
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

# A path among the arguments means "run just that"; otherwise the arguments
# are pytest options for every tier.
tiers=(tests/unit tests/integration tests/e2e)
for arg in "$@"; do
  if [[ $arg != -* && -e ${arg%%::*} ]]; then
    tiers=("")
    break
  fi
done

LOGDIR=$(mktemp -d /tmp/pocketkube-tests.XXXXXX)
trap 'stop_pg; rm -rf "$LOGDIR"' EXIT
ms() { echo $(( $(date +%s%N) / 1000000 )); }
secs() { awk -v ms="$1" 'BEGIN { printf "%.1f s", ms / 1000 }'; }
# a count from pytest's own last line, "1 failed, 7 passed, 2 skipped in 2.00s"
count() { { grep -oE "[0-9]+ $1" <<<"$line" || true; } | awk '{ n += $1 } END { print n + 0 }'; }
report=()
passed=0 failed=0 skipped=0 status=0
run_start=$(ms)

start=$(ms)
set +e
python3 -c "from importlinter.cli import lint_imports_command; lint_imports_command()" --no-cache
lint_rc=$?
set -e
if [ $lint_rc -eq 0 ]; then
  report+=("$(printf '%-20s %9s   contracts kept' lint-imports "$(secs $(( $(ms) - start )))")")
else
  report+=("$(printf '%-20s %9s   contracts BROKEN (exit %d)' lint-imports "$(secs $(( $(ms) - start )))" $lint_rc)")
  failed=$(( failed + 1 ))
  status=1
fi

for tier in "${tiers[@]}"; do
  log="$LOGDIR/pytest.log"
  start=$(ms)
  set +e
  python3 -m pytest -q -p no:cacheprovider "$@" $tier 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  set -e
  took=$(secs $(( $(ms) - start )))
  line=$(grep -E '^(=+ )?([0-9]+ [a-z]+(, )?)+ in [0-9.]+s|no tests ran' "$log" | tail -1 || true)
  p=$(count passed) f=$(( $(count failed) + $(count 'errors?') )) s=$(count skipped)
  if [ $rc -eq 5 ]; then
    echo "pytest collected no tests"
  elif [ $rc -ne 0 ]; then
    status=1
    [ "$f" -gt 0 ] || f=1
  fi
  passed=$(( passed + p )) failed=$(( failed + f )) skipped=$(( skipped + s ))
  report+=("$(printf '%-20s %9s   passed %d  failed %d  skipped %d  (pytest exit %d)' "${tier:-$*}" "$took" $p $f $s $rc)")
done

echo
printf '%s\n' "${report[@]}"
printf '%-20s %9s\n' "whole run" "$(secs $(( $(ms) - run_start )))"
echo "$passed passed, $failed failed, $skipped skipped"
exit $status
