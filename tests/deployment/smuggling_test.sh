#!/usr/bin/env bash
# Request smuggling through nginx (issue #9): usage
#   bash smuggling_test.sh DEVSTREAM_BINARY NGINX_BINARY [REPO_ROOT] [OPENSSL_BINARY]
#
# Starts the real devstream binary (mode api, nginx trusted as proxy) and
# nginx in front of it with TLS on free loopback ports, its configuration
# rendered from the shipped template by deployment/nginx/render.sh (as
# stack_e2e does; upstream keepalive on, so a desync would poison the pooled
# connection). Then sends ambiguous framings, through nginx over TLS and
# directly to the app: CL.TE and TE.CL, Content-Length plus Transfer-Encoding,
# duplicate and list-valued Content-Length, obfuscated Transfer-Encoding
# ("chunked, identity", leading space, tab, vertical tab, "xchunked", space
# before the colon, a second Transfer-Encoding line, obs-fold). Each hides a
# second request that would create a plan with a unique title. Asserts:
#   - each attack gets exactly one response, a refusal: 4xx (or, from nginx,
#     501 for a transfer coding it does not implement), never an answer to
#     the hidden request; a control case (well-framed chunked request plus a
#     pipelined one) shows the hidden request's plan would be seen;
#   - the hidden request never reaches the app: no plan with its title exists
#     (read from the database file), and the app logged no request for it;
#   - after each attack a normal request through nginx still gets its own
#     answer (the upstream connection was not poisoned), and the app is alive.
# Exits 0 when all pass, 1 with the failures listed.
set -uo pipefail

bin=${1:-}
nginx=${2:-}
here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
root=${3:-$(CDPATH='' cd -- "$here/../.." && pwd)}
openssl=${4:-openssl}
render=$root/deployment/nginx/render.sh

die() {
    echo "smuggling_test: $*" >&2
    exit 1
}
[[ -n $bin && -x $bin ]] || die "usage: bash smuggling_test.sh DEVSTREAM_BINARY NGINX_BINARY [REPO_ROOT] [OPENSSL_BINARY] (no binary at '$bin')"
[[ -n $nginx && -x $nginx ]] || die "nginx not found at '$nginx': install the nginx package (deps/debian-test-packages.txt)"
command -v "$openssl" >/dev/null 2>&1 || die "openssl not found ('$openssl'): install the openssl package"
command -v python3 >/dev/null 2>&1 || die "python3 not found"
[[ -f $render ]] || die "no $render"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/devstream-smuggling.XXXXXX") || die "mktemp failed"
app_pid=""
nginx_pid=""
cleanup() {
    for pid in $nginx_pid $app_pid; do
        kill -TERM "$pid" 2>/dev/null
    done
    for pid in $nginx_pid $app_pid; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# ---- TLS certificate for 127.0.0.1 / localhost
"$openssl" req -x509 -newkey rsa:2048 -nodes -sha256 -days 2 \
    -keyout "$tmp/privkey.pem" -out "$tmp/fullchain.pem" -subj "/CN=localhost" \
    -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" >"$tmp/openssl.log" 2>&1 ||
    die "openssl could not make a certificate: $(cat "$tmp/openssl.log")"

# ---- the app
db=$tmp/devstream.db
export DEVSTREAM_SERVICE_MODE=api DEVSTREAM_TRUSTED_PROXIES=127.0.0.1 DEVSTREAM_THREADS=2 \
    DEVSTREAM_LOG_LEVEL=info DEVSTREAM_LOG_FORMAT=json DEVSTREAM_EMBEDDING_PROVIDER=hash
"$bin" migrate up --db "$db" >"$tmp/migrate.log" 2>&1 || die "migrate failed: $(cat "$tmp/migrate.log")"
"$bin" serve --host 127.0.0.1 --port 0 --db "$db" >"$tmp/app.out" 2>"$tmp/app.log" &
app_pid=$!
app_port=""
for _ in $(seq 300); do
    app_port=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/app.out" 2>/dev/null | head -n 1)
    [[ -n $app_port ]] && break
    kill -0 "$app_pid" 2>/dev/null || die "the app exited: $(tail -n 20 "$tmp/app.log")"
    sleep 0.1
done
[[ -n $app_port ]] || die "the app did not start: $(tail -n 20 "$tmp/app.log")"

# ---- nginx from the shipped template
https_port=$(free_port)
http_port=$(free_port)
while [[ $http_port == "$https_port" ]]; do http_port=$(free_port); done
mkdir -p "$tmp/nginx/logs"
env NGINX_UPSTREAMS="127.0.0.1:$app_port" NGINX_SERVER_NAME="localhost 127.0.0.1" \
    NGINX_HTTP_PORT="$http_port" NGINX_HTTPS_PORT="$https_port" NGINX_LISTEN_ADDRESSES=127.0.0.1 \
    NGINX_TLS_CERT="$tmp/fullchain.pem" NGINX_TLS_KEY="$tmp/privkey.pem" \
    NGINX_RATE=1000r/s NGINX_BURST=1000 NGINX_USER="$(id -un)" \
    NGINX_RUNTIME_DIR="$tmp/nginx" NGINX_LOG_DIR="$tmp/nginx/logs" \
    sh "$render" "$tmp/nginx.conf" 2>"$tmp/render.err" || die "render.sh failed: $(cat "$tmp/render.err")"
"$nginx" -p "$tmp/nginx/" -c "$tmp/nginx.conf" -e "$tmp/nginx/logs/startup.log" -g "daemon off;" \
    >"$tmp/nginx.out" 2>&1 &
nginx_pid=$!

# ---- the attacks (python3: raw bytes over TLS and plain sockets)
APP_PORT=$app_port HTTPS_PORT=$https_port DB=$db APP_LOG=$tmp/app.log \
    python3 - <<'PY'
import os, socket, sqlite3, ssl, sys, time

APP = int(os.environ["APP_PORT"])
NGX = int(os.environ["HTTPS_PORT"])
DB = os.environ["DB"]
failures = []
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE


def connect(via):
    s = socket.create_connection(("127.0.0.1", NGX if via == "nginx" else APP), timeout=5)
    return ctx.wrap_socket(s, server_hostname="localhost") if via == "nginx" else s


def exchange(via, data, wait=1.5):
    """Sends data, returns everything received until close or `wait` seconds of silence."""
    s = connect(via)
    s.sendall(data)
    s.settimeout(wait)
    out = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            out += d
    except (socket.timeout, ssl.SSLError, ConnectionResetError):
        pass
    s.close()
    return out


def responses(raw):
    """Splits a byte stream into (status, body) responses (Content-Length or chunked)."""
    out = []
    while raw.startswith(b"HTTP/1."):
        end = raw.find(b"\r\n\r\n")
        if end < 0:
            out.append((int(raw[9:12]), b""))
            break
        head = raw[:end].decode("latin-1").lower()
        rest = raw[end + 4:]
        status = int(raw[9:12])
        body = b""
        if "transfer-encoding: chunked" in head:
            while True:
                line_end = rest.find(b"\r\n")
                if line_end < 0:
                    rest = b""
                    break
                size = int(rest[:line_end].split(b";")[0] or b"0", 16)
                body += rest[line_end + 2:line_end + 2 + size]
                rest = rest[line_end + 2 + size + 2:]
                if size == 0:
                    break
        else:
            length = 0
            for line in head.split("\r\n"):
                if line.startswith("content-length:"):
                    length = int(line.split(":", 1)[1])
            body, rest = rest[:length], rest[length:]
        out.append((status, body))
        raw = rest
    return out


def canary_exists(title):
    con = sqlite3.connect("file:%s?mode=ro" % DB, uri=True, timeout=5)
    try:
        return con.execute("SELECT count(*) FROM intervention_plans WHERE title = ?", (title,)).fetchone()[0] > 0
    finally:
        con.close()


def hidden(title, project="smuggling"):
    body = ('{"title":"%s","project":"%s"}' % (title, project)).encode()
    return (b"POST /api/v1/plans HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


OUTER = b"POST /api/v1/search HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
TE_VARIANTS = [
    (b"chunked", b"Transfer-Encoding: chunked\r\n"),
    (b"chunked, identity", b"Transfer-Encoding: chunked, identity\r\n"),
    (b"identity, chunked", b"Transfer-Encoding: identity, chunked\r\n"),
    (b"leading space", b"Transfer-Encoding:  chunked\r\n"),
    (b"tab", b"Transfer-Encoding:\tchunked\r\n"),
    (b"vertical tab", b"Transfer-Encoding:\x0bchunked\r\n"),
    (b"xchunked", b"Transfer-Encoding: xchunked\r\n"),
    (b"space before colon", b"Transfer-Encoding : chunked\r\n"),
    (b"two TE lines", b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n"),
    (b"obs-fold", b"Transfer-Encoding: identity\r\n chunked\r\n"),
    (b"upper case", b"TRANSFER-ENCODING: CHUNKED\r\n"),
    (b"quoted", b'Transfer-Encoding: "chunked"\r\n'),
]


def attacks(n):
    """(name, bytes, canary title) for case numbers starting at n."""
    out = []
    for name, te in TE_VARIANTS:
        # CL.TE: a Content-Length front sends everything; a chunked back end ends at 0.
        title = "smuggled-%d" % n; n += 1
        chunked = b"0\r\n\r\n" + hidden(title)
        out.append(("CL.TE " + name.decode(), OUTER + b"Content-Length: " + str(len(chunked)).encode() + b"\r\n" + te + b"\r\n" + chunked, title))
        # TE.CL: a chunked front sends one chunk; a Content-Length back end reads 4 bytes.
        title = "smuggled-%d" % n; n += 1
        inner = hidden(title)
        body = ("%x" % len(inner)).encode() + b"\r\n" + inner + b"\r\n0\r\n\r\n"
        out.append(("TE.CL " + name.decode(), OUTER + b"Content-Length: 4\r\n" + te + b"\r\n" + body, title))
        # TE only (no Content-Length), the hidden request as the body: not a
        # chunk, so 400 when read as chunked; served if the TE is ignored.
        title = "smuggled-%d" % n; n += 1
        out.append(("TE only " + name.decode(), OUTER + te + b"\r\n" + hidden(title), title))
    for name, cl in [("duplicate CL", b"Content-Length: 2\r\nContent-Length: %d\r\n"),
                     ("CL list", b"Content-Length: 2, %d\r\n"),
                     ("CL plus", b"Content-Length: +%d\r\n"),
                     ("CL space before colon", b"Content-Length : %d\r\n"),
                     ("CL obs-fold", b"Content-Length: 2\r\n %d\r\n")]:
        title = "smuggled-%d" % n; n += 1
        body = b"{}" + hidden(title)
        out.append((name, OUTER + (cl % len(body)) + b"\r\n" + body, title))
    return out


# nginx up?
deadline = time.time() + 30
while True:
    try:
        r = responses(exchange("nginx", b"GET /health/live HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", 3))
        if r and r[0][0] == 200:
            break
    except OSError:
        pass
    if time.time() > deadline:
        print("nginx did not answer /health/live", file=sys.stderr)
        sys.exit(1)
    time.sleep(0.1)

cases = 0
n = 0
# Control: a well-framed chunked request followed by a pipelined one is two
# requests; the second's plan is created and its answer reaches the client.
# (Shows the canary would be seen if an attack let it through.)
for via in ("nginx", "app"):
    title = "pipelined-%s" % via
    data = OUTER + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n" + hidden(title, "control")
    got = responses(exchange(via, data))
    if len(got) != 2 or not any(title.encode() in b for _, b in got) or not canary_exists(title):
        failures.append("control via %s: a pipelined request should be served and answered: %s" % (via, [s for s, _ in got]))
    print("%-40s %s" % ("control (pipelined) via " + via, [s for s, _ in got]))
for via in ("nginx", "app"):
    for name, data, title in attacks(n):
        n += 1
        cases += 1
        where = "%s via %s" % (name, via)
        got = responses(exchange(via, data))
        statuses = [s for s, _ in got]
        hidden_answered = any(title.encode() in b for _, b in got)
        if hidden_answered:
            failures.append("%s: the hidden request was served: %s" % (where, statuses))
        # Refused: 4xx, or nginx's 501 for a transfer coding it does not
        # implement (RFC 9112 6.1); the app itself never answers 5xx.
        refused = [s for s in statuses if 400 <= s < 500 or (s == 501 and via == "nginx")]
        if not got or len(got) > 1 or len(refused) != 1:
            failures.append("%s: want one refusal (4xx%s), got %s" % (where, " or 501" if via == "nginx" else "", statuses or "a closed connection"))
        # The hidden request may reach nothing later either (a poisoned pooled
        # upstream connection would hand it to the next client).
        follow = responses(exchange("nginx", b"GET /health/live HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"))
        if not follow or follow[0][0] != 200 or b'"alive"' not in follow[0][1]:
            failures.append("%s: the next request through nginx got %s" % (where, [(s, b[:80]) for s, b in follow]))
        if canary_exists(title):
            failures.append("%s: the hidden request reached the app (plan %s exists)" % (where, title))
        print("%-40s %s" % (where, statuses or "closed"))

time.sleep(0.5)
with open(os.environ["APP_LOG"], encoding="utf-8", errors="replace") as f:
    log = f.read()
if "smuggled-" in log:
    failures.append("the app logged a hidden request's title")
con = sqlite3.connect("file:%s?mode=ro" % DB, uri=True)
left = con.execute("SELECT title FROM intervention_plans WHERE title LIKE 'smuggled-%'").fetchall()
con.close()
if left:
    failures.append("hidden requests created plans: %s" % left)
for f in failures:
    print("FAIL " + f, file=sys.stderr)
print("smuggling_test: %d attacks (%d via nginx, %d direct), %d failures" % (cases, cases // 2, cases // 2, len(failures)))
sys.exit(1 if failures else 0)
PY
rc=$?
kill -0 "$app_pid" 2>/dev/null || die "the app died: $(tail -n 20 "$tmp/app.log")"
if grep -q "AddressSanitizer\|runtime error:" "$tmp/app.log"; then
    die "the app reported a sanitizer error: $(grep -m 5 "AddressSanitizer\|runtime error:" "$tmp/app.log")"
fi
[[ $rc -eq 0 ]] || die "failed (nginx error.log: $(tail -n 5 "$tmp/nginx/logs/error.log" 2>/dev/null))"
echo "smuggling_test: passed"
