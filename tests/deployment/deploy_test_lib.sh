# shellcheck shell=bash disable=SC2034 # RC is read by the sourcing tests
# Shared by deploy_local_test.sh and deploy_ssh_test.sh (sourced, bash).
# The caller sets BIN, DEPLOY, WORK, PREFIX, OUT and STARTED before sourcing,
# and URL before using healthy; FAIL_LOG (a file) is tailed by fail when set.
# DEPLOY_PID is the deploy.sh in flight (run in the background so a signal
# reaches the traps), RC the status of the last run_deploy.
DEPLOY_PID=""
RC=0

# Is pid $1 a running process? A zombie is not: this machine's init may reap
# orphans (our servers, once their deploy.sh exited) late.
running() {
  local st
  st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [[ -n $st && $st != Z ]]
}

# stop_pid PID TENTHS: SIGTERM, wait up to TENTHS × 0.1 s, then SIGKILL.
stop_pid() {
  kill -TERM "$1" 2>/dev/null || return 0
  for _ in $(seq "$2"); do running "$1" || break; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null
}

# For cleanup, in this order: the deploy in flight (it rolls back), then every
# process whose pidfile is in the prefix.
stop_deploy_in_flight() {
  if [[ -n $DEPLOY_PID ]] && kill -0 "$DEPLOY_PID" 2>/dev/null; then stop_pid "$DEPLOY_PID" 600; fi
}
stop_prefix_servers() {
  local pf pid
  for pf in "$PREFIX"/run/*.pid; do
    [[ -f $pf ]] || continue
    pid=$(<"$pf")
    [[ $pid =~ ^[0-9]+$ ]] && stop_pid "$pid" 100
  done
}

fail() {
  echo "FAIL: $*" >&2
  if [[ -f $OUT ]]; then
    echo "---- last deploy output:" >&2
    tail -n 40 "$OUT" >&2
  fi
  if [[ -n ${FAIL_LOG:-} && -f $FAIL_LOG ]]; then
    echo "---- $FAIL_LOG (tail):" >&2
    tail -n 15 "$FAIL_LOG" >&2
  fi
  exit 1
}
step() { echo "== [$((SECONDS - STARTED))s] $*"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# run_deploy TIMEOUT_S ARGS...: deploy.sh ARGS with output in $OUT (and
# indented on stdout), status in $RC.
run_deploy() {
  local limit=$1
  shift
  RC=0
  timeout "$limit" bash "$DEPLOY" "$@" >"$OUT" 2>&1 &
  DEPLOY_PID=$!
  wait "$DEPLOY_PID" || RC=$?
  DEPLOY_PID=""
  sed 's/^/    /' "$OUT"
}

# The devstream CLI with the deployment's environment file.
ds_env() {
  local e=()
  mapfile -t e < <(grep -E '^[A-Za-z_][A-Za-z0-9_]*=' "$PREFIX/etc/devstream.env")
  (cd "$WORK" && env "${e[@]}" "$BIN" "$@")
}
healthy() { "$BIN" health --url "$URL" >/dev/null 2>&1; }
