#!/usr/bin/env bash
# deploy.sh --target local against a temporary prefix, on loopback:
#   1. a first deploy of v1 (the real binary) into an empty prefix (production:
#      generated secret key, auth on, migrations before the start) serves;
#   2. data written over HTTP with an API key;
#   3. the same artifact again is a no-op (same pid);
#   4. v2 (a wrapper script that execs the real binary: another sha256, so
#      another release) replaces it, `previous` points at v1;
#   5. a bad version (a wrapper whose `serve` exits 1 after a second: the
#      pre-checks pass, verification fails) is rolled back: exit 1, `current`
#      back on v2, the old server answers /health, the data is still there, and
#      the pre-migration backup named in the log exists and verifies;
#   6. a deploy after the failed one works (v1 again), and a missing artifact
#      aborts in the pre-checks without touching anything.
# With --systemd-units it instead checks deployment/systemd/ with
# `systemd-analyze verify` (which works without a running systemd), on copies
# whose /opt/devstream is a temporary prefix holding the binary; exit 77 (skip)
# without systemd-analyze.
# Usage: deploy_local_test.sh DEVSTREAM_BINARY REPO_ROOT [--systemd-units]
set -euo pipefail

BIN=$(readlink -f "${1:?usage: deploy_local_test.sh DEVSTREAM_BINARY REPO_ROOT}")
REPO=$(readlink -f "${2:?usage: deploy_local_test.sh DEVSTREAM_BINARY REPO_ROOT}")
DEPLOY="$REPO/deployment/scripts/deploy.sh"
[[ -x $BIN ]] || { echo "FAIL: $BIN is not executable" >&2; exit 1; }

if [[ ${3:-} == --systemd-units ]]; then
  command -v systemd-analyze >/dev/null || { echo "SKIP: no systemd-analyze" >&2; exit 77; }
  UNITS="$REPO/deployment/systemd"
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/deploy-units-test.XXXXXX")
  trap 'rm -rf "$WORK"' EXIT
  P="$WORK/opt/devstream"
  mkdir -p "$P/releases/r1" "$P/etc" "$P/data" "$P/backups" "$P/log" "$WORK/units"
  ln -s "$BIN" "$P/releases/r1/devstream"
  ln -s releases/r1 "$P/current"
  cp "$UNITS/devstream.env.example" "$P/etc/devstream.env"
  units=()
  for u in devstream-migrate.service devstream-api.service devstream-worker.service devstream.target; do
    [[ -f $UNITS/$u ]] || { echo "FAIL: no deployment/systemd/$u" >&2; exit 1; }
    sed "s|/opt/devstream|$P|g" "$UNITS/$u" >"$WORK/units/$u"
    units+=("$WORK/units/$u")
  done
  grep -q '^Type=oneshot' "$UNITS/devstream-migrate.service" || { echo "FAIL: the migrate unit is not a oneshot" >&2; exit 1; }
  for u in api worker; do
    if ! grep -q '^Requires=devstream-migrate.service' "$UNITS/devstream-$u.service" ||
      ! grep -q '^After=devstream-migrate.service' "$UNITS/devstream-$u.service"; then
      echo "FAIL: devstream-$u.service does not Require and come After the migrate unit" >&2
      exit 1
    fi
  done
  rc=0
  out=$(cd "$WORK/units" && systemd-analyze verify --man=no "${units[@]}" 2>&1) || rc=$?
  if ((rc != 0)) || [[ -n $out ]]; then
    echo "FAIL: systemd-analyze verify (exit $rc):" >&2
    echo "$out" >&2
    exit 1
  fi
  echo "PASS: systemd-analyze verify: ${units[*]##*/}"
  exit 0
fi

[[ -f $DEPLOY ]] || { echo "FAIL: no $DEPLOY" >&2; exit 1; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/deploy-local-test.XXXXXX")
PREFIX="$WORK/prefix"
OUT="$WORK/out.txt"
STARTED=$SECONDS
FAIL_LOG="$PREFIX/log/serve.out"
# shellcheck source=deploy_test_lib.sh
. "$(dirname "$0")/deploy_test_lib.sh"

# Stop whatever the deploys left running in the prefix (bounded), then remove
# everything.
cleanup() {
  local rc=$?
  trap - EXIT
  set +e
  stop_deploy_in_flight
  stop_prefix_servers
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' TERM INT HUP

PORT=$(free_port)
URL="http://127.0.0.1:$PORT"

# deploy ARTIFACT: runs deploy.sh, output in $OUT (and on stdout), status in $RC.
deploy() {
  run_deploy 120 production --artifact "$1" --prefix "$PREFIX" --port "$PORT" \
    --health-interval 0.3 --health-retries 30 --stop-timeout 20
}

release_of() { printf '%s-%s' "$("$BIN" version | awk '{print $NF}')" "$(sha256sum "$1" | cut -c1-12)"; }
current() { readlink "$PREFIX/current"; }
previous() { readlink "$PREFIX/previous" 2>/dev/null || true; }
api_pid() { cat "$PREFIX/run/devstream.pid"; }
has_step() { grep -q "\[deploy\] $1:" "$OUT" || fail "the deploy log has no '$1' step"; }

# Artifacts: v1 is the binary; v2 and bad are wrapper scripts around it.
mkdir -p "$WORK/art"
V1="$BIN"
V2="$WORK/art/devstream-v2"
BAD="$WORK/art/devstream-bad"
printf '#!/bin/sh\n# v2: the same program, another artifact\nexec %q "$@"\n' "$BIN" >"$V2"
cat >"$BAD" <<EOF
#!/bin/sh
# A build whose server dies at start: every other command works.
for a in "\$@"; do
  if [ "\$a" = serve ]; then echo "bad build: serve exits" >&2; sleep 1; exit 1; fi
done
exec $(printf '%q' "$BIN") "\$@"
EOF
# Opaque artifacts: not even executable; deploy.sh must chmod its copy.
chmod 0644 "$V2" "$BAD"
ID1=$(release_of "$V1")
ID2=$(release_of "$V2")
IDBAD=$(release_of "$BAD")

step "0. usage errors exit 2"
rc=0
bash "$DEPLOY" >/dev/null 2>&1 || rc=$?
((rc == 2)) || fail "deploy.sh without ENV exited $rc, not 2"
rc=0
bash "$DEPLOY" production --target nowhere >/dev/null 2>&1 || rc=$?
((rc == 2)) || fail "deploy.sh --target nowhere exited $rc, not 2"
[[ ! -e $PREFIX ]] || fail "a usage error created the prefix"

step "1. first deploy of v1 ($ID1) into $PREFIX, port $PORT"
deploy "$V1"
((RC == 0)) || fail "first deploy exited $RC"
for s in precheck backup migrate rollout verify "done"; do has_step "$s"; done
[[ $(current) == "releases/$ID1" ]] || fail "current is $(current), not releases/$ID1"
[[ -x $PREFIX/releases/$ID1/devstream ]] || fail "no releases/$ID1/devstream"
healthy || fail "$URL is not healthy after the first deploy"
for f in etc/production.yml etc/devstream.env data/devstream.db run/devstream.pid log/deploy.log; do
  [[ -e $PREFIX/$f ]] || fail "no $f in the prefix"
done
grep -q "^DEVSTREAM_PORT=$PORT$" "$PREFIX/etc/devstream.env" || fail "the env file has no DEVSTREAM_PORT=$PORT"
grep -qE '^DEVSTREAM_SECRET_KEY=.{32,}$' "$PREFIX/etc/devstream.env" || fail "the env file has no secret key"
[[ $(stat -c %a "$PREFIX/etc/devstream.env") == 600 ]] || fail "the env file is not mode 0600"
PID1=$(api_pid)

step "2. data over HTTP (auth on in production: an API key from the CLI)"
KEY=$(ds_env --json apikey create --name deploy-test --scopes write 2>/dev/null | sed -n 's/.*"key":"\([^"]*\)".*/\1/p')
[[ $KEY == dsk_* ]] || fail "apikey create printed no key"
code=$(curl -s -o "$WORK/post.json" -w '%{http_code}' -X POST "$URL/api/v1/projects" \
  -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' -d '{"name":"deploy-survivor"}')
[[ $code == 201 || $code == 200 ]] || fail "POST /api/v1/projects answered $code: $(cat "$WORK/post.json")"
has_project() {
  curl -s -H "Authorization: Bearer $KEY" "$URL/api/v1/projects" | grep -q '"deploy-survivor"'
}
has_project || fail "the project is not listed"

step "3. the same artifact again: a no-op"
deploy "$V1"
((RC == 0)) || fail "redeploying the current artifact exited $RC"
grep -q "already current and healthy" "$OUT" || fail "the no-op deploy did not say so"
[[ $(api_pid) == "$PID1" ]] || fail "the no-op deploy restarted the server"
[[ ! -e $PREFIX/previous ]] || fail "the no-op deploy set previous"

step "4. v2 ($ID2)"
deploy "$V2"
((RC == 0)) || fail "deploying v2 exited $RC"
[[ $(current) == "releases/$ID2" ]] || fail "current is $(current), not releases/$ID2"
[[ $(previous) == "releases/$ID1" ]] || fail "previous is '$(previous)', not releases/$ID1"
[[ $(api_pid) != "$PID1" ]] || fail "v2 did not restart the server"
running "$PID1" && fail "v1's server (pid $PID1) still runs"
grep -q "database backed up with releases/$ID1/devstream" "$OUT" || fail "the backup was not taken with the old (v1) binary"
healthy || fail "v2 is not healthy"
has_project || fail "the project is gone after v2"
PID2=$(api_pid)

step "5. a bad version ($IDBAD): verification fails, rollback to v2"
deploy "$BAD"
((RC == 1)) || fail "the bad deploy exited $RC, not 1"
grep -q "rolled back: release $ID2 is current" "$OUT" || fail "the log does not say it rolled back to $ID2"
grep -q "\[deploy\] rollback: release $ID2 is serving again" "$OUT" || fail "the log does not say v2 serves again"
grep -q "restoring the pre-migration backup" "$OUT" || fail "the rollback restored no backup"
[[ $(current) == "releases/$ID2" ]] || fail "after the rollback current is $(current), not releases/$ID2"
[[ $(previous) == "releases/$ID1" ]] || fail "after the rollback previous is '$(previous)', not releases/$ID1"
[[ ! -e $PREFIX/releases/$IDBAD ]] || fail "the failed release directory is still there"
[[ $(api_pid) != "$PID2" ]] || fail "the pidfile still names the pre-deploy process"
healthy || fail "the old version does not answer /health after the rollback"
has_project || fail "the data written before the bad deploy is gone"
BACKUP=$(sed -n 's/.*database backed up with .* to \(.*\) (verified)$/\1/p' "$OUT")
[[ -n $BACKUP ]] || fail "the log names no pre-migration backup"
[[ -f $BACKUP ]] || fail "the backup $BACKUP does not exist"
"$BIN" backup verify "$BACKUP" >"$WORK/verify.txt" 2>&1 || fail "backup verify $BACKUP: $(cat "$WORK/verify.txt")"
echo "    $(cat "$WORK/verify.txt")"

step "6. a deploy after the failed one (v1 again), then a missing artifact"
deploy "$V1"
((RC == 0)) || fail "deploying v1 after the failed deploy exited $RC"
[[ $(current) == "releases/$ID1" && $(previous) == "releases/$ID2" ]] ||
  fail "current/previous are $(current)/$(previous), not releases/$ID1/releases/$ID2"
grep -q "already installed" "$OUT" || fail "v1's release directory was not reused"
healthy || fail "v1 is not healthy"
has_project || fail "the data is gone after redeploying v1"
PID3=$(api_pid)
deploy "$WORK/art/no-such-file"
((RC == 1)) || fail "a missing artifact exited $RC, not 1"
grep -q "nothing was changed" "$OUT" || fail "the aborted deploy did not say nothing changed"
[[ $(current) == "releases/$ID1" && $(api_pid) == "$PID3" ]] || fail "the aborted deploy changed something"
healthy || fail "the server stopped answering after an aborted deploy"

step "stop the server through its pidfile (SIGTERM drains, exit 0)"
kill -TERM "$PID3"
for _ in $(seq 200); do running "$PID3" || break; sleep 0.1; done
running "$PID3" && fail "the server did not stop within 20 s"
echo "PASS: deploy.sh --target local ($((SECONDS - STARTED))s)"
