#!/bin/sh
# Renders the nginx.conf template (next to this script) from environment
# variables, to the path given as $1 (written atomically), else to stdout.
#
#   NGINX_UPSTREAMS="api1:8000 api2:8000" deployment/nginx/render.sh /etc/nginx/nginx.conf
#   nginx -t -c /etc/nginx/nginx.conf
#
# Variables (default in parentheses; the defaults suit the compose stack):
#   NGINX_UPSTREAMS          API processes, space-separated host:port ("api:8000");
#                            one `server HOST:PORT max_fails=1 fail_timeout=5s;` each
#   NGINX_SERVER_NAME        server_name, space-separated names allowed ("_")
#   NGINX_HTTP_PORT          plain HTTP port, redirects everything to HTTPS (80)
#   NGINX_HTTPS_PORT         HTTPS port (443)
#   NGINX_PUBLIC_HTTPS_PORT  HTTPS port clients reach, used in the redirect's
#                            Location; 443 is left out (NGINX_HTTPS_PORT)
#   NGINX_LISTEN_ADDRESSES   addresses to listen on, space-separated, e.g.
#                            "127.0.0.1" or "0.0.0.0 [::]" ("": every IPv4 address)
#   NGINX_TLS_CERT           certificate chain (/etc/nginx/tls/fullchain.pem)
#   NGINX_TLS_KEY            private key (/etc/nginx/tls/privkey.pem)
#   NGINX_METRICS_ALLOW      addresses/CIDRs allowed to GET /metrics, space-separated
#                            ("127.0.0.1 ::1"); everyone else gets 403; "none":
#                            nobody (through nginx)
#   NGINX_RATE               limit_req rate per client address ("20r/s")
#   NGINX_BURST              limit_req burst, served without delay (40)
#   NGINX_BODY_LIMIT         client_max_body_size ("1m", the app's 1 MiB limit)
#   NGINX_USER               user of the worker processes ("www-data"; "nginx" in
#                            the official nginx image)
#   NGINX_RUNTIME_DIR        pid file and *_temp_path directories
#                            ("/var/lib/nginx/devstream"); created when possible
#   NGINX_LOG_DIR            access.log (JSON lines) and error.log ("/var/log/nginx")
#   NGINX_TEMPLATE           the template (nginx.conf next to this script)
#   NGINX_OUTPUT             where to write when $1 is not given (stdout)
#
# A variable that is unset or empty takes its default.
# Exits 1 with a message on stderr when a value is invalid or when a @@NAME@@
# placeholder is left unrendered; nothing is written then.
set -eu

me=$(basename -- "$0")
die() {
    printf '%s: error: %s\n' "$me" "$*" >&2
    exit 1
}
warn() {
    printf '%s: warning: %s\n' "$me" "$*" >&2
}

here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
template=${NGINX_TEMPLATE:-$here/nginx.conf}
output=${1:-${NGINX_OUTPUT:-}}
[ "$output" = "-" ] && output=

upstreams=${NGINX_UPSTREAMS:-api:8000}
server_name=${NGINX_SERVER_NAME:-_}
http_port=${NGINX_HTTP_PORT:-80}
https_port=${NGINX_HTTPS_PORT:-443}
public_https_port=${NGINX_PUBLIC_HTTPS_PORT:-$https_port}
listen_addresses=${NGINX_LISTEN_ADDRESSES:-}
tls_cert=${NGINX_TLS_CERT:-/etc/nginx/tls/fullchain.pem}
tls_key=${NGINX_TLS_KEY:-/etc/nginx/tls/privkey.pem}
metrics_allow=${NGINX_METRICS_ALLOW:-127.0.0.1 ::1}
rate=${NGINX_RATE:-20r/s}
burst=${NGINX_BURST:-40}
body_limit=${NGINX_BODY_LIMIT:-1m}
user=${NGINX_USER:-www-data}
runtime_dir=${NGINX_RUNTIME_DIR:-/var/lib/nginx/devstream}
log_dir=${NGINX_LOG_DIR:-/var/log/nginx}

# ------------------------------------------------------------ validation

nl='
'
# matches VALUE ERE: the whole value (one line) matches the extended regular expression
matches() {
    case $1 in *"$nl"*) return 1 ;; esac
    printf '%s\n' "$1" | grep -Eq "^($2)\$"
}
check_port() { # NAME VALUE
    if ! matches "$2" '[0-9]{1,5}' || [ "$2" -lt 1 ] || [ "$2" -gt 65535 ]; then
        die "$1=\"$2\" is not a port number (1-65535)"
    fi
}
check_path() { # NAME VALUE
    matches "$2" '/[A-Za-z0-9._/+@=,:-]*' ||
        die "$1=\"$2\" must be an absolute path without spaces or nginx syntax characters"
}

check_port NGINX_HTTP_PORT "$http_port"
check_port NGINX_HTTPS_PORT "$https_port"
check_port NGINX_PUBLIC_HTTPS_PORT "$public_https_port"
[ "$http_port" != "$https_port" ] || die "NGINX_HTTP_PORT and NGINX_HTTPS_PORT are both $http_port"
check_path NGINX_TLS_CERT "$tls_cert"
check_path NGINX_TLS_KEY "$tls_key"
check_path NGINX_RUNTIME_DIR "$runtime_dir"
check_path NGINX_LOG_DIR "$log_dir"
matches "$rate" '[1-9][0-9]*r/[sm]' || die "NGINX_RATE=\"$rate\" must look like 20r/s or 600r/m"
matches "$burst" '[0-9]{1,9}' || die "NGINX_BURST=\"$burst\" is not a number"
matches "$body_limit" '[0-9]{1,12}[kKmMgG]?' || die "NGINX_BODY_LIMIT=\"$body_limit\" must look like 1m, 512k or 1048576"
matches "$user" '[A-Za-z0-9._-]+( [A-Za-z0-9._-]+)?' || die "NGINX_USER=\"$user\" must be a user name, optionally followed by a group"
matches "$server_name" '[A-Za-z0-9._*-]+( +[A-Za-z0-9._*-]+)*' ||
    die "NGINX_SERVER_NAME=\"$server_name\" is not a list of server names"

# The upstream servers, one line each (the template indents them).
upstream_lines=
for u in $upstreams; do
    matches "$u" '(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):[0-9]{1,5}|unix:/[A-Za-z0-9._/-]+' ||
        die "NGINX_UPSTREAMS entry \"$u\" is not host:port (or unix:/path)"
    line="server $u max_fails=1 fail_timeout=5s;"
    upstream_lines=${upstream_lines:+$upstream_lines$nl}$line
done
[ -n "$upstream_lines" ] || die "NGINX_UPSTREAMS is empty: name at least one host:port"

metrics_lines=
[ "$metrics_allow" = none ] && metrics_allow=
for a in $metrics_allow; do
    matches "$a" '[0-9A-Fa-f.:]+(/[0-9]{1,3})?|all|unix:' ||
        die "NGINX_METRICS_ALLOW entry \"$a\" is not an address or CIDR"
    metrics_lines=${metrics_lines:+$metrics_lines$nl}"allow $a;"
done
[ -n "$metrics_lines" ] || metrics_lines="# NGINX_METRICS_ALLOW=none: /metrics is refused to everyone"

listen_http=
listen_https=
if [ -z "$listen_addresses" ]; then
    listen_http="listen $http_port default_server;"
    listen_https="listen $https_port ssl default_server;"
else
    for a in $listen_addresses; do
        matches "$a" '[0-9.]+|\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+' ||
            die "NGINX_LISTEN_ADDRESSES entry \"$a\" is not an address (IPv6 in brackets)"
        listen_http=${listen_http:+$listen_http$nl}"listen $a:$http_port default_server;"
        listen_https=${listen_https:+$listen_https$nl}"listen $a:$https_port ssl default_server;"
    done
fi

https_port_suffix=
[ "$public_https_port" = 443 ] || https_port_suffix=":$public_https_port"

# ------------------------------------------------------------ substitution

[ -f "$template" ] || die "no template at $template"
# canonical FILE: the absolute path of FILE with its directory's symlinks resolved
canonical() {
    d=$(CDPATH='' cd -- "$(dirname -- "$1")" 2>/dev/null && pwd -P) || d=$(dirname -- "$1")
    printf '%s/%s\n' "$d" "$(basename -- "$1")"
}
if [ -n "$output" ] && [ "$(canonical "$output")" = "$(canonical "$template")" ]; then
    die "the output $output is the template itself"
fi

RENDER_NGINX_USER=$user
RENDER_NGINX_RUNTIME_DIR=$runtime_dir
RENDER_NGINX_LOG_DIR=$log_dir
RENDER_NGINX_BODY_LIMIT=$body_limit
RENDER_NGINX_RATE=$rate
RENDER_NGINX_BURST=$burst
RENDER_NGINX_SERVER_NAME=$server_name
RENDER_NGINX_TLS_CERT=$tls_cert
RENDER_NGINX_TLS_KEY=$tls_key
RENDER_UPSTREAM_SERVERS=$upstream_lines
RENDER_LISTEN_HTTP=$listen_http
RENDER_LISTEN_HTTPS=$listen_https
RENDER_HTTPS_PORT_SUFFIX=$https_port_suffix
RENDER_METRICS_ALLOW=$metrics_lines
RENDER_NAMES="NGINX_USER NGINX_RUNTIME_DIR NGINX_LOG_DIR NGINX_BODY_LIMIT NGINX_RATE NGINX_BURST NGINX_SERVER_NAME NGINX_TLS_CERT NGINX_TLS_KEY UPSTREAM_SERVERS LISTEN_HTTP LISTEN_HTTPS HTTPS_PORT_SUFFIX METRICS_ALLOW"
export RENDER_NAMES RENDER_NGINX_USER RENDER_NGINX_RUNTIME_DIR RENDER_NGINX_LOG_DIR \
    RENDER_NGINX_BODY_LIMIT RENDER_NGINX_RATE RENDER_NGINX_BURST RENDER_NGINX_SERVER_NAME \
    RENDER_NGINX_TLS_CERT RENDER_NGINX_TLS_KEY RENDER_UPSTREAM_SERVERS RENDER_LISTEN_HTTP \
    RENDER_LISTEN_HTTPS RENDER_HTTPS_PORT_SUFFIX RENDER_METRICS_ALLOW

# Literal replacement (no regex or sed escaping of values); a value spanning
# several lines gets the indentation of its placeholder's line on each line.
rendered=$(awk '
BEGIN { n = split(ENVIRON["RENDER_NAMES"], names, " ") }
{
    line = $0
    match(line, /^[ \t]*/)
    indent = substr(line, 1, RLENGTH)
    for (i = 1; i <= n; i++) {
        ph = "@@" names[i] "@@"
        value = ENVIRON["RENDER_" names[i]]
        gsub(/\n/, "\n" indent, value)
        out = ""
        while ((p = index(line, ph)) > 0) {
            out = out substr(line, 1, p - 1) value
            line = substr(line, p + length(ph))
        }
        line = out line
    }
    print line
}' "$template") || die "cannot render $template"

left=$(printf '%s\n' "$rendered" | grep -Eo '@@[A-Za-z0-9_]+@@' | sort -u | tr '\n' ' ' || true)
[ -z "$left" ] || die "placeholders left unrendered in $template: $left(render.sh knows no value for them)"

# ------------------------------------------------------------ directories

for d in "$runtime_dir" "$runtime_dir/client_body_temp" "$runtime_dir/proxy_temp" \
    "$runtime_dir/fastcgi_temp" "$runtime_dir/uwsgi_temp" "$runtime_dir/scgi_temp" "$log_dir"; do
    [ -d "$d" ] || mkdir -p "$d" 2>/dev/null || warn "cannot create $d (nginx needs it)"
done

# ------------------------------------------------------------ output

if [ -z "$output" ]; then
    printf '%s\n' "$rendered"
else
    tmp=$output.render.$$
    trap 'rm -f "$tmp"' EXIT
    printf '%s\n' "$rendered" >"$tmp" || die "cannot write $tmp"
    mv -f "$tmp" "$output" || die "cannot move $tmp to $output"
    trap - EXIT
fi
