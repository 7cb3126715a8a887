#!/usr/bin/env bash
# deploy.sh: deploy DevStream to a host without Docker (--target local, the
# default), to a Docker Compose stack (--target compose), either here or on
# another machine over SSH (--host). The seed did this with Fabric; this script
# needs only bash, coreutils, util-linux (flock, setsid, setpriv) and, for
# --host, the ssh/scp clients from Debian's openssh-client.
#
# Usage:
#   deploy.sh ENV [REF] [--target local|compose] [--host user@host]
#             [--artifact PATH] [--prefix DIR] [--port N] [--service-mode all|api]
#             [options]                                 (deploy.sh --help lists them)
#
#   ENV  development | staging | production (deployment/environments/ENV.yml)
#   REF  a git ref of this repository. Without --artifact, REF (default HEAD) is
#        built: `git archive REF | tar -x` into a temporary directory and a CMake
#        Release build of the target devstream (-j2, DEPLOY_BUILD_JOBS). With
#        --artifact PATH the prebuilt binary PATH is deployed instead and REF is
#        only recorded (the tests always use --artifact, so they never build).
#        For --target compose REF is the image tag (DEVSTREAM_IMAGE_TAG).
#
# Exit status: 0 deployed (or already deployed: a no-op), 1 the deploy failed and
# nothing changed or everything was rolled back, 2 usage error, 3 the rollback
# itself failed: someone has to look (the log says what is where).
#
# ---------------------------------------------------------------------------
# Local layout (--prefix, default /opt/devstream)
#
#   releases/<id>/devstream   one directory per deployed artifact; <id> is
#                             `<version>-<first 12 hex of the binary's sha256>`
#                             (version from `devstream version`, else "unknown"),
#                             so the same artifact always gets the same id and
#                             "deploy the same artifact again" is detectable.
#                             releases/<id>/release.info records sha256, REF,
#                             source path and time. Artifacts are opaque
#                             executables: copied, chmod 0755, never inspected.
#   current  -> releases/<id> the live release (relative symlink, swapped
#                             atomically with rename(2))
#   previous -> releases/<id> the release before it, the rollback target
#   etc/<ENV>.yml             copied from deployment/environments/ENV.yml on the
#                             first deploy, never overwritten (operators edit it)
#   etc/devstream.env         KEY=VALUE lines (systemd EnvironmentFile syntax, no
#                             shell expansion), created on the first deploy with
#                             DEVSTREAM_ENV, DEVSTREAM_CONFIG, DEVSTREAM_DATABASE_PATH
#                             (PREFIX/data/devstream.db), DEVSTREAM_BACKUP_DIR
#                             (PREFIX/backups), DEVSTREAM_LOG_FILE
#                             (PREFIX/log/devstream.log), DEVSTREAM_HOST
#                             (127.0.0.1), DEVSTREAM_PORT (--port, default 8000),
#                             DEVSTREAM_SERVICE_MODE (--service-mode, default all)
#                             and a generated DEVSTREAM_SECRET_KEY (32 random
#                             bytes, base64; production requires one), mode 0600.
#                             Never overwritten afterwards: --port and
#                             --service-mode only apply on the first deploy.
#                             Every devstream command of this script, and the
#                             systemd units, get exactly this environment: the
#                             DEVSTREAM_* variables of the caller's shell are
#                             ignored (unset) by the local target.
#   data/devstream.db         the database; backups/ the backups (pre-deploy ones
#                             are renamed devstream-predeploy-<UTC>-<id>.db, so
#                             two in one second never overwrite each other, and
#                             `backup prune` / the backup job's retention
#                             applies to them); log/devstream.log the server's
#                             log, log/<name>.out its stdout/stderr,
#                             log/deploy.log every line this script printed;
#                             run/devstream.pid (and run/devstream-worker.pid),
#                             run/deploy.lock (flock: one deploy at a time).
#
# Service modes: `all` (default) runs one `devstream serve` (HTTP and the job
# worker); `api` runs `devstream serve` in mode api plus a `devstream worker`
# (production.yml's shape). task_engine alone cannot be health-checked over HTTP
# and is refused.
#
# Process management (--service-manager auto|systemd|pidfile): `systemd` when
# systemd runs (/run/systemd/system exists) and devstream-api.service is
# installed (deployment/systemd/, which hard-codes /opt/devstream), else
# `pidfile`: processes started with setsid in the background (own session, so
# they outlive this script and its ssh session; stdin /dev/null, output to
# log/serve.out or log/worker.out), their pid in run/devstream.pid or
# run/devstream-worker.pid (plus a .start file with the process start time, so
# a reused pid is never signalled), stopped with SIGTERM (they drain) and
# SIGKILL after --stop-timeout seconds (40). The tests use pidfile. With systemd:
# `systemctl stop` / `systemctl start` of devstream-api.service and
# devstream-worker.service (start pulls in devstream-migrate.service, a no-op
# by then) and `systemctl is-active`; the units always split the work (`serve
# --mode api` + `worker`) whatever DEVSTREAM_SERVICE_MODE says. They run as the
# user `devstream`, and this script then runs the CLI (backup, migrate,
# restore) as that user too (setpriv; --service-user).
#
# Steps (each logged as `<UTC time> [deploy] <step>: ...`, also appended to
# PREFIX/log/deploy.log):
#  1. precheck: the prefix is writable (local) or the host answers
#     `ssh -o BatchMode=yes host true` (--host); the artifact exists; free disk
#     in the prefix >= artifact + 3 x database + --min-free-mb (100) MB; the
#     artifact runs (`devstream version`); `config check` with the new binary
#     and the env file (against a scratch database the new binary migrated, so
#     production's "pending migrations" refusal, which the migrate step is about
#     to fix, does not abort it; every other refusal (exit 1) or invalid setting
#     (exit 2) aborts); the port is not taken by a process this script does not
#     manage. Nothing has changed yet when a pre-check fails (a first deploy
#     may have created the directories, etc/ENV.yml and etc/devstream.env).
#     When the artifact is the current release and it is running and healthy,
#     the deploy stops here: "already deployed", exit 0 (idempotent).
#  2. backup: when the database exists, `backup create` with the CURRENT (old)
#     binary (the new one when there is none), then `backup verify`; the path is
#     logged.
#  3. migrate: `migrate up` with the new binary (production never migrates on
#     start, so this step is what makes the new release startable). The old
#     release keeps serving meanwhile (migrations are expected to be additive).
#  4. rollout: install the binary into releases/<id>/ (reused when that
#     release is already there with the same sha256), stop the running
#     processes, point `previous` at the old release and `current` at the new
#     one, wait until the port is free (5 s), start it.
#  5. verify: `devstream health --url http://HOST:PORT` (exit 0 = healthy or
#     degraded) up to --health-retries (20) times, --health-interval (0.5 s)
#     apart, and the processes must still be alive, also --settle (1) seconds
#     after the first healthy answer.
#  6. on a failure after step 2 (verification, or any unexpected error):
#     rollback: stop the new processes, point `current`/`previous` back, restore
#     the pre-migration backup with `devstream restore` run by the OLD binary
#     (the new one if the old refuses; `restore` keeps the replaced content as
#     backups/devstream-pre-restore-*.db, so writes made during the deploy are
#     not lost, only set aside), start the old release if it was running before,
#     verify it, remove the failed release directory and exit 1 ("rolled back").
#     A first deploy that fails has nothing to go back to: its processes are
#     stopped and `current` removed (the database it migrated stays).
#     Redeploying the current release when it was not running or not healthy
#     goes through every step; its rollback only restores the database.
# Afterwards old releases beyond --keep-releases (5; current and previous always
# stay) are removed.
#
# --host user@host: the pre-checks run here (ssh reachability) and then over
# ssh; this script, deployment/environments/ENV.yml and the artifact (built here
# from REF when no --artifact) are copied with scp into a `mktemp -d` directory
# on the host, the script runs there with --target local (or compose) and the
# same options, its log streams back, its exit status is ours, and the
# temporary directory is removed. --ssh-port, --ssh-key/-i and DEPLOY_SSH_OPTS
# (extra ssh/scp options, split on spaces, e.g. "-o StrictHostKeyChecking=no
# -o UserKnownHostsFile=/dev/null") shape every ssh/scp call; BatchMode is
# always on, so a password prompt can never hang a deploy. scp in OpenSSH 9
# speaks SFTP: the host's sshd needs its sftp subsystem.
#
# --target compose (docker compose v2, else docker-compose 1.29) drives
# deployment/docker/docker-compose.prod.yml (--compose-file) as project
# `devstream` (--compose-project). IT IS NOT TESTED HERE (no Docker engine in
# the test environment; only against a stub `docker`) and assumes of the compose
# file: services `migrate` (one-shot; its default command applies the
# migrations), `api` (scalable: no container_name, no published port; nginx
# reaches it as api:8000), `worker` and `nginx` (`nginx -s reload` re-resolves
# the api replicas); images `devstream:${DEVSTREAM_IMAGE_TAG}` (--image-repo)
# with `devstream` as entrypoint/on PATH, and devstream-nginx:<same tag>; the
# database and backup.dir on a volume that api and migrate share; the server
# listening on --container-port (8000) inside each api container. Secrets reach
# compose the usual way (the caller's environment, deployment/docker/.env or
# --compose-env-file): this target leaves DEVSTREAM_* variables alone. The
# tag to deploy is REF (or --image-tag); the previous one is read from the
# running api containers. Steps: precheck (compose installed, the engine
# answers, the image exists: `docker load -i` of --artifact, else a `docker
# build` of `git archive REF` (stages production and nginx), else `compose
# pull`; `compose config`; the data volume's free space from /health;
# `config check` in a migrate container of the new image, where "migrations
# pending" is the one refusal allowed); backup (`backup create` + `verify` in a
# running api container, the old image); migrate (`compose run --rm migrate`);
# rollout (first deploy: `compose up -d`; else api scaled to twice its
# replicas with --no-recreate so only the new containers get the new image,
# each new one must pass `devstream health`, nginx reloads, the old ones get
# `docker stop -t --stop-timeout` (they drain) and are removed, nginx reloads,
# the worker is recreated; nginx itself is reloaded, not replaced); verify
# (every api container, and --health-url from here with curl, e.g. through
# nginx); rollback (remove the new containers, `restore` the backup with the
# old image, `up` api and worker on the old tag, reload nginx, verify).
#
# Environment: DEPLOY_SSH_OPTS (above), DEPLOY_BUILD_JOBS (2),
# DEPLOY_HEALTH_RETRIES, DEPLOY_HEALTH_INTERVAL, DEPLOY_STOP_TIMEOUT (defaults
# of the matching flags).
set -euo pipefail

readonly EXIT_FAILED=1 EXIT_USAGE=2 EXIT_ROLLBACK_FAILED=3

SCRIPT_PATH=$(readlink -f "${BASH_SOURCE[0]}")
SCRIPT_DIR=$(dirname "$SCRIPT_PATH")
DEPLOY_DIR=$(dirname "$SCRIPT_DIR")
REPO_ROOT=$(dirname "$DEPLOY_DIR")

ENV_NAME=""
REF=""
TARGET=local
HOST=""
ARTIFACT=""
PREFIX=/opt/devstream
PORT_OPT=""
SERVICE_MODE_OPT=""
SSH_PORT=""
SSH_KEY=""
HEALTH_RETRIES=${DEPLOY_HEALTH_RETRIES:-20}
HEALTH_INTERVAL=${DEPLOY_HEALTH_INTERVAL:-0.5}
SETTLE=1
STOP_TIMEOUT=${DEPLOY_STOP_TIMEOUT:-40}
MIN_FREE_MB=100
KEEP_RELEASES=5
SERVICE_MANAGER=auto
SERVICE_USER=""
SERVICE_USER_SET=0
ENVIRONMENTS_DIR="$DEPLOY_DIR/environments"
COMPOSE_FILE="$DEPLOY_DIR/docker/docker-compose.prod.yml"
COMPOSE_PROJECT=devstream
COMPOSE_ENV_FILE=""
IMAGE_TAG=""
IMAGE_REPO=devstream
CONTAINER_PORT=8000
HEALTH_URL_OPT=""
FORWARD=()   # options handed on to the copy of this script that runs on --host

STEP=init
DEPLOY_LOG=""
STDOUT_OK=1

usage() {
  cat <<'EOF'
Usage: deploy.sh ENV [REF] [options]

  ENV                     development | staging | production
  REF                     git ref to build (default HEAD) when no --artifact;
                          the image tag for --target compose
  --target local|compose  where to deploy (default local)
  --host USER@HOST        run every step on that machine over ssh
  --artifact PATH         deploy this prebuilt binary (compose: an image archive)
  --prefix DIR            local layout root (default /opt/devstream)
  --port N                server port, written to etc/devstream.env on the first deploy (8000)
  --service-mode all|api  first deploy: one `serve` (all) or `serve --mode api` + `worker`
  --service-manager auto|systemd|pidfile   (default auto)
  --service-user USER     run devstream as USER (default: devstream with systemd, else the caller)
  --health-retries N      health checks before giving up (20)
  --health-interval S     seconds between them (0.5)
  --settle S              seconds to watch a healthy new release before calling it good (1)
  --stop-timeout S        SIGTERM drain wait before SIGKILL (40)
  --min-free-mb N         free disk required beyond artifact + 3 x database (100)
  --keep-releases N       releases kept besides current and previous (5)
  --environments-dir DIR  where ENV.yml comes from (deployment/environments)
  --ssh-port N, --ssh-key FILE (-i FILE)   ssh settings for --host (DEPLOY_SSH_OPTS adds options)
  --compose-file FILE, --compose-project NAME, --compose-env-file FILE,
  --image-tag TAG, --image-repo NAME, --container-port N, --health-url URL
                          --target compose settings
  -h, --help              this text
EOF
}

# ---------------------------------------------------------------- logging ---

log() {
  local line
  line="$(date -u +%Y-%m-%dT%H:%M:%SZ) [deploy] ${STEP}: $*"
  if ((STDOUT_OK)); then printf '%s\n' "$line" 2>/dev/null || STDOUT_OK=0; fi
  if [[ -n $DEPLOY_LOG ]]; then
    printf '%s\n' "$line" >>"$DEPLOY_LOG" 2>/dev/null || true
  fi
}

# Log a command's output line by line (indented) and return its status.
run_logged() {
  local out rc=0 l
  out=$("$@" 2>&1) || rc=$?
  if [[ -n $out ]]; then
    while IFS= read -r l; do log "  | $l"; done <<<"$out"
  fi
  return "$rc"
}

# A failure: log it and exit; the EXIT trap rolls back when a rollback is armed.
fail() {
  log "FAILED: $*"
  exit "$EXIT_FAILED"
}

usage_error() {
  printf 'deploy.sh: %s\n' "$*" >&2
  usage >&2
  exit "$EXIT_USAGE"
}

# ---------------------------------------------------------------- options ---

need_value() { [[ $# -ge 2 && -n $2 ]] || usage_error "$1 needs a value"; }

parse_args() {
  local positional=() opt val
  while [[ $# -gt 0 ]]; do
    opt=$1
    if [[ $opt == --*=* ]]; then
      val=${opt#*=}
      opt=${opt%%=*}
      shift
      set -- "$opt" "$val" "$@"
    fi
    case $1 in
      -h | --help) usage; exit 0 ;;
      --target) need_value "$@"; TARGET=$2; shift 2 ;;
      --host) need_value "$@"; HOST=$2; shift 2 ;;
      --artifact) need_value "$@"; ARTIFACT=$2; shift 2 ;;
      --prefix) need_value "$@"; PREFIX=$2; FORWARD+=(--prefix "$2"); shift 2 ;;
      --port) need_value "$@"; PORT_OPT=$2; FORWARD+=(--port "$2"); shift 2 ;;
      --service-mode) need_value "$@"; SERVICE_MODE_OPT=$2; FORWARD+=(--service-mode "$2"); shift 2 ;;
      --service-manager) need_value "$@"; SERVICE_MANAGER=$2; FORWARD+=(--service-manager "$2"); shift 2 ;;
      --service-user) need_value "$@"; SERVICE_USER=$2; SERVICE_USER_SET=1; FORWARD+=(--service-user "$2"); shift 2 ;;
      --health-retries) need_value "$@"; HEALTH_RETRIES=$2; shift 2 ;;
      --health-interval) need_value "$@"; HEALTH_INTERVAL=$2; shift 2 ;;
      --settle) need_value "$@"; SETTLE=$2; FORWARD+=(--settle "$2"); shift 2 ;;
      --stop-timeout) need_value "$@"; STOP_TIMEOUT=$2; shift 2 ;;
      --min-free-mb) need_value "$@"; MIN_FREE_MB=$2; FORWARD+=(--min-free-mb "$2"); shift 2 ;;
      --keep-releases) need_value "$@"; KEEP_RELEASES=$2; FORWARD+=(--keep-releases "$2"); shift 2 ;;
      --environments-dir) need_value "$@"; ENVIRONMENTS_DIR=$2; shift 2 ;;
      --ssh-port) need_value "$@"; SSH_PORT=$2; shift 2 ;;
      --ssh-key | -i) need_value "$@"; SSH_KEY=$2; shift 2 ;;
      --compose-file) need_value "$@"; COMPOSE_FILE=$2; shift 2 ;;
      --compose-project) need_value "$@"; COMPOSE_PROJECT=$2; FORWARD+=(--compose-project "$2"); shift 2 ;;
      --compose-env-file) need_value "$@"; COMPOSE_ENV_FILE=$2; shift 2 ;;
      --image-tag) need_value "$@"; IMAGE_TAG=$2; FORWARD+=(--image-tag "$2"); shift 2 ;;
      --image-repo) need_value "$@"; IMAGE_REPO=$2; FORWARD+=(--image-repo "$2"); shift 2 ;;
      --container-port) need_value "$@"; CONTAINER_PORT=$2; FORWARD+=(--container-port "$2"); shift 2 ;;
      --health-url) need_value "$@"; HEALTH_URL_OPT=$2; FORWARD+=(--health-url "$2"); shift 2 ;;
      --) shift; positional+=("$@"); break ;;
      -*) usage_error "unknown option $1" ;;
      *) positional+=("$1"); shift ;;
    esac
  done
  [[ ${#positional[@]} -ge 1 ]] || usage_error "ENV is required"
  [[ ${#positional[@]} -le 2 ]] || usage_error "too many arguments: ${positional[*]}"
  ENV_NAME=${positional[0]}
  REF=${positional[1]:-}

  case $ENV_NAME in development | staging | production) ;; *) usage_error "ENV must be development, staging or production, not '$ENV_NAME'" ;; esac
  case $TARGET in local | compose) ;; *) usage_error "--target must be local or compose" ;; esac
  case $SERVICE_MANAGER in auto | systemd | pidfile) ;; *) usage_error "--service-manager must be auto, systemd or pidfile" ;; esac
  case ${SERVICE_MODE_OPT:-all} in all | api) ;; *) usage_error "--service-mode must be all or api" ;; esac
  local n
  for n in "$HEALTH_RETRIES" "$STOP_TIMEOUT" "$MIN_FREE_MB" "$KEEP_RELEASES" "${PORT_OPT:-0}" "${SSH_PORT:-0}" "$CONTAINER_PORT"; do
    [[ $n =~ ^[0-9]+$ ]] || usage_error "not a whole number: $n"
  done
  for n in "$HEALTH_INTERVAL" "$SETTLE"; do
    [[ $n =~ ^[0-9]+(\.[0-9]+)?$ ]] || usage_error "not a number of seconds: $n"
  done
  [[ $PREFIX == /* ]] || PREFIX="$(pwd)/$PREFIX"
  [[ $PREFIX != / ]] || usage_error "--prefix / is not a prefix"
  PREFIX=${PREFIX%/}
  [[ -z $ARTIFACT || $ARTIFACT == /* ]] || ARTIFACT="$(pwd)/$ARTIFACT"
}

# ---------------------------------------------------------------- helpers ---

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# Replace symlink $2 with one pointing at $1, atomically (rename(2)).
set_link() {
  local target=$1 link=$2
  ln -sfn "$target" "$link.tmp.$$"
  mv -Tf "$link.tmp.$$" "$link"
}

# The target of symlink $1 ("" when absent).
link_target() { if [[ -L $1 ]]; then readlink "$1"; fi; }

# JSON string/number value of "key":{"value":... from `config show --json`.
json_setting() {
  local key=${1//./\\.} json=$2 v
  v=$(sed -n "s/.*\"$key\":{\"value\":\"\\([^\"]*\\)\".*/\\1/p" <<<"$json")
  [[ -n $v ]] || v=$(sed -n "s/.*\"$key\":{\"value\":\\([^,}\"]*\\).*/\\1/p" <<<"$json")
  printf '%s' "$v"
}

json_field() { sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p" <<<"$2" | head -n1; }

# Quote for a POSIX shell (the remote login shell).
shq() { local s=${1//\'/\'\\\'\'}; printf "'%s'" "$s"; }

# ============================================================ local target ===

ENV_FILE=""
ENV_ARGS=()          # KEY=VALUE pairs of etc/devstream.env
RUN_AS=()            # setpriv prefix when devstream runs as --service-user
MANAGER=pidfile
SERVICES=()          # api [worker]
HEALTH_URL="" HEALTH_HOST="" HEALTH_PORT=""
DB_PATH=""
NEW_ID="" NEW_BIN="" STAGED="" OLD_ID="" OLD_BIN=""
ORIG_CURRENT="" ORIG_PREVIOUS=""
WAS_RUNNING=0
BACKUP_PATH=""
ROLLBACK_ARMED=0
MIGRATE_RAN=0 STOPPED_OLD=0 FLIPPED=0 STARTED_NEW=0 INSTALLED_NEW=0
SCRATCH=""

# Read etc/devstream.env into ENV_ARGS (KEY=VALUE, '#' comments, optional
# matching quotes around the value; no expansion, as systemd reads it).
load_env_file() {
  ENV_ARGS=()
  local line key val
  while IFS= read -r line || [[ -n $line ]]; do
    line=${line#"${line%%[![:space:]]*}"}
    [[ -z $line || $line == \#* || $line == \;* ]] && continue
    [[ $line == *=* ]] || { log "ignoring a line without '=' in $ENV_FILE"; continue; }
    key=${line%%=*}
    key=${key%"${key##*[![:space:]]}"}
    val=${line#*=}
    if [[ ${#val} -ge 2 && ( ($val == \"*\" ) || ($val == \'*\') ) ]]; then
      val=${val:1:${#val}-2}
    fi
    [[ $key =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || { log "ignoring invalid key '$key' in $ENV_FILE"; continue; }
    ENV_ARGS+=("$key=$val")
  done <"$ENV_FILE"
}

env_value() {
  local kv
  for kv in "${ENV_ARGS[@]}"; do
    if [[ ${kv%%=*} == "$1" ]]; then printf '%s' "${kv#*=}"; return 0; fi
  done
  return 1
}

# Run devstream binary $1 with the env file's environment, in the prefix.
ds() {
  local bin=$1
  shift
  (cd "$PREFIX" && exec "${RUN_AS[@]}" env "${ENV_ARGS[@]}" "$bin" "$@" 9>&-)
}

pidfile_of() { printf '%s/run/%s.pid' "$PREFIX" "$([[ $1 == api ]] && echo devstream || echo devstream-worker)"; }
unit_of() { printf 'devstream-%s.service' "$1"; }

# Is $1 a live (not zombie) process?
proc_alive() {
  local st
  kill -0 "$1" 2>/dev/null || return 1
  st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [[ -n $st && $st != Z ]]
}

# The start time of process $1 (field 22 of /proc/PID/stat), which tells a
# process from a later one that reused its pid.
proc_start() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f20; }

# The pid of service $1 when the process its pidfile names still runs (the
# pidfile's .start companion guards against a reused pid).
service_pid() {
  local pf pid
  pf=$(pidfile_of "$1")
  [[ -f $pf ]] || return 1
  pid=$(<"$pf")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  proc_alive "$pid" || return 1
  if [[ -f $pf.start && $(<"$pf.start") != "$(proc_start "$pid")" ]]; then return 1; fi
  printf '%s' "$pid"
}

port_taken() { (exec 3<>"/dev/tcp/${HEALTH_HOST}/${HEALTH_PORT}") 2>/dev/null; }

service_alive() {
  if [[ $MANAGER == systemd ]]; then
    systemctl is-active --quiet "$(unit_of "$1")"
  else
    service_pid "$1" >/dev/null
  fi
}

all_services_alive() {
  local s
  for s in "${SERVICES[@]}"; do service_alive "$s" || { log "$s is not running"; return 1; }; done
}

any_service_alive() {
  local s
  for s in api worker; do service_alive "$s" && return 0; done
  return 1
}

# Stop every service of this prefix: SIGTERM, wait (they drain), SIGKILL.
stop_services() {
  local s pid pids=() names=() deadline i
  if [[ $MANAGER == systemd ]]; then
    for s in api worker; do
      if systemctl cat "$(unit_of "$s")" >/dev/null 2>&1; then
        log "systemctl stop $(unit_of "$s")"
        run_logged systemctl stop "$(unit_of "$s")" 9>&- || return 1
      fi
    done
    return 0
  fi
  for s in api worker; do
    if pid=$(service_pid "$s"); then
      log "stopping $s (pid $pid, SIGTERM, up to ${STOP_TIMEOUT}s to drain)"
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
      names+=("$s")
    else
      rm -f "$(pidfile_of "$s")" "$(pidfile_of "$s").start"
    fi
  done
  deadline=$((SECONDS + STOP_TIMEOUT))
  for i in "${!pids[@]}"; do
    while proc_alive "${pids[$i]}" && ((SECONDS < deadline)); do sleep 0.1; done
    if proc_alive "${pids[$i]}"; then
      log "${names[$i]} (pid ${pids[$i]}) still running after ${STOP_TIMEOUT}s: SIGKILL"
      kill -KILL "${pids[$i]}" 2>/dev/null || true
      for _ in $(seq 50); do proc_alive "${pids[$i]}" || break; sleep 0.1; done
    fi
    proc_alive "${pids[$i]}" && { log "could not stop pid ${pids[$i]}"; return 1; }
    wait "${pids[$i]}" 2>/dev/null || true
    rm -f "$(pidfile_of "${names[$i]}")" "$(pidfile_of "${names[$i]}").start"
    log "${names[$i]} stopped"
  done
  return 0
}

# Start the services of the release `current` points at.
start_services() {
  local s pid bin out
  if [[ $MANAGER == systemd ]]; then
    local units=()
    for s in "${SERVICES[@]}"; do units+=("$(unit_of "$s")"); done
    log "systemctl start ${units[*]}"
    run_logged systemctl start "${units[@]}" 9>&- || return 1
    return 0
  fi
  bin="$PREFIX/releases/$(basename "$(readlink "$PREFIX/current")")/devstream"
  local i
  for i in $(seq 50); do port_taken || break; sleep 0.1; done
  if port_taken; then
    log "port $HEALTH_PORT is still taken by another process: not starting"
    return 1
  fi
  for s in "${SERVICES[@]}"; do
    out="$PREFIX/log/$([[ $s == api ]] && echo serve || echo worker).out"
    local args=(serve)
    [[ $s == worker ]] && args=(worker)
    [[ $s == api && ${#SERVICES[@]} -gt 1 ]] && args=(serve --mode api)
    # setsid: own session, so the process outlives this script and an ssh
    # session; no inherited fds but the log (fd 9 is the deploy lock).
    (cd "$PREFIX" && exec setsid "${RUN_AS[@]}" env "${ENV_ARGS[@]}" "$bin" "${args[@]}" </dev/null >>"$out" 2>&1 9>&-) &
    pid=$!
    printf '%s\n' "$pid" >"$(pidfile_of "$s").tmp"
    mv -f "$(pidfile_of "$s").tmp" "$(pidfile_of "$s")"
    proc_start "$pid" >"$(pidfile_of "$s").start" || true
    log "started $s: ${bin#"$PREFIX"/} ${args[*]} (pid $pid, output in ${out#"$PREFIX"/})"
  done
  return 0
}

# Health of the running release, checked with binary $1, with retries; the
# processes must stay alive.
verify_services() {
  local bin=$1 i out rc
  for ((i = 1; i <= HEALTH_RETRIES; i++)); do
    if ! all_services_alive; then
      log "a process exited during verification"
      return 1
    fi
    rc=0
    out=$(ds "$bin" health --url "$HEALTH_URL" 2>&1) || rc=$?
    if ((rc == 0)); then
      log "attempt $i/$HEALTH_RETRIES: $HEALTH_URL answered: $out"
      if [[ $SETTLE != 0 && $SETTLE != 0.0 ]]; then
        sleep "$SETTLE"
        all_services_alive || { log "a process exited ${SETTLE}s after its healthy answer"; return 1; }
        rc=0
        out=$(ds "$bin" health --url "$HEALTH_URL" 2>&1) || rc=$?
        ((rc == 0)) || { log "unhealthy ${SETTLE}s later: $out"; return 1; }
      fi
      return 0
    fi
    if ((i == 1 || i == HEALTH_RETRIES || i % 5 == 0)); then
      log "attempt $i/$HEALTH_RETRIES: not healthy yet: ${out//$'\n'/ }"
    fi
    if ((i < HEALTH_RETRIES)); then sleep "$HEALTH_INTERVAL"; fi
  done
  log "no healthy answer from $HEALTH_URL after $HEALTH_RETRIES attempts"
  return 1
}

# First deploy: directories, etc/ENV.yml, etc/devstream.env.
prepare_layout() {
  local d
  for d in "$PREFIX" "$PREFIX/releases" "$PREFIX/etc" "$PREFIX/data" "$PREFIX/backups" "$PREFIX/log" "$PREFIX/run"; do
    mkdir -p "$d" 2>/dev/null || fail "cannot create $d"
  done
  [[ -w $PREFIX/run && -w $PREFIX/releases ]] || fail "$PREFIX is not writable"
  DEPLOY_LOG="$PREFIX/log/deploy.log"

  local shipped="$ENVIRONMENTS_DIR/$ENV_NAME.yml" conf="$PREFIX/etc/$ENV_NAME.yml"
  if [[ ! -e $conf ]]; then
    [[ -f $shipped ]] || fail "no $shipped to copy to $conf"
    cp "$shipped" "$conf.tmp.$$" && mv -f "$conf.tmp.$$" "$conf"
    log "created ${conf#"$PREFIX"/} from $shipped"
  elif [[ -f $shipped ]] && ! cmp -s "$shipped" "$conf"; then
    log "kept ${conf#"$PREFIX"/} (it differs from the shipped $ENV_NAME.yml; merge changes by hand)"
  fi

  ENV_FILE="$PREFIX/etc/devstream.env"
  if [[ ! -e $ENV_FILE ]]; then
    local secret
    secret=$(head -c 32 /dev/urandom | base64 | tr -d '\n')
    (
      umask 077
      cat >"$ENV_FILE.tmp.$$" <<EOF
# DevStream service environment: KEY=VALUE lines, no shell expansion (systemd
# EnvironmentFile syntax). Created by deploy.sh on the first deploy and never
# overwritten: edit it here, then deploy or restart. deploy.sh and the systemd
# units give every devstream process exactly this environment.
DEVSTREAM_ENV=$ENV_NAME
DEVSTREAM_CONFIG=$PREFIX/etc/$ENV_NAME.yml
DEVSTREAM_DATABASE_PATH=$PREFIX/data/devstream.db
DEVSTREAM_BACKUP_DIR=$PREFIX/backups
DEVSTREAM_LOG_FILE=$PREFIX/log/devstream.log
DEVSTREAM_HOST=127.0.0.1
DEVSTREAM_PORT=${PORT_OPT:-8000}
DEVSTREAM_SERVICE_MODE=${SERVICE_MODE_OPT:-all}
# Secrets live here, never in the YAML file. Generated on the first deploy
# (32 random bytes, base64); keep it stable.
DEVSTREAM_SECRET_KEY=$secret
# DEVSTREAM_EMBEDDING_API_KEY=
EOF
    )
    mv -f "$ENV_FILE.tmp.$$" "$ENV_FILE"
    log "created ${ENV_FILE#"$PREFIX"/} (port ${PORT_OPT:-8000}, service mode ${SERVICE_MODE_OPT:-all}, a generated secret key)"
  fi

  if [[ -n $SERVICE_USER ]]; then
    id -u "$SERVICE_USER" >/dev/null 2>&1 || fail "no user $SERVICE_USER (create it, or pass --service-user)"
    chown "$SERVICE_USER:" "$PREFIX/data" "$PREFIX/backups" "$PREFIX/log" "$PREFIX/run"
    chgrp "$(id -gn "$SERVICE_USER")" "$ENV_FILE" && chmod 0640 "$ENV_FILE"
    if [[ $(id -un) != "$SERVICE_USER" ]]; then
      RUN_AS=(setpriv --reuid="$SERVICE_USER" --regid="$(id -g "$SERVICE_USER")" --init-groups --)
    fi
  fi
}

detect_manager() {
  MANAGER=pidfile
  if [[ $SERVICE_MANAGER == systemd ]] ||
    { [[ $SERVICE_MANAGER == auto && -d /run/systemd/system ]] && command -v systemctl >/dev/null &&
      systemctl cat devstream-api.service >/dev/null 2>&1; }; then
    MANAGER=systemd
    command -v systemctl >/dev/null || fail "--service-manager systemd but no systemctl"
    if ! systemctl show -p ExecStart devstream-api.service 2>/dev/null | grep -qF "$PREFIX/current/devstream"; then
      log "warning: devstream-api.service does not run $PREFIX/current/devstream; edit the units for this prefix"
    fi
    if ((!SERVICE_USER_SET)) && id -u devstream >/dev/null 2>&1; then SERVICE_USER=devstream; fi
  fi
}

cleanup_local() {
  if [[ -n $STAGED ]]; then rm -f "$STAGED"; fi
  if [[ -n $SCRATCH ]]; then rm -rf "$SCRATCH"; fi
  if [[ -n $BUILD_DIR ]]; then rm -rf "$BUILD_DIR"; fi
  return 0
}

# Undo a failed deploy; returns non-zero when the old release is not back.
rollback_local() {
  STEP=rollback
  local ok=0 rc
  log "rolling back${OLD_ID:+ to release $OLD_ID}"
  if ((STARTED_NEW)) || { ((STOPPED_OLD)) && any_service_alive; }; then
    stop_services || { log "could not stop the new release's processes"; ok=1; }
  fi
  if ((FLIPPED)); then
    if [[ -n $ORIG_CURRENT ]]; then set_link "$ORIG_CURRENT" "$PREFIX/current"; else rm -f "$PREFIX/current"; fi
    if [[ -n $ORIG_PREVIOUS ]]; then set_link "$ORIG_PREVIOUS" "$PREFIX/previous"; else rm -f "$PREFIX/previous"; fi
    log "current -> ${ORIG_CURRENT:-(none)}, previous -> ${ORIG_PREVIOUS:-(none)}"
  fi
  if ((MIGRATE_RAN)) && [[ -n $BACKUP_PATH ]]; then
    # The new binary: installed, or still staged when the failure came first.
    local nbin=$NEW_BIN
    if [[ ! -x $nbin && -n $STAGED && -x $STAGED ]]; then nbin=$STAGED; fi
    local rbin=${OLD_BIN:-$nbin}
    log "restoring the pre-migration backup $BACKUP_PATH with ${rbin#"$PREFIX"/}"
    rc=0
    run_logged ds "$rbin" restore "$BACKUP_PATH" || rc=$?
    if ((rc != 0)) && [[ $rbin != "$nbin" && -x $nbin ]]; then
      log "the old binary refused; restoring with the new one"
      rc=0
      run_logged ds "$nbin" restore "$BACKUP_PATH" || rc=$?
    fi
    if ((rc != 0)); then
      log "RESTORE FAILED: the database may hold the new schema; the backup is $BACKUP_PATH"
      ok=1
    fi
  elif ((MIGRATE_RAN)); then
    log "no backup to restore (there was no database before this deploy)"
  fi
  if [[ -n $OLD_ID ]] && ((WAS_RUNNING)); then
    if ((STOPPED_OLD)) || ! all_services_alive; then
      start_services || ok=1
    fi
    if verify_services "$OLD_BIN"; then
      log "release $OLD_ID is serving again"
    else
      log "release $OLD_ID does not answer either"
      ok=1
    fi
  elif [[ -n $OLD_ID ]]; then
    log "release $OLD_ID was not running before this deploy; left stopped"
  else
    log "first deploy: no previous release to go back to"
  fi
  if ((INSTALLED_NEW)) && [[ $NEW_ID != "$OLD_ID" && releases/$NEW_ID != "$ORIG_PREVIOUS" ]]; then
    rm -rf "${PREFIX:?}/releases/$NEW_ID"
    log "removed the failed release $NEW_ID"
  fi
  return "$ok"
}

on_exit_local() {
  local rc=$?
  trap - EXIT
  set +e
  if ((rc != 0 && ROLLBACK_ARMED)); then
    ROLLBACK_ARMED=0
    if rollback_local; then
      STEP=rollback
      if [[ -n $OLD_ID ]]; then
        log "deploy of ${NEW_ID:-the new release} FAILED; rolled back: release $OLD_ID is current"
      else
        log "deploy of ${NEW_ID:-the new release} FAILED; it was the first deploy: nothing runs, current removed"
      fi
      rc=$EXIT_FAILED
    else
      STEP=rollback
      log "deploy of ${NEW_ID:-the new release} FAILED and the ROLLBACK FAILED: check $PREFIX (current -> $(link_target "$PREFIX/current")), backup ${BACKUP_PATH:-none}"
      rc=$EXIT_ROLLBACK_FAILED
    fi
  elif ((rc != 0)); then
    log "deploy aborted (exit $rc); nothing was changed"
  fi
  cleanup_local
  exit "$rc"
}

prune_releases() {
  local keep=$KEEP_RELEASES cur prev d n=0
  cur=$(basename "$(link_target "$PREFIX/current")" 2>/dev/null || true)
  prev=$(basename "$(link_target "$PREFIX/previous")" 2>/dev/null || true)
  # newest first by modification time
  while IFS= read -r d; do
    [[ -z $d ]] && continue
    d=$(basename "$d")
    [[ $d == "$cur" || $d == "$prev" ]] && continue
    n=$((n + 1))
    if ((n > keep)); then
      rm -rf "${PREFIX:?}/releases/$d"
      log "removed old release $d"
    fi
  done < <(find "$PREFIX/releases" -mindepth 1 -maxdepth 1 -type d ! -name '.*' -printf '%T@ %p\n' | sort -rn | cut -d' ' -f2-)
}

deploy_local() {
  trap on_exit_local EXIT
  STEP=precheck
  if mkdir -p "$PREFIX/log" 2>/dev/null && [[ -w $PREFIX/log ]]; then DEPLOY_LOG="$PREFIX/log/deploy.log"; fi
  # The env file is the one source of settings for what we run.
  local v
  for v in $(compgen -e); do
    if [[ $v == DEVSTREAM_* ]]; then
      log "ignoring $v from the caller's environment (etc/devstream.env is used)"
      unset "$v"
    fi
  done

  # ---------------------------------------------------------------- precheck
  log "deploying ${ARTIFACT:-?} (${REF:+ref $REF, }environment $ENV_NAME) into $PREFIX"
  [[ -f $ARTIFACT ]] || fail "artifact $ARTIFACT does not exist"
  prepare_layout
  log "target reachable: $PREFIX is writable"

  if command -v flock >/dev/null; then
    exec 9>>"$PREFIX/run/deploy.lock"
    flock -n 9 || fail "another deploy holds $PREFIX/run/deploy.lock"
  else
    log "warning: no flock; not guarding against a concurrent deploy"
  fi
  rm -f "$PREFIX"/releases/.incoming-* 2>/dev/null || true

  detect_manager
  log "service manager: $MANAGER${SERVICE_USER:+, service user $SERVICE_USER}"
  load_env_file
  local file_env
  file_env=$(env_value DEVSTREAM_ENV || true)
  [[ -z $file_env || $file_env == "$ENV_NAME" ]] ||
    fail "$ENV_FILE says DEVSTREAM_ENV=$file_env; this prefix is not for $ENV_NAME"
  if [[ -n $PORT_OPT && $(env_value DEVSTREAM_PORT || true) != "$PORT_OPT" ]]; then
    log "warning: --port $PORT_OPT ignored: ${ENV_FILE#"$PREFIX"/} says DEVSTREAM_PORT=$(env_value DEVSTREAM_PORT || echo unset)"
  fi

  ORIG_CURRENT=$(link_target "$PREFIX/current")
  ORIG_PREVIOUS=$(link_target "$PREFIX/previous")
  if [[ -n $ORIG_CURRENT ]]; then
    OLD_ID=$(basename "$ORIG_CURRENT")
    OLD_BIN="$PREFIX/releases/$OLD_ID/devstream"
    [[ -x $OLD_BIN ]] || { log "warning: current points at $ORIG_CURRENT, which has no binary"; OLD_ID="" OLD_BIN=""; }
  fi

  # Disk: the artifact, three copies of the database (backup, restore's
  # pre-restore copy, growth) and a margin.
  local db_guess="$PREFIX/data/devstream.db" art_kb db_kb=0 avail_kb need_kb
  DB_PATH=$(env_value DEVSTREAM_DATABASE_PATH || true)
  [[ -n $DB_PATH ]] || DB_PATH=$db_guess
  art_kb=$(($(stat -c %s "$ARTIFACT") / 1024 + 1))
  [[ -f $DB_PATH ]] && db_kb=$(($(stat -c %s "$DB_PATH") / 1024 + 1))
  [[ -f $DB_PATH-wal ]] && db_kb=$((db_kb + $(stat -c %s "$DB_PATH-wal") / 1024))
  avail_kb=$(df -Pk "$PREFIX" | awk 'NR==2 {print $4}')
  need_kb=$((art_kb + 3 * db_kb + MIN_FREE_MB * 1024))
  ((avail_kb >= need_kb)) ||
    fail "not enough disk in $PREFIX: $((avail_kb / 1024)) MB free, $((need_kb / 1024)) MB needed (artifact + 3 x database + --min-free-mb $MIN_FREE_MB)"
  log "disk: $((avail_kb / 1024)) MB free in $PREFIX, $((need_kb / 1024)) MB needed"

  # The artifact: copied (opaque, made executable) and run.
  STAGED="$PREFIX/releases/.incoming-$$"
  cp "$ARTIFACT" "$STAGED" || fail "cannot copy $ARTIFACT into $PREFIX/releases"
  chmod 0755 "$STAGED"
  local version sha rc=0
  version=$(cd / && "$STAGED" version 2>&1 | head -n1) || rc=$?
  if ((rc != 0)); then
    rc=0
    (cd / && "$STAGED" --help >/dev/null 2>&1) || rc=$?
    ((rc == 0)) || fail "the artifact does not run (\`devstream version\` and \`--help\` fail: $version)"
    version=unknown
  fi
  version=${version##* }
  version=${version//[^A-Za-z0-9._+-]/}
  sha=$(sha256_of "$STAGED")
  NEW_ID="${version:-unknown}-${sha:0:12}"
  NEW_BIN="$PREFIX/releases/$NEW_ID/devstream"
  log "artifact runs: version ${version:-unknown}, sha256 ${sha:0:12}…, release id $NEW_ID"
  log "current release: ${OLD_ID:-none}${ORIG_PREVIOUS:+, previous: $(basename "$ORIG_PREVIOUS")}"

  # Settings: config check with the new binary against a scratch database
  # that it migrated (pending migrations on the live one are the next step's job).
  SCRATCH=$(mktemp -d "$PREFIX/run/precheck.XXXXXX")
  [[ ${#RUN_AS[@]} -eq 0 ]] || chown "$SERVICE_USER:" "$SCRATCH"
  local out
  out=$(ds "$STAGED" migrate up --db "$SCRATCH/precheck.db" 2>&1) ||
    fail "the new binary cannot migrate a scratch database: $out"
  rc=0
  run_logged ds "$STAGED" config check --db "$SCRATCH/precheck.db" || rc=$?
  case $rc in
    0) ;;
    1) fail "config check: the environment would refuse to start (see above; secrets go in $ENV_FILE)" ;;
    *) fail "config check: invalid settings (exit $rc; see above; $ENV_FILE, $PREFIX/etc/$ENV_NAME.yml)" ;;
  esac
  local settings
  settings=$(ds "$STAGED" --json config show 2>/dev/null) || fail "config show failed"
  rm -rf "$SCRATCH"
  SCRATCH=""
  local host port mode pending
  host=$(json_setting server.host "$settings")
  port=$(json_setting server.port "$settings")
  mode=$(json_setting service.mode "$settings")
  DB_PATH=$(json_setting database.path "$settings")
  [[ -n $DB_PATH ]] || DB_PATH=$db_guess
  case $host in "" | 0.0.0.0 | localhost) host=127.0.0.1 ;; :: | ::0) host='[::1]' ;; *:*) host="[$host]" ;; esac
  [[ $port =~ ^[0-9]+$ && $port != 0 ]] || fail "server.port is '$port': a deploy needs a fixed port (DEVSTREAM_PORT in $ENV_FILE)"
  HEALTH_URL="http://$host:$port"
  HEALTH_HOST=${host//[\[\]]/}
  HEALTH_PORT=$port
  case $mode in
    all) SERVICES=(api) ;;
    api) SERVICES=(api worker) ;;
    *) fail "service.mode $mode: deploy.sh runs mode all, or api plus a worker" ;;
  esac
  # The units split the work themselves: serve --mode api plus the worker unit.
  [[ $MANAGER != systemd ]] || SERVICES=(api worker)
  pending=0
  if [[ -f $DB_PATH ]]; then
    pending=$(ds "$STAGED" --json migrate status 2>/dev/null | { grep -o '"state":"pending"' || true; } | wc -l) || pending="?"
  fi
  log "config check passed: database $DB_PATH ($([[ -f $DB_PATH ]] && echo "$pending migration(s) pending" || echo "not created yet")), health URL $HEALTH_URL, services: ${SERVICES[*]}"

  WAS_RUNNING=0
  if any_service_alive; then WAS_RUNNING=1; fi
  if ((!WAS_RUNNING)) && [[ $MANAGER == pidfile ]] && port_taken; then
    fail "port $port is taken by a process this prefix does not manage (no live pid in $PREFIX/run)"
  fi

  # Idempotence: the same artifact, current, running and healthy.
  if [[ $NEW_ID == "$OLD_ID" ]] && ((WAS_RUNNING)) && all_services_alive >/dev/null &&
    ds "$STAGED" health --url "$HEALTH_URL" >/dev/null 2>&1; then
    STEP="done"
    log "release $NEW_ID is already current and healthy at $HEALTH_URL: nothing to do"
    return 0
  fi
  [[ $NEW_ID == "$OLD_ID" ]] && log "release $NEW_ID is current but not running or not healthy: redeploying it"

  # ------------------------------------------------------------------ backup
  STEP=backup
  if [[ -f $DB_PATH ]]; then
    local bbin=${OLD_BIN:-$STAGED}
    out=$(ds "$bbin" --json backup create 2>&1) || { log "  | $out"; fail "backup create failed"; }
    local made
    made=$(json_field path "$out")
    [[ -n $made && -f $made ]] || fail "backup create printed no usable path: $out"
    local bdir stamp
    bdir=$(dirname "$made")
    stamp=$(date -u +%Y-%m-%dT%H-%M-%SZ)
    BACKUP_PATH="$bdir/devstream-predeploy-$stamp-$NEW_ID.db"
    mv -f "$made" "$BACKUP_PATH"
    run_logged ds "$bbin" backup verify "$BACKUP_PATH" || fail "the backup $BACKUP_PATH does not verify"
    log "database backed up with ${bbin#"$PREFIX"/} to $BACKUP_PATH (verified)"
  else
    log "no database at $DB_PATH yet (first deploy): nothing to back up"
  fi

  # ----------------------------------------------------------------- migrate
  STEP=migrate
  ROLLBACK_ARMED=1
  MIGRATE_RAN=1
  run_logged ds "$STAGED" migrate up || fail "migrate up failed"

  # ----------------------------------------------------------------- rollout
  STEP=rollout
  local rdir="$PREFIX/releases/$NEW_ID"
  if [[ -x $rdir/devstream && $(cat "$rdir/SHA256" 2>/dev/null) == "$sha" ]]; then
    rm -f "$STAGED"
    touch "$rdir"
    log "release $NEW_ID is already installed in ${rdir#"$PREFIX"/}"
  else
    mkdir -p "$rdir"
    mv -f "$STAGED" "$rdir/devstream"
    printf '%s\n' "$sha" >"$rdir/SHA256"
    INSTALLED_NEW=1
    log "installed ${rdir#"$PREFIX"/}/devstream"
  fi
  STAGED=""
  {
    printf 'release=%s\nversion=%s\nsha256=%s\nref=%s\ncommit=%s\nartifact=%s\ninstalled_at=%s\n' \
      "$NEW_ID" "$version" "$sha" "${REF:-}" "$SOURCE_COMMIT" "$ARTIFACT" "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  } >"$rdir/release.info"

  STOPPED_OLD=1
  stop_services || fail "could not stop the running release"
  if [[ $NEW_ID != "$OLD_ID" ]]; then
    FLIPPED=1
    if [[ -n $ORIG_CURRENT ]]; then set_link "$ORIG_CURRENT" "$PREFIX/previous"; fi
    set_link "releases/$NEW_ID" "$PREFIX/current"
    log "current -> releases/$NEW_ID${ORIG_CURRENT:+, previous -> $ORIG_CURRENT}"
  fi
  STARTED_NEW=1
  start_services || fail "could not start release $NEW_ID"

  # ------------------------------------------------------------------ verify
  STEP=verify
  verify_services "$NEW_BIN" || fail "release $NEW_ID is not healthy"
  ROLLBACK_ARMED=0

  STEP="done"
  prune_releases
  local prev_note=""
  [[ -z $OLD_ID || $OLD_ID == "$NEW_ID" ]] || prev_note=" (previous: $OLD_ID)"
  log "release $NEW_ID is live at $HEALTH_URL$prev_note${BACKUP_PATH:+; pre-deploy backup $BACKUP_PATH}"
  return 0
}

# ========================================================== compose target ===
# Untested here (no Docker engine in the test environment); see the header.

COMPOSE_CMD=()
OLD_TAG="" NEW_TAG="" API_REPLICAS=0
OLD_API_IDS=() NEW_API_IDS=()

dc() {
  local extra=()
  if [[ -n $COMPOSE_ENV_FILE ]]; then extra=(--env-file "$COMPOSE_ENV_FILE"); fi
  "${COMPOSE_CMD[@]}" -f "$COMPOSE_FILE" -p "$COMPOSE_PROJECT" "${extra[@]}" "$@"
}

# dc with DEVSTREAM_IMAGE_TAG=$1 (the compose file's image tag).
dct() {
  local tag=$1
  shift
  DEVSTREAM_IMAGE_TAG=$tag dc "$@"
}

api_ids() { dct "${1:-$NEW_TAG}" ps -q api 2>/dev/null | sed '/^$/d' | sort; }

container_healthy() {
  local id=$1 i out=""
  for ((i = 1; i <= HEALTH_RETRIES; i++)); do
    if out=$(docker exec "$id" devstream health --url "http://127.0.0.1:$CONTAINER_PORT" 2>&1); then
      log "container ${id:0:12}: $out"
      return 0
    fi
    if [[ $(docker inspect -f '{{.State.Running}}' "$id" 2>/dev/null) != true ]]; then
      log "container ${id:0:12} exited"
      return 1
    fi
    sleep "$HEALTH_INTERVAL"
  done
  log "container ${id:0:12} not healthy: $out"
  return 1
}

compose_verify() {
  local id i
  (($# > 0)) || { log "no api container to verify"; return 1; }
  for id in "$@"; do container_healthy "$id" || return 1; done
  if [[ -n $HEALTH_URL_OPT ]]; then
    for ((i = 1; i <= HEALTH_RETRIES; i++)); do
      if curl -fsS -o /dev/null "$HEALTH_URL_OPT"; then log "$HEALTH_URL_OPT answers"; return 0; fi
      sleep "$HEALTH_INTERVAL"
    done
    log "$HEALTH_URL_OPT does not answer"
    return 1
  fi
}

nginx_reload() {
  run_logged dct "$1" exec -T nginx nginx -s reload || log "warning: nginx reload failed (is nginx running?)"
}

rollback_compose() {
  STEP=rollback
  local ok=0 id ids=()
  log "rolling back to image tag ${OLD_TAG:-(none)}"
  for id in "${NEW_API_IDS[@]}"; do docker rm -f "$id" >/dev/null 2>&1 || true; done
  if [[ -n $BACKUP_PATH ]]; then
    run_logged dct "${OLD_TAG:-$NEW_TAG}" run --rm --no-deps -T --entrypoint devstream migrate restore "$BACKUP_PATH" ||
      { log "RESTORE FAILED; the backup is $BACKUP_PATH (in the data volume)"; ok=1; }
  fi
  if [[ -n $OLD_TAG ]]; then
    run_logged dct "$OLD_TAG" up -d --no-deps --scale "api=$API_REPLICAS" api worker || ok=1
    nginx_reload "$OLD_TAG"
    mapfile -t ids < <(api_ids "$OLD_TAG")
    compose_verify "${ids[@]}" || ok=1
  else
    log "first deploy: no previous image tag; stopping api and worker"
    run_logged dct "$NEW_TAG" stop api worker || ok=1
  fi
  return "$ok"
}

on_exit_compose() {
  local rc=$?
  trap - EXIT
  set +e
  if ((rc != 0 && ROLLBACK_ARMED)); then
    ROLLBACK_ARMED=0
    if rollback_compose; then
      log "deploy of $NEW_TAG FAILED; rolled back${OLD_TAG:+ to $OLD_TAG}"
      rc=$EXIT_FAILED
    else
      log "deploy of $NEW_TAG FAILED and the ROLLBACK FAILED; backup ${BACKUP_PATH:-none}"
      rc=$EXIT_ROLLBACK_FAILED
    fi
  elif ((rc != 0)); then
    log "deploy aborted (exit $rc); nothing was changed"
  fi
  exit "$rc"
}

compose_image() {
  local image="$IMAGE_REPO:$NEW_TAG"
  docker image inspect "$image" >/dev/null 2>&1 && return 0
  if [[ -n $ARTIFACT ]]; then
    run_logged docker load -i "$ARTIFACT" || fail "docker load -i $ARTIFACT failed"
  elif [[ -n $REF ]] && git -C "$REPO_ROOT" rev-parse --verify -q "$REF^{commit}" >/dev/null 2>&1; then
    # The compose file's images: the production stage and nginx, same tag.
    local target name
    for target in production nginx; do
      name=$image
      [[ $target == nginx ]] && name="$IMAGE_REPO-nginx:$NEW_TAG"
      log "building $name (stage $target) from $REF"
      git -C "$REPO_ROOT" archive --format=tar "$REF" |
        docker build -q --target "$target" -t "$name" -f deployment/docker/Dockerfile - >/dev/null ||
        fail "docker build of $name failed"
    done
  else
    run_logged dct "$NEW_TAG" pull migrate || fail "image $image is not here and cannot be pulled"
  fi
  docker image inspect "$image" >/dev/null 2>&1 || fail "no image $image"
}

deploy_compose() {
  trap on_exit_compose EXIT
  STEP=precheck
  if docker compose version >/dev/null 2>&1; then
    COMPOSE_CMD=(docker compose)
  elif command -v docker-compose >/dev/null; then
    COMPOSE_CMD=(docker-compose)
  else
    fail "neither \`docker compose\` nor docker-compose is installed"
  fi
  docker info >/dev/null 2>&1 || fail "the Docker engine is not reachable"
  log "target reachable: the Docker engine answers (${COMPOSE_CMD[*]})"
  [[ -f $COMPOSE_FILE ]] || fail "no compose file $COMPOSE_FILE"
  NEW_TAG=${IMAGE_TAG:-$REF}
  [[ -n $NEW_TAG ]] || fail "--target compose needs REF or --image-tag (the image tag to deploy)"
  compose_image
  run_logged dct "$NEW_TAG" config -q || fail "the compose file does not validate (DEVSTREAM_SECRET_KEY set?)"

  mapfile -t OLD_API_IDS < <(api_ids "$NEW_TAG")
  if ((${#OLD_API_IDS[@]} > 0)); then
    API_REPLICAS=${#OLD_API_IDS[@]}
    OLD_TAG=$(docker inspect -f '{{.Config.Image}}' "${OLD_API_IDS[0]}")
    OLD_TAG=${OLD_TAG##*:}
  fi
  log "running: ${#OLD_API_IDS[@]} api container(s)${OLD_TAG:+ on tag $OLD_TAG}; deploying $IMAGE_REPO:$NEW_TAG"

  if [[ $OLD_TAG == "$NEW_TAG" ]] && compose_verify "${OLD_API_IDS[@]}" >/dev/null; then
    STEP="done"
    log "image tag $NEW_TAG is already running and healthy: nothing to do"
    return 0
  fi

  # Disk, as the running server sees its volume (/health's disk component).
  if ((${#OLD_API_IDS[@]} > 0)); then
    local hj free
    hj=$(docker exec "${OLD_API_IDS[0]}" devstream --json health --url "http://127.0.0.1:$CONTAINER_PORT" 2>/dev/null || true)
    free=$(sed -n 's/.*"free_bytes":\([0-9]*\).*/\1/p' <<<"$hj")
    if [[ -n $free ]]; then
      ((free / 1048576 >= MIN_FREE_MB)) || fail "only $((free / 1048576)) MB free on the data volume"
      log "disk: $((free / 1048576)) MB free on the data volume"
    fi
  fi

  # Production refuses to start with pending migrations: that one refusal is
  # what the migrate step fixes, every other one aborts.
  local out rc=0 l
  out=$(dct "$NEW_TAG" run --rm --no-deps -T --entrypoint devstream migrate config check 2>&1) || rc=$?
  while IFS= read -r l; do if [[ -n $l ]]; then log "  | $l"; fi; done <<<"$out"
  if ((rc == 1)) && ! grep 'error:' <<<"$out" | grep -vq 'migration(s) pending'; then
    log "config check: only pending migrations, which the migrate step applies"
  elif ((rc != 0)); then
    fail "config check failed (exit $rc)"
  fi

  STEP=backup
  if ((${#OLD_API_IDS[@]} > 0)); then
    out=$(docker exec "${OLD_API_IDS[0]}" devstream --json backup create 2>&1) || fail "backup create failed: $out"
    BACKUP_PATH=$(json_field path "$out")
    [[ -n $BACKUP_PATH ]] || fail "backup create printed no path: $out"
    run_logged docker exec "${OLD_API_IDS[0]}" devstream backup verify "$BACKUP_PATH" || fail "the backup does not verify"
    log "backed up with the running (old) image to $BACKUP_PATH (in the data volume)"
  else
    rc=0
    out=$(dct "$NEW_TAG" run --rm --no-deps -T --entrypoint devstream migrate --json backup create 2>&1) || rc=$?
    if ((rc == 0)); then
      BACKUP_PATH=$(json_field path "$out")
      log "no api running; backed up with the new image to $BACKUP_PATH"
    elif grep -q 'no database at' <<<"$out"; then
      log "no database yet (first deploy): nothing to back up"
    else
      fail "backup create failed: $out"
    fi
  fi

  STEP=migrate
  ROLLBACK_ARMED=1
  run_logged dct "$NEW_TAG" run --rm --no-deps -T migrate || fail "migrate failed"

  STEP=rollout
  if ((${#OLD_API_IDS[@]} == 0)); then
    run_logged dct "$NEW_TAG" up -d || fail "compose up failed"
  else
    # Rolling: new replicas next to the old ones (--no-recreate keeps the old
    # containers; the new ones get the new image), healthy before the old go.
    run_logged dct "$NEW_TAG" up -d --no-deps --no-recreate --scale "api=$((2 * API_REPLICAS))" api ||
      fail "could not start new api containers"
    mapfile -t NEW_API_IDS < <(comm -13 <(printf '%s\n' "${OLD_API_IDS[@]}" | sort) <(api_ids "$NEW_TAG"))
    ((${#NEW_API_IDS[@]} > 0)) || fail "no new api containers appeared"
    compose_verify "${NEW_API_IDS[@]}" || fail "the new api containers are not healthy"
    nginx_reload "$NEW_TAG"
    log "stopping the old api containers (they drain for up to ${STOP_TIMEOUT}s)"
    run_logged docker stop -t "$STOP_TIMEOUT" "${OLD_API_IDS[@]}" || true
    run_logged docker rm "${OLD_API_IDS[@]}" || true
    nginx_reload "$NEW_TAG"
    run_logged dct "$NEW_TAG" up -d --no-deps --no-recreate --scale "api=$API_REPLICAS" api ||
      fail "scaling api back to $API_REPLICAS failed"
    run_logged dct "$NEW_TAG" up -d --no-deps worker || fail "could not recreate the worker"
  fi

  STEP=verify
  mapfile -t NEW_API_IDS < <(api_ids "$NEW_TAG")
  compose_verify "${NEW_API_IDS[@]}" || fail "the stack is not healthy"
  ROLLBACK_ARMED=0
  STEP="done"
  log "image tag $NEW_TAG is live (${#NEW_API_IDS[@]} api replica(s))${OLD_TAG:+, previous $OLD_TAG}${BACKUP_PATH:+; pre-deploy backup $BACKUP_PATH}"
}

# ================================================================= remote ===

SSH_OPTS=()
REMOTE_TMP=""
REMOTE_RAN=0
BUILD_DIR=""
SOURCE_COMMIT=""   # the commit built from REF (empty with --artifact)

ssh_setup() {
  SSH_OPTS=(-o BatchMode=yes -o ConnectTimeout=10)
  [[ -n $SSH_KEY ]] && SSH_OPTS+=(-i "$SSH_KEY" -o IdentitiesOnly=yes)
  local extra=()
  # DEPLOY_SSH_OPTS is split on whitespace on purpose.
  read -r -a extra <<<"${DEPLOY_SSH_OPTS:-}"
  SSH_OPTS+=("${extra[@]}")
}

# The remote command is one string the remote shell runs: callers quote with shq.
# shellcheck disable=SC2029
rssh() {
  local p=()
  [[ -n $SSH_PORT ]] && p=(-p "$SSH_PORT")
  ssh "${p[@]}" "${SSH_OPTS[@]}" "$HOST" "$@"
}

rscp() {
  local p=()
  [[ -n $SSH_PORT ]] && p=(-P "$SSH_PORT")
  scp -q "${p[@]}" "${SSH_OPTS[@]}" "$@"
}

cleanup_remote() {
  local rc=$?
  trap - EXIT
  set +e
  if [[ -n $REMOTE_TMP ]]; then
    rssh "rm -rf $(shq "$REMOTE_TMP")" </dev/null >/dev/null 2>&1 || log "warning: could not remove $REMOTE_TMP on $HOST"
  fi
  if [[ -n $BUILD_DIR ]]; then rm -rf "$BUILD_DIR"; fi
  if ((rc != 0 && !REMOTE_RAN)); then log "deploy aborted (exit $rc); nothing was changed on $HOST"; fi
  exit "$rc"
}

deploy_remote() {
  trap cleanup_remote EXIT
  ssh_setup
  STEP=precheck
  if [[ -n $ARTIFACT ]]; then
    [[ -f $ARTIFACT ]] || fail "artifact $ARTIFACT does not exist"
  elif [[ $TARGET == local ]]; then
    build_ref
  fi
  [[ $TARGET == compose || -f $ENVIRONMENTS_DIR/$ENV_NAME.yml ]] || fail "no $ENVIRONMENTS_DIR/$ENV_NAME.yml"
  local err
  err=$(rssh true </dev/null 2>&1) || fail "host $HOST is not reachable over ssh${SSH_PORT:+ (port $SSH_PORT)}: $err"
  log "target reachable: ssh $HOST${SSH_PORT:+ -p $SSH_PORT}"
  # shellcheck disable=SC2016 # expanded by the remote shell
  REMOTE_TMP=$(rssh 'mktemp -d "${TMPDIR:-/tmp}/devstream-deploy.XXXXXX"' </dev/null) || fail "mktemp on $HOST failed"
  [[ $REMOTE_TMP == /* ]] || fail "mktemp on $HOST printed '$REMOTE_TMP'"
  rssh "mkdir -p $(shq "$REMOTE_TMP/deployment/scripts") $(shq "$REMOTE_TMP/deployment/environments")" </dev/null ||
    fail "cannot create directories in $REMOTE_TMP on $HOST"

  STEP=copy
  local rargs=("$ENV_NAME")
  [[ -n $REF ]] && rargs+=("$REF")
  rargs+=(--target "$TARGET")
  rscp "$SCRIPT_PATH" "$HOST:$REMOTE_TMP/deployment/scripts/deploy.sh" || fail "scp of deploy.sh failed"
  if [[ -f $ENVIRONMENTS_DIR/$ENV_NAME.yml ]]; then
    rscp "$ENVIRONMENTS_DIR/$ENV_NAME.yml" "$HOST:$REMOTE_TMP/deployment/environments/$ENV_NAME.yml" ||
      fail "scp of $ENV_NAME.yml failed"
  fi
  if [[ $TARGET == compose ]]; then
    rscp -r "$DEPLOY_DIR/docker" "$HOST:$REMOTE_TMP/deployment/" || fail "scp of deployment/docker failed"
    rargs+=(--compose-file "$REMOTE_TMP/deployment/docker/$(basename "$COMPOSE_FILE")")
  fi
  if [[ -n $ARTIFACT ]]; then
    log "copying $ARTIFACT ($(($(stat -c %s "$ARTIFACT") / 1048576)) MB) to $HOST:$REMOTE_TMP"
    rscp "$ARTIFACT" "$HOST:$REMOTE_TMP/artifact" || fail "scp of the artifact failed"
    rargs+=(--artifact "$REMOTE_TMP/artifact")
  fi
  log "copied deploy.sh, $ENV_NAME.yml${ARTIFACT:+ and the artifact} to $HOST:$REMOTE_TMP"

  STEP=remote
  rargs+=("${FORWARD[@]}" --health-retries "$HEALTH_RETRIES" --health-interval "$HEALTH_INTERVAL"
    --stop-timeout "$STOP_TIMEOUT")
  local cmd a
  cmd="bash $(shq "$REMOTE_TMP/deployment/scripts/deploy.sh")"
  for a in "${rargs[@]}"; do cmd+=" $(shq "$a")"; done
  log "running on $HOST: deploy.sh ${rargs[*]}"
  local rc=0
  REMOTE_RAN=1
  rssh "$cmd" </dev/null || rc=$?
  STEP=remote
  case $rc in
    0) log "remote deploy on $HOST succeeded" ;;
    255) log "ssh to $HOST failed (exit 255)"; rc=$EXIT_FAILED ;;
    *) log "remote deploy on $HOST failed (exit $rc)" ;;
  esac
  return "$rc"
}

# Build REF (default HEAD) of this repository: git archive | tar, CMake Release.
build_ref() {
  STEP=build
  local ref=${REF:-HEAD}
  if ! command -v git >/dev/null || ! command -v cmake >/dev/null; then
    fail "building needs git and cmake (or pass --artifact)"
  fi
  git -C "$REPO_ROOT" rev-parse --verify -q "$ref^{commit}" >/dev/null || fail "no commit $ref in $REPO_ROOT"
  BUILD_DIR=$(mktemp -d "${TMPDIR:-/tmp}/devstream-build.XXXXXX")
  SOURCE_COMMIT=$(git -C "$REPO_ROOT" rev-parse "$ref^{commit}")
  log "building $ref (${SOURCE_COMMIT:0:12}) in $BUILD_DIR"
  mkdir -p "$BUILD_DIR/src"
  git -C "$REPO_ROOT" archive --format=tar "$ref" | tar -x -C "$BUILD_DIR/src" || fail "git archive $ref failed"
  local gen=()
  command -v ninja >/dev/null && gen=(-G Ninja)
  run_logged cmake -S "$BUILD_DIR/src" -B "$BUILD_DIR/build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release ||
    fail "cmake configure failed"
  # Streamed: a build takes minutes.
  local l
  cmake --build "$BUILD_DIR/build" --target devstream -j "${DEPLOY_BUILD_JOBS:-2}" 2>&1 |
    while IFS= read -r l; do log "  | $l"; done || fail "build failed"
  [[ -x $BUILD_DIR/build/devstream ]] || fail "the build produced no $BUILD_DIR/build/devstream"
  ARTIFACT="$BUILD_DIR/build/devstream"
  log "built $ARTIFACT"
}

main() {
  # A reader that went away (the ssh session of --host dropped) must not kill
  # the deploy half-way: keep going, logging to log/deploy.log only. A handled
  # (not ignored) SIGPIPE is reset to the default in the commands we run.
  trap 'STDOUT_OK=0' PIPE
  # Interrupted (Ctrl-C, SIGTERM): exit through the EXIT trap, which rolls
  # back a deploy that got past its backup.
  trap 'log "interrupted by SIGINT"; exit 130' INT
  trap 'log "interrupted by SIGTERM"; exit 143' TERM
  trap 'log "interrupted by SIGHUP"; exit 129' HUP
  parse_args "$@"
  if [[ -n $HOST ]]; then
    deploy_remote
    return $?
  fi
  if [[ $TARGET == compose ]]; then
    deploy_compose
    return 0
  fi
  if [[ -z $ARTIFACT ]]; then
    trap 'if [[ -n $BUILD_DIR ]]; then rm -rf "$BUILD_DIR"; fi' EXIT
    build_ref
  fi
  deploy_local
}

main "$@"
