#!/usr/bin/env bash
# deploy.sh --host against a real sshd (Debian's openssh-server) that this test
# starts on a free loopback port with its own config, a throwaway host key and
# a throwaway client key (nothing of the machine's ssh setup is used or
# changed, except creating the privilege-separation directory /run/sshd when
# it is missing). Deploys into a temporary prefix, as <current user>@127.0.0.1
# (root here):
#   1. v1 (the real binary) in staging with --service-mode api (a `serve
#      --mode api` plus a `devstream worker`): the remote deploy's log streams
#      back, the server answers /health on its port, the remote
#      PREFIX/log/deploy.log shows every step, the remote temporary directory
#      is gone afterwards;
#   2. a bad version (its `serve` exits 1 after a second) over ssh: exit 1,
#      rolled back, v1 serves again (API and worker), the data survives;
#   3. an unreachable host fails the pre-check without copying anything.
# Usage: deploy_ssh_test.sh DEVSTREAM_BINARY REPO_ROOT
set -euo pipefail

BIN=$(readlink -f "${1:?usage: deploy_ssh_test.sh DEVSTREAM_BINARY REPO_ROOT}")
REPO=$(readlink -f "${2:?usage: deploy_ssh_test.sh DEVSTREAM_BINARY REPO_ROOT}")
DEPLOY="$REPO/deployment/scripts/deploy.sh"
SSHD=/usr/sbin/sshd
[[ -x $BIN ]] || { echo "FAIL: $BIN is not executable" >&2; exit 1; }
[[ -f $DEPLOY ]] || { echo "FAIL: no $DEPLOY" >&2; exit 1; }
if [[ ! -x $SSHD ]] || ! command -v ssh >/dev/null || ! command -v scp >/dev/null || ! command -v ssh-keygen >/dev/null; then
  echo "FAIL: needs $SSHD (openssh-server) and ssh, scp, ssh-keygen (openssh-client): make test-deps (deps/debian-test-packages.txt)" >&2
  exit 1
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/deploy-ssh-test.XXXXXX")
PREFIX="$WORK/prefix"
OUT="$WORK/out.txt"
SSHD_PID=""
STARTED=$SECONDS
FAIL_LOG="$WORK/sshd.log"
# shellcheck source=deploy_test_lib.sh
. "$(dirname "$0")/deploy_test_lib.sh"

cleanup() {
  local rc=$?
  trap - EXIT
  set +e
  stop_deploy_in_flight
  # Its copy on the "remote" side (this machine) outlives a dropped ssh session
  # on purpose; stop it too (it rolls back) before the prefix goes away.
  local rpids
  rpids=$(pgrep -f -- "deploy\.sh .*--prefix $PREFIX" || true)
  if [[ -n $rpids ]]; then
    # shellcheck disable=SC2086 # a list of pids
    kill -TERM $rpids 2>/dev/null
    for _ in $(seq 600); do pgrep -f -- "deploy\.sh .*--prefix $PREFIX" >/dev/null || break; sleep 0.1; done
  fi
  stop_prefix_servers
  if [[ -n $SSHD_PID ]]; then
    stop_pid "$SSHD_PID" 50
    wait "$SSHD_PID" 2>/dev/null
  fi
  if [[ -n ${REMOTE_TMP:-} && -d ${REMOTE_TMP:-} ]]; then rm -rf "$REMOTE_TMP"; fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' TERM INT HUP

# root in the test environment (PermitRootLogin prohibit-password allows the key).
LOGIN="$(id -un)@127.0.0.1"
LOGIN_RE="$(id -un)@127\.0\.0\.1"
SSH_PORT=$(free_port)
PORT=$(free_port)
URL="http://127.0.0.1:$PORT"
KEY="$WORK/client_key"

step "start sshd on 127.0.0.1:$SSH_PORT"
ssh-keygen -q -t ed25519 -N '' -C deploy-test-host -f "$WORK/host_key"
ssh-keygen -q -t ed25519 -N '' -C deploy-test-client -f "$KEY"
cp "$KEY.pub" "$WORK/authorized_keys"
cat >"$WORK/sshd_config" <<EOF
Port $SSH_PORT
ListenAddress 127.0.0.1
HostKey $WORK/host_key
PidFile $WORK/sshd.pid
AuthorizedKeysFile $WORK/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
PrintMotd no
X11Forwarding no
AllowTcpForwarding no
MaxStartups 30:50:60
LogLevel VERBOSE
# scp in OpenSSH 9 speaks SFTP
Subsystem sftp internal-sftp
EOF
if [[ ! -d /run/sshd ]]; then mkdir -p /run/sshd && chmod 0755 /run/sshd; fi
"$SSHD" -t -f "$WORK/sshd_config" || fail "sshd -t rejects the test config"
"$SSHD" -D -e -f "$WORK/sshd_config" >"$WORK/sshd.log" 2>&1 &
SSHD_PID=$!

export DEPLOY_SSH_OPTS="-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
read -r -a EXTRA_SSH_OPTS <<<"$DEPLOY_SSH_OPTS"
SSH=(ssh -p "$SSH_PORT" -i "$KEY" -o IdentitiesOnly=yes -o BatchMode=yes -o ConnectTimeout=5 "${EXTRA_SSH_OPTS[@]}")
ready=0
for _ in $(seq 50); do
  running "$SSHD_PID" || fail "sshd exited at start"
  if "${SSH[@]}" "$LOGIN" true </dev/null 2>/dev/null; then ready=1; break; fi
  sleep 0.2
done
((ready)) || fail "sshd on port $SSH_PORT does not accept the test key"

# deploy ARTIFACT [HOST]: deploy.sh over ssh; output in $OUT, status in $RC.
deploy() {
  run_deploy 150 staging --host "${2:-$LOGIN}" --ssh-port "$SSH_PORT" --ssh-key "$KEY" \
    --artifact "$1" --prefix "$PREFIX" --port "$PORT" --service-mode api \
    --health-interval 0.3 --health-retries 30 --stop-timeout 20
}
alive() { [[ -f $1 ]] && running "$(<"$1")"; }
ID1="$("$BIN" version | awk '{print $NF}')-$(sha256sum "$BIN" | cut -c1-12)"

step "1. deploy v1 ($ID1) over ssh into $PREFIX (staging, API + worker, port $PORT)"
deploy "$BIN"
((RC == 0)) || fail "the deploy over ssh exited $RC"
grep -qF "[deploy] precheck: target reachable: ssh $LOGIN" "$OUT" || fail "no ssh reachability pre-check in the output"
grep -qF "[deploy] remote: remote deploy on $LOGIN succeeded" "$OUT" || fail "the local side did not report success"
grep -q "\[deploy\] done: release $ID1 is live" "$OUT" || fail "the remote log did not stream back"
REMOTE_TMP=$(sed -n "s/.* to $LOGIN_RE:\\(\\/[^ ]*\\)\$/\\1/p" "$OUT" | head -n1)
[[ $REMOTE_TMP == */devstream-deploy.* ]] || fail "the output names no remote temporary directory"
[[ ! -e $REMOTE_TMP ]] || fail "the remote temporary directory $REMOTE_TMP was not removed"
for s in precheck backup migrate rollout verify "done"; do
  grep -q "\[deploy\] $s:" "$PREFIX/log/deploy.log" || fail "the remote deploy.log has no '$s' step"
done
[[ $(readlink "$PREFIX/current") == "releases/$ID1" ]] || fail "current is $(readlink "$PREFIX/current")"
healthy || fail "$URL is not healthy after the deploy over ssh"
alive "$PREFIX/run/devstream.pid" || fail "the API process is not running"
alive "$PREFIX/run/devstream-worker.pid" || fail "the worker process is not running"
grep -q '^DEVSTREAM_SERVICE_MODE=api$' "$PREFIX/etc/devstream.env" || fail "the env file has no service mode api"
# The server outlived the ssh session that started it (setsid); so did the worker.
ds_env project create ssh-survivor >/dev/null 2>&1 || fail "project create failed"
ds_env project list | grep -q ssh-survivor || fail "the project is not listed"
API1=$(<"$PREFIX/run/devstream.pid")

step "2. a bad version over ssh: rolled back"
BAD="$WORK/devstream-bad"
cat >"$BAD" <<EOF
#!/bin/sh
# A build whose server dies at start: every other command works.
for a in "\$@"; do
  if [ "\$a" = serve ]; then echo "bad build: serve exits" >&2; sleep 1; exit 1; fi
done
exec $(printf '%q' "$BIN") "\$@"
EOF
deploy "$BAD"
((RC == 1)) || fail "the bad deploy over ssh exited $RC, not 1"
grep -q "rolled back: release $ID1 is current" "$OUT" || fail "the output does not say it rolled back to $ID1"
grep -qF "[deploy] remote: remote deploy on $LOGIN failed (exit 1)" "$OUT" || fail "the exit status did not propagate"
grep -q "\[deploy\] rollback:" "$PREFIX/log/deploy.log" || fail "the remote deploy.log has no rollback step"
[[ $(readlink "$PREFIX/current") == "releases/$ID1" ]] || fail "after the rollback current is $(readlink "$PREFIX/current")"
healthy || fail "v1 does not answer /health after the rollback"
alive "$PREFIX/run/devstream.pid" || fail "the API process is not running after the rollback"
alive "$PREFIX/run/devstream-worker.pid" || fail "the worker is not running after the rollback"
[[ $(<"$PREFIX/run/devstream.pid") != "$API1" ]] || fail "the API was not restarted"
ds_env project list | grep -q ssh-survivor || fail "the data is gone after the rollback"
BACKUP=$(sed -n 's/.*database backed up with .* to \(.*\) (verified)$/\1/p' "$OUT" | tail -n1)
[[ -f $BACKUP ]] || fail "the pre-migration backup '$BACKUP' does not exist"
"$BIN" backup verify "$BACKUP" >/dev/null 2>&1 || fail "the pre-migration backup does not verify"

step "3. an unreachable host"
CLOSED=$(free_port)
RC=0
timeout 60 bash "$DEPLOY" staging --host "$LOGIN" --ssh-port "$CLOSED" --ssh-key "$KEY" \
  --artifact "$BIN" --prefix "$PREFIX" >"$OUT" 2>&1 &
DEPLOY_PID=$!
wait "$DEPLOY_PID" || RC=$?
DEPLOY_PID=""
sed 's/^/    /' "$OUT"
((RC == 1)) || fail "an unreachable host exited $RC, not 1"
grep -q 'is not reachable over ssh' "$OUT" || fail "the pre-check did not say the host is unreachable"
healthy || fail "the server stopped answering"

echo "PASS: deploy.sh --host over a real sshd ($((SECONDS - STARTED))s)"
