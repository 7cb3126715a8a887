#!/bin/sh
# Installs the Debian packages named in the given list files, skipping those
# already installed, so `make deps` is idempotent and fast on a ready machine.
# A line is "package" or "package command": the second form is skipped when
# the command is already on PATH (e.g. npm bundled with a NodeSource nodejs).
set -eu
missing=""
for list in "$@"; do
  while read -r pkg cmd; do
    case "$pkg" in ''|'#'*) continue ;; esac
    if [ -n "${cmd:-}" ] && command -v "$cmd" >/dev/null 2>&1; then continue; fi
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed'; then
      missing="$missing $pkg"
    fi
  done < "$list"
done
if [ -n "$missing" ]; then
  echo "installing:$missing"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  # Packages with daemons (nginx, openssh-server) must not start them: the
  # tests run their own instances on loopback ports. policy-rc.d says so to
  # every maintainer script; one the machine already has is left alone.
  policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod 755 "$policy"
  fi
  status=0
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing || status=$?
  if [ -n "$policy" ]; then $SUDO rm -f "$policy"; fi
  exit $status
fi
