#!/bin/sh
# nginx configuration test: usage `sh nginx_config_test.sh NGINX_BINARY [OPENSSL_BINARY]`.
#
# Renders the shipped template deployment/nginx/nginx.conf with the shipped
# deployment/nginx/render.sh (test certificates made by openssl here, the
# runtime and log directories in a temporary directory) and checks that
# `nginx -t` accepts it; then checks what render.sh writes (upstream, allow
# and listen lines, the redirect's port) and what it refuses (a placeholder
# it has no value for, values that are not what they claim to be).
# Exits 0 when everything passes, 1 with the failures listed otherwise.
# shellcheck disable=SC2016 # nginx variables ($host, ...) are meant literally
set -u

here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
root=$(CDPATH='' cd -- "$here/../.." && pwd)
render=$root/deployment/nginx/render.sh
template=$root/deployment/nginx/nginx.conf

nginx=${1:-}
openssl=${2:-openssl}
fail() {
    printf 'nginx_config_test: %s\n' "$*" >&2
    exit 1
}
[ -n "$nginx" ] || fail "usage: sh nginx_config_test.sh NGINX_BINARY [OPENSSL_BINARY]"
[ -x "$nginx" ] || fail "nginx not found at \"$nginx\": install it (the nginx package, see deps/debian-test-packages.txt)"
command -v "$openssl" >/dev/null 2>&1 || fail "openssl not found (\"$openssl\"): install the openssl package"
[ -f "$template" ] || fail "no template at $template"
[ -f "$render" ] || fail "no render script at $render"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/devstream-nginx-conf.XXXXXX") || fail "mktemp failed"
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM

failures=0
checks=0
check() { # DESCRIPTION COMMAND...
    what=$1
    shift
    checks=$((checks + 1))
    if ! "$@"; then
        failures=$((failures + 1))
        printf 'FAIL %s\n' "$what"
    fi
}
contains() { # FILE FIXED-STRING
    grep -qF -- "$2" "$1"
}
lacks() { # FILE FIXED-STRING
    ! grep -qF -- "$2" "$1"
}
count_is() { # FILE FIXED-STRING N
    [ "$(grep -cF -- "$2" "$1")" -eq "$3" ]
}

# ---- test certificate (self-signed, for 127.0.0.1 and localhost)
"$openssl" req -x509 -newkey rsa:2048 -nodes -sha256 -days 2 \
    -keyout "$tmp/privkey.pem" -out "$tmp/fullchain.pem" -subj "/CN=localhost" \
    -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" >"$tmp/openssl.log" 2>&1 ||
    fail "openssl could not make a test certificate: $(cat "$tmp/openssl.log")"

user=$(id -un)
# Values for a render in the temporary directory; the rest keep render.sh's
# defaults (ports 80/443, rate 20r/s burst 40, 1m, metrics for loopback).
# `nginx -t` resolves upstream host names, so the upstreams are addresses.
render_env() {
    env NGINX_TLS_CERT="$tmp/fullchain.pem" NGINX_TLS_KEY="$tmp/privkey.pem" \
        NGINX_RUNTIME_DIR="$tmp/run" NGINX_LOG_DIR="$tmp/logs" NGINX_USER="$user" "$@"
}

# ---- 1. the shipped template, rendered, passes nginx -t
render_env NGINX_UPSTREAMS="127.0.0.1:8000 127.0.0.1:8001" \
    sh "$render" "$tmp/nginx.conf" 2>"$tmp/render.err"
rc=$?
check "render.sh should render the template (exit $rc): $(cat "$tmp/render.err")" [ "$rc" -eq 0 ]
[ -s "$tmp/nginx.conf" ] || fail "render.sh wrote no $tmp/nginx.conf; stderr: $(cat "$tmp/render.err")"
check "render.sh should print nothing on stderr: $(cat "$tmp/render.err")" [ ! -s "$tmp/render.err" ]

"$nginx" -t -p "$tmp/" -c "$tmp/nginx.conf" -e "$tmp/logs/startup.log" >"$tmp/nginx-t.out" 2>&1
rc=$?
check "nginx -t should accept the rendered configuration (exit $rc):
$(cat "$tmp/nginx-t.out")" [ "$rc" -eq 0 ]
check "nginx -t should report success: $(cat "$tmp/nginx-t.out")" contains "$tmp/nginx-t.out" "test is successful"
# (as non-root, nginx warns that it ignores the "user" directive: expected)
grep -F "[warn]" "$tmp/nginx-t.out" | grep -vF 'the "user" directive' >"$tmp/nginx-t.warn"
check "nginx -t should warn about nothing: $(cat "$tmp/nginx-t.warn")" [ ! -s "$tmp/nginx-t.warn" ]

conf=$tmp/nginx.conf
check "no placeholder is left" lacks "$conf" "@@"
check "an upstream server line per NGINX_UPSTREAMS entry, in both upstreams" \
    count_is "$conf" "server 127.0.0.1:8001 max_fails=1 fail_timeout=5s;" 2
check "limit_req answers 429" contains "$conf" "limit_req_status 429;"
check "the limit_req zone uses the default rate" contains "$conf" "rate=20r/s;"
check "limit_req uses the default burst" contains "$conf" "burst=40 nodelay;"
check "the body limit defaults to 1m" contains "$conf" "client_max_body_size 1m;"
check "/metrics allows loopback by default" contains "$conf" "allow ::1;"
check "listens on port 443 with TLS by default" contains "$conf" "listen 443 ssl default_server;"
check "listens on port 80 by default" contains "$conf" "listen 80 default_server;"
check "the redirect to port 443 leaves the port out" contains "$conf" 'return 301 https://$host$request_uri;'
check "TLS 1.2 and 1.3 only" contains "$conf" "ssl_protocols TLSv1.2 TLSv1.3;"
check "server_tokens off" contains "$conf" "server_tokens off;"
check "the pid file is in the runtime directory" contains "$conf" "pid $tmp/run/nginx.pid;"
for d in client_body_temp proxy_temp fastcgi_temp uwsgi_temp scgi_temp; do
    check "render.sh should create $tmp/run/$d" [ -d "$tmp/run/$d" ]
done

# ---- 2. the cipher list is one OpenSSL accepts, every suite of it
ciphers=$(sed -n 's/^ *ssl_ciphers \([^;]*\);.*/\1/p' "$conf")
check "the configuration has an ssl_ciphers list" [ -n "$ciphers" ]
for c in $(printf '%s' "$ciphers" | tr ':' ' '); do
    check "OpenSSL should know the cipher $c" sh -c '"$1" ciphers "$2" >/dev/null 2>&1' sh "$openssl" "$c"
done

# ---- 3. other values land where they belong
render_env NGINX_UPSTREAMS="127.0.0.1:9001" NGINX_HTTP_PORT=18080 NGINX_HTTPS_PORT=18443 \
    NGINX_PUBLIC_HTTPS_PORT=8443 NGINX_LISTEN_ADDRESSES="127.0.0.1 [::1]" \
    NGINX_METRICS_ALLOW="10.0.0.0/8" NGINX_RATE=5r/s NGINX_BURST=7 NGINX_BODY_LIMIT=2m \
    NGINX_SERVER_NAME="devstream.example.com www.example.com" \
    sh "$render" >"$tmp/custom.conf" 2>"$tmp/render.err"
rc=$?
check "render.sh to stdout should succeed (exit $rc): $(cat "$tmp/render.err")" [ "$rc" -eq 0 ]
c=$tmp/custom.conf
check "the redirect names NGINX_PUBLIC_HTTPS_PORT" contains "$c" 'return 301 https://$host:8443$request_uri;'
check "a listen line per address (HTTP)" contains "$c" "listen [::1]:18080 default_server;"
check "a listen line per address (HTTPS)" contains "$c" "listen 127.0.0.1:18443 ssl default_server;"
check "the metrics allow list" contains "$c" "allow 10.0.0.0/8;"
check "no loopback in a metrics allow list without it" lacks "$c" "allow 127.0.0.1;"
check "the rate" contains "$c" "rate=5r/s;"
check "the burst" contains "$c" "burst=7 nodelay;"
check "the body limit" contains "$c" "client_max_body_size 2m;"
check "the server names" contains "$c" "server_name devstream.example.com www.example.com;"
"$nginx" -t -p "$tmp/" -c "$c" -e "$tmp/logs/startup.log" >"$tmp/nginx-t.out" 2>&1
rc=$?
check "nginx -t should accept the custom rendering (exit $rc):
$(cat "$tmp/nginx-t.out")" [ "$rc" -eq 0 ]

# ---- 4. an empty value takes the default; "none" closes /metrics
render_env NGINX_UPSTREAMS="127.0.0.1:9001" NGINX_METRICS_ALLOW= NGINX_RATE= NGINX_BURST= NGINX_BODY_LIMIT= \
    sh "$render" >"$tmp/empty.conf" 2>"$tmp/render.err"
rc=$?
check "render.sh with empty values should succeed (exit $rc): $(cat "$tmp/render.err")" [ "$rc" -eq 0 ]
check "an empty NGINX_METRICS_ALLOW is the default" contains "$tmp/empty.conf" "allow 127.0.0.1;"
check "an empty NGINX_RATE is the default" contains "$tmp/empty.conf" "rate=20r/s;"
check "an empty NGINX_BURST is the default" contains "$tmp/empty.conf" "burst=40 nodelay;"
render_env NGINX_UPSTREAMS="127.0.0.1:9001" NGINX_METRICS_ALLOW=none sh "$render" >"$tmp/none.conf" 2>"$tmp/render.err"
check "NGINX_METRICS_ALLOW=none allows nobody" lacks "$tmp/none.conf" "allow "
check "NGINX_METRICS_ALLOW=none still denies all" contains "$tmp/none.conf" "deny all;"
"$nginx" -t -p "$tmp/" -c "$tmp/none.conf" -e "$tmp/logs/startup.log" >"$tmp/nginx-t.out" 2>&1
rc=$?
check "nginx -t should accept NGINX_METRICS_ALLOW=none (exit $rc): $(cat "$tmp/nginx-t.out")" [ "$rc" -eq 0 ]

# ---- 5. refusals: non-zero exit, a message on stderr, nothing written
refuses() { # DESCRIPTION EXPECTED-STDERR-TEXT ENV-ASSIGNMENTS...
    what=$1
    expect=$2
    shift 2
    rm -f "$tmp/refused.conf"
    render_env "$@" sh "$render" "$tmp/refused.conf" >"$tmp/refused.out" 2>"$tmp/refused.err"
    rc=$?
    check "$what: render.sh should fail, got exit $rc" [ "$rc" -ne 0 ]
    check "$what: stderr should mention \"$expect\", got: $(cat "$tmp/refused.err")" contains "$tmp/refused.err" "$expect"
    check "$what: nothing should be written" [ ! -e "$tmp/refused.conf" ]
}
sed 's/^events {/# @@UNKNOWN_SETTING@@\nevents {/' "$template" >"$tmp/template-extra.conf"
check "the copied template has the extra placeholder" contains "$tmp/template-extra.conf" "@@UNKNOWN_SETTING@@"
refuses "a placeholder without a value" "@@UNKNOWN_SETTING@@" NGINX_TEMPLATE="$tmp/template-extra.conf"
refuses "a port that is no number" "NGINX_HTTPS_PORT" NGINX_HTTPS_PORT=https
refuses "a port out of range" "NGINX_HTTP_PORT" NGINX_HTTP_PORT=70000
refuses "nginx syntax in an upstream" "NGINX_UPSTREAMS" "NGINX_UPSTREAMS=api:8000;include"
refuses "an upstream list that is empty" "NGINX_UPSTREAMS" "NGINX_UPSTREAMS= "
refuses "a rate without unit" "NGINX_RATE" NGINX_RATE=20
refuses "a metrics entry that is no address" "NGINX_METRICS_ALLOW" "NGINX_METRICS_ALLOW=127.0.0.1 everyone"
refuses "a relative certificate path" "NGINX_TLS_CERT" NGINX_TLS_CERT=tls/cert.pem
refuses "a newline in a value" "NGINX_BURST" "NGINX_BURST=5
deny all"
# Rendering a template over itself would leave no template for the next start.
cp "$template" "$tmp/self.conf"
render_env NGINX_TEMPLATE="$tmp/self.conf" sh "$render" "$tmp/self.conf" >/dev/null 2>"$tmp/refused.err"
rc=$?
check "the template as output: render.sh should fail, got exit $rc" [ "$rc" -ne 0 ]
check "the template as output: stderr should say so, got: $(cat "$tmp/refused.err")" contains "$tmp/refused.err" "template itself"
check "the template as output: the template should be unchanged" cmp -s "$template" "$tmp/self.conf"

if [ "$failures" -ne 0 ]; then
    printf 'nginx_config_test: %d of %d checks failed\n' "$failures" "$checks"
    exit 1
fi
printf 'nginx_config_test: all %d checks passed\n' "$checks"
