#!/usr/bin/env bash
# compose_test.sh REPO
#
# Validates deployment/docker/docker-compose.prod.yml with Debian's
# docker-compose 1.29 (`config` needs no Docker engine) and checks the rendered
# stack's structure:
#   - `config` fails, naming DEVSTREAM_SECRET_KEY, when the secret is not set,
#     and succeeds with it (also with .env.example as the env file);
#   - .env.example holds no secret and documents every variable the file uses;
#   - services migrate, api, worker, nginx; no container_name anywhere; only
#     nginx publishes ports;
#   - migrate: `migrate up`, restart "no", built from the Dockerfile's
#     production target; api and worker wait for it to complete successfully;
#   - api: deploy.replicas (DEVSTREAM_API_REPLICAS), mode api, auth on, a
#     healthcheck via `devstream health`, trusted proxy = nginx's fixed address
#     (inside the subnet, outside the dynamic range);
#   - worker: task_engine, a healthcheck that does not ask HTTP;
#   - nginx: waits for a healthy api, healthcheck, TLS mounted read-only;
#   - restart policies and resource limits and reservations on api, worker
#     and nginx; volumes data and logs; every build target exists in the
#     Dockerfile.
# The checks run in an empty environment with an empty env file, so neither
# the caller's variables nor a local deployment/docker/.env change them.
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 REPO" >&2
  exit 2
fi
repo=$(cd "$1" && pwd)
compose_file=$repo/deployment/docker/docker-compose.prod.yml
dockerfile=$repo/deployment/docker/Dockerfile
env_example=$repo/deployment/docker/.env.example

command -v docker-compose >/dev/null 2>&1 ||
  { echo "FAIL: docker-compose not found: run make test-deps (deps/debian-test-packages.txt)"; exit 1; }
python3 -c 'import yaml' 2>/dev/null ||
  { echo "FAIL: python3 with yaml not found (python3-yaml comes with docker-compose)"; exit 1; }
for f in "$compose_file" "$dockerfile" "$env_example"; do
  [ -f "$f" ] || { echo "FAIL: $f is missing"; exit 1; }
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
: >"$tmp/empty.env"
secret=0123456789abcdef0123456789abcdef01234567   # 40 bytes, a dummy
fail=0
passed=0
ok() { echo "ok: $*"; passed=$((passed + 1)); }
problem() { echo "FAIL: $*"; fail=$((fail + 1)); }

# compose ENV_FILE [VAR=VALUE...] -- ARGS: docker-compose in an empty environment.
compose() {
  local env_file=$1; shift
  local vars=()
  while [ "$1" != "--" ]; do vars+=("$1"); shift; done
  shift
  env -i PATH="$PATH" HOME="$tmp" LANG=C.UTF-8 "${vars[@]}" \
    docker-compose --env-file "$env_file" -f "$compose_file" "$@"
}

# --- The secret is required.
if compose "$tmp/empty.env" -- config >"$tmp/nosecret.out" 2>&1; then
  problem "docker-compose config succeeded without DEVSTREAM_SECRET_KEY"
elif grep -q 'DEVSTREAM_SECRET_KEY' "$tmp/nosecret.out"; then
  ok "config without DEVSTREAM_SECRET_KEY fails: $(grep -o 'set DEVSTREAM_SECRET_KEY[^}]*' "$tmp/nosecret.out" | head -1)"
else
  problem "config without DEVSTREAM_SECRET_KEY failed without naming it: $(tail -c 300 "$tmp/nosecret.out")"
fi

# --- Valid with the secret (deploy keys may draw warnings: fine).
if compose "$tmp/empty.env" DEVSTREAM_SECRET_KEY="$secret" -- config >"$tmp/config.yml" 2>"$tmp/config.err"; then
  ok "docker-compose config exits 0 ($(docker-compose version --short 2>/dev/null || echo '?'))"
else
  problem "docker-compose config failed: $(cat "$tmp/config.err")"
  echo "compose: $passed passed, $fail failed"
  exit 1
fi
compose "$tmp/empty.env" DEVSTREAM_SECRET_KEY="$secret" DEVSTREAM_API_REPLICAS=5 -- config >"$tmp/config5.yml" 2>/dev/null ||
  problem "config with DEVSTREAM_API_REPLICAS=5 failed"

# --- .env.example: usable as is once the secret is set, and never a secret.
if compose "$env_example" -- config >/dev/null 2>&1; then
  problem ".env.example alone passes config: its DEVSTREAM_SECRET_KEY must be left empty"
else
  ok ".env.example alone fails config (empty DEVSTREAM_SECRET_KEY)"
fi
if compose "$env_example" DEVSTREAM_SECRET_KEY="$secret" -- config >"$tmp/config-example.yml" 2>"$tmp/example.err"; then
  ok "config with .env.example and the secret exits 0"
else
  problem "config with .env.example failed: $(cat "$tmp/example.err")"
fi
before=$fail
while IFS='=' read -r name value; do
  name=${name#\#}   # commented-out lines count too
  case "$name" in
    *SECRET*|*PASSWORD*|*API_KEY*|*TOKEN*)
      if [ -n "$value" ]; then problem ".env.example sets $name: secrets never go in the example"; fi ;;
  esac
done <"$env_example"

# --- Variables: every one the compose file reads is documented in .env.example.
for v in $(grep -oE '\$\{[A-Z0-9_]+' "$compose_file" | cut -c3- | sort -u); do
  grep -qE "^#?$v=" "$env_example" || problem ".env.example does not document $v, which the compose file reads"
done
# Value-less environment entries are passed through from the environment or .env.
for v in $(sed -nE 's/^ +([A-Z][A-Z0-9_]+):[[:space:]]*(#.*)?$/\1/p' "$compose_file" | sort -u); do
  grep -qE "^#?$v=" "$env_example" || problem ".env.example does not document $v, which the compose file passes through"
done
for v in $(grep -oE '^#?[A-Z0-9_]+=' "$env_example" | tr -d '#=' | sort -u); do
  grep -qE "(\\\$\\{${v}[:}?-]|^ +${v}:\s*$)" "$compose_file" || problem ".env.example documents $v, which the compose file does not use"
done
[ "$fail" -ne "$before" ] || ok ".env.example documents exactly the variables the compose file reads, and sets no secret"
if grep -nE 'DEVSTREAM_SECRET_KEY:\s*[^$[:space:]]' "$compose_file" | grep -v '\${DEVSTREAM_SECRET_KEY:?' ; then
  problem "the compose file holds a literal DEVSTREAM_SECRET_KEY"
fi

# --- Structure of the rendered configuration.
py_status=0
python3 - "$tmp/config.yml" "$tmp/config5.yml" "$tmp/config-example.yml" "$dockerfile" "$secret" >"$tmp/struct.out" 2>&1 <<'PY' || py_status=$?
import ipaddress, re, sys, yaml

cfg_path, cfg5_path, cfg_example_path, dockerfile, secret = sys.argv[1:6]
cfg = yaml.safe_load(open(cfg_path))
def check(cond, what):
    print(("ok: " if cond else "FAIL: ") + what, flush=True)
    return bool(cond)

services = cfg.get("services", {})
for name in ("migrate", "api", "worker", "nginx"):
    check(name in services, f"service {name} exists")
s = {n: services.get(n, {}) for n in ("migrate", "api", "worker", "nginx")}

def env(svc):
    e = svc.get("environment") or {}
    if isinstance(e, list):
        e = dict(x.split("=", 1) if "=" in x else (x, None) for x in e)
    return e

def cmd(svc):
    c = svc.get("command")
    return c.split() if isinstance(c, str) else (c or [])

def depends(svc, on, condition):
    d = svc.get("depends_on") or {}
    return isinstance(d, dict) and (d.get(on) or {}).get("condition") == condition

def health_test(svc):
    t = (svc.get("healthcheck") or {}).get("test")
    return " ".join(t) if isinstance(t, list) else (t or "")

for name, svc in services.items():
    check("container_name" not in svc, f"{name} has no container_name")
    if name != "nginx":
        check(not svc.get("ports"), f"{name} publishes no ports (only nginx does)")

# Targets built from the Dockerfile exist there.
stages = {m.lower() for m in re.findall(r"(?im)^FROM\s+\S+\s+AS\s+(\S+)\s*$", open(dockerfile).read())}
for name, svc in services.items():
    b = svc.get("build")
    if b:
        check(str(b.get("dockerfile", "")).endswith("deployment/docker/Dockerfile"), f"{name} builds from deployment/docker/Dockerfile")
        check(b.get("target") in stages, f"{name}'s build target {b.get('target')!r} is a stage of the Dockerfile ({', '.join(sorted(stages))})")

# One image for migrate, api, worker.
images = {s[n].get("image") for n in ("migrate", "api", "worker")}
check(len(images) == 1 and None not in images, f"migrate, api and worker run one image ({images})")
check((s["migrate"].get("build") or {}).get("target") == "production", "migrate builds the production target")
check((s["nginx"].get("build") or {}).get("target") == "nginx", "nginx builds the nginx target")

# migrate: one-shot.
check(cmd(s["migrate"]) == ["migrate", "up"], f"migrate runs `migrate up` ({cmd(s['migrate'])})")
check(str(s["migrate"].get("restart")) == "no", "migrate has restart \"no\"")
check("data:/data" in " ".join(map(str, s["migrate"].get("volumes", []))), "migrate mounts data:/data")

for name in ("migrate", "api", "worker"):
    e = env(s[name])
    check(e.get("DEVSTREAM_ENV") == "production", f"{name}: DEVSTREAM_ENV=production")
    check(e.get("DEVSTREAM_SECRET_KEY") == secret, f"{name}: DEVSTREAM_SECRET_KEY comes from the environment")
    check(e.get("DEVSTREAM_DATABASE_PATH") == "/data/devstream.db", f"{name}: database /data/devstream.db")
    check(str(e.get("DEVSTREAM_AUTH_ENABLED")).lower() == "true", f"{name}: DEVSTREAM_AUTH_ENABLED=true")

# api
api, worker, nginx = s["api"], s["worker"], s["nginx"]
check(cmd(api) == ["serve"], "api runs `serve`")
check(env(api).get("DEVSTREAM_SERVICE_MODE") == "api", "api: DEVSTREAM_SERVICE_MODE=api")
check(env(api).get("DEVSTREAM_HOST") == "0.0.0.0", "api listens on 0.0.0.0 (allowed: auth is on)")
check((api.get("deploy") or {}).get("replicas") == 2, f"api: deploy.replicas defaults to 2 ({(api.get('deploy') or {}).get('replicas')})")
cfg5 = yaml.safe_load(open(cfg5_path))
check(((cfg5["services"]["api"].get("deploy") or {}).get("replicas")) == 5, "api: DEVSTREAM_API_REPLICAS=5 gives 5 replicas")
check(depends(api, "migrate", "service_completed_successfully"), "api depends on migrate: service_completed_successfully")
check("8000" in [str(x) for x in api.get("expose", [])], "api exposes 8000 to the network")
check(re.search(r"\bdevstream health\b.*http://127\.0\.0\.1:8000", health_test(api)), f"api healthcheck runs devstream health ({health_test(api)})")
for name, path in (("data", "/data"), ("logs", "/var/log/devstream")):
    check(f"{name}:{path}" in " ".join(map(str, api.get("volumes", []))), f"api mounts {name}:{path}")

# worker
check(cmd(worker) == ["worker"] or (cmd(worker) == ["serve"] and env(worker).get("DEVSTREAM_SERVICE_MODE") == "task_engine"),
      f"worker runs the task engine ({cmd(worker)})")
check(env(worker).get("DEVSTREAM_SERVICE_MODE") == "task_engine", "worker: DEVSTREAM_SERVICE_MODE=task_engine")
check(depends(worker, "migrate", "service_completed_successfully"), "worker depends on migrate: service_completed_successfully")
wt = health_test(worker)
check(wt and "health --url" not in wt and "NONE" not in wt, f"worker has its own healthcheck, not the HTTP one ({wt})")
check("data:/data" in " ".join(map(str, worker.get("volumes", []))), "worker mounts data:/data")

# nginx
check(depends(nginx, "api", "service_healthy"), "nginx depends on api: service_healthy")
targets = sorted(int(p.get("target")) for p in nginx.get("ports", []) if isinstance(p, dict))
check(targets == [80, 443], f"nginx publishes 80 and 443 ({targets})")
check(health_test(nginx), "nginx has a healthcheck")
check(any(str(v).endswith(":/etc/nginx/tls:ro") for v in nginx.get("volumes", [])), "nginx mounts the TLS directory read-only at /etc/nginx/tls")
ne = env(nginx)
check(ne.get("NGINX_UPSTREAMS") == "api:8000", "nginx proxies to api:8000")
check(ne.get("NGINX_TLS_CERT") == "/etc/nginx/tls/fullchain.pem" and ne.get("NGINX_TLS_KEY") == "/etc/nginx/tls/privkey.pem",
      "nginx's certificate and key are in the mounted TLS directory")

# Trusted proxy = nginx's fixed address, inside the subnet, outside the dynamic range.
nets = nginx.get("networks") or {}
addr = None
if isinstance(nets, dict):
    for n in nets.values():
        if n and n.get("ipv4_address"):
            addr = n["ipv4_address"]
check(addr, "nginx has a fixed ipv4_address")
check(env(api).get("DEVSTREAM_TRUSTED_PROXIES") == addr, f"api trusts exactly nginx's address ({env(api).get('DEVSTREAM_TRUSTED_PROXIES')} vs {addr})")
ipam = [c for net in (cfg.get("networks") or {}).values() for c in ((net or {}).get("ipam") or {}).get("config", [])]
if check(ipam and addr, "the stack's network has a fixed subnet"):
    subnet = ipaddress.ip_network(ipam[0]["subnet"])
    check(ipaddress.ip_address(addr) in subnet, f"nginx's {addr} is in {subnet}")
    rng = ipam[0].get("ip_range")
    check(rng and ipaddress.ip_address(addr) not in ipaddress.ip_network(rng),
          f"nginx's {addr} is outside the dynamic range {rng}, so no other container takes it")

# Restart policies, resources.
for name in ("api", "worker", "nginx"):
    svc = s[name]
    check(svc.get("restart") == "unless-stopped", f"{name}: restart unless-stopped")
    d = svc.get("deploy") or {}
    check((d.get("restart_policy") or {}).get("condition"), f"{name}: deploy.restart_policy")
    res = d.get("resources") or {}
    for kind in ("limits", "reservations"):
        r = res.get(kind) or {}
        check(r.get("cpus") and r.get("memory"), f"{name}: {kind} with cpus and memory ({r})")
    check(svc.get("healthcheck"), f"{name}: healthcheck")

for v in ("data", "logs"):
    check(v in (cfg.get("volumes") or {}), f"volume {v} is declared")

cfg_example = yaml.safe_load(open(cfg_example_path))
check(((cfg_example["services"]["api"].get("deploy") or {}).get("replicas")) == 2, ".env.example's DEVSTREAM_API_REPLICAS applies")
PY
while IFS= read -r line; do
  case "$line" in
    ok:*) ok "${line#ok: }" ;;
    FAIL:*) problem "${line#FAIL: }" ;;
    *) problem "structure check: $line" ;;
  esac
done <"$tmp/struct.out"
[ "$py_status" -eq 0 ] || problem "the structure checks stopped with status $py_status"

echo "compose: $passed passed, $fail failed"
[ "$fail" -eq 0 ]
