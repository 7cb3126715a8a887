#!/usr/bin/env bash
# runtime_libs_test.sh BINARY REPO
#
# Checks that the production image (deployment/docker/Dockerfile, stage
# production, which installs deps/debian-runtime-packages.txt with
# --no-install-recommends on debian:12-slim) has every shared library BINARY
# loads. Runs ldd on BINARY, maps each resolved library to its Debian package
# with dpkg -S (Debian 12 is usr-merged: /lib/x86_64-linux-gnu and
# /usr/lib/x86_64-linux-gnu are one directory but dpkg knows one spelling, so
# both are tried, for the path as ldd prints it and with symlinks resolved),
# and fails
#   - on a library ldd reports "not found";
#   - on a library the binary links directly (ELF NEEDED) whose package is not
#     listed in deps/debian-runtime-packages.txt;
#   - on an indirect library (a dependency of a dependency) whose package is
#     neither listed nor pulled in through the Depends/Pre-Depends of a listed
#     package (what apt installs with them);
#   - on a library no package owns, or a listed name dpkg and apt don't know.
# Ignored: linux-vdso (the kernel's), and the sanitizer runtimes libasan,
# libubsan, liblsan, libtsan (the ASan+UBSan test build links them; the
# release binary the image ships does not).
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 BINARY REPO" >&2
  exit 2
fi
binary=$1
repo=$2
list=$repo/deps/debian-runtime-packages.txt

fail=0
problem() { echo "FAIL: $*"; fail=1; }

for tool in ldd readelf dpkg dpkg-query; do
  command -v "$tool" >/dev/null 2>&1 || { echo "FAIL: $tool not found (needs Debian's libc-bin, binutils, dpkg)"; exit 1; }
done
[ -x "$binary" ] || { echo "FAIL: $binary is not an executable"; exit 1; }
[ -f "$list" ] || { echo "FAIL: $list is missing"; exit 1; }

# --- The list: "package" per line, '#' comments, no architecture or version.
declare -A listed=()
while read -r pkg rest; do
  case "$pkg" in ''|'#'*) continue ;; esac
  if [ -n "${rest:-}" ] && [ "${rest:0:1}" != "#" ]; then
    problem "$list: one package per line, got \"$pkg $rest\""
  fi
  case "$pkg" in
    *:*|*'('*|*'='*) problem "$list: \"$pkg\": a bare package name, without :arch or version" ;;
  esac
  listed[$pkg]=1
done < "$list"
[ ${#listed[@]} -gt 0 ] || { echo "FAIL: $list lists no package"; exit 1; }

# Every listed name is a real package: installed here, or known to apt.
for pkg in "${!listed[@]}"; do
  if ! dpkg-query -W -f='${Status}\n' "$pkg" 2>/dev/null | grep -q 'ok installed' \
     && ! apt-cache show "$pkg" >/dev/null 2>&1; then
    problem "$list names \"$pkg\", which neither dpkg nor apt knows"
  fi
done

# --- What the binary loads.
ldd_out=$(ldd "$binary" 2>&1) || { echo "$ldd_out"; echo "FAIL: ldd $binary failed"; exit 1; }
if grep -q 'not a dynamic executable' <<<"$ldd_out"; then
  echo "FAIL: $binary is not dynamically linked"; exit 1
fi
while read -r soname; do
  problem "$soname: not found by the dynamic loader"
done < <(awk '/=> not found/ {print $1}' <<<"$ldd_out")

# Directly linked sonames (ELF NEEDED).
declare -A needed=()
while read -r soname; do needed[$soname]=1; done < <(
  readelf -d "$binary" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')

# soname -> path, as ldd resolved it. "libx.so.1 => /path (0x…)" or, for the
# loader, "/lib64/ld-linux-x86-64.so.2 (0x…)".
declare -A lib_path=()
sanitizers=()
while read -r first arrow path _; do
  case "$first" in linux-vdso.so.*|linux-gate.so.*) continue ;; esac
  if [ "$arrow" = "=>" ]; then
    [ "$path" = "not" ] && continue   # "not found": reported above
    soname=$first
  else
    case "$first" in /*) path=$first; soname=${first##*/} ;; *) continue ;; esac
  fi
  case "$soname" in
    libasan.so*|libubsan.so*|liblsan.so*|libtsan.so*|libhwasan.so*)
      sanitizers+=("$soname"); continue ;;
  esac
  lib_path[$soname]=$path
done <<<"$ldd_out"
if [ ${#sanitizers[@]} -gt 0 ]; then
  echo "ignored: ${sanitizers[*]} (sanitizer runtime of this ASan/UBSan test build; the release binary in the image does not link it)"
fi
[ ${#lib_path[@]} -gt 0 ] || { echo "FAIL: ldd listed no library"; exit 1; }

# --- Library path -> package. Candidate spellings per library: as printed and
# resolved, each with and without the /usr prefix.
spellings() {
  local p
  for p in "$1" "$(readlink -f "$1")"; do
    echo "$p"
    case "$p" in /usr/*) echo "${p#/usr}" ;; *) echo "/usr$p" ;; esac
  done | awk '!seen[$0]++'
}
declare -A owner_of_path=()
mapfile -t all_paths < <(for s in "${!lib_path[@]}"; do spellings "${lib_path[$s]}"; done | sort -u)
# One dpkg -S for all of them; paths no package owns only print errors.
while IFS= read -r line; do
  pkgs=${line%%: /*}
  p=${line#"$pkgs: "}
  owner_of_path[$p]=$pkgs
done < <(dpkg -S "${all_paths[@]}" 2>/dev/null | grep -v '^diversion ' || true)

# --- What apt installs with the listed packages: the closure of their
# Depends and Pre-Depends over the installed versions (any installed
# alternative of "a | b" counts).
declare -A deps_of=()
while IFS=$'\t' read -r pkg status deps; do
  [ "$status" = "install ok installed" ] || continue
  deps_of[$pkg]="${deps_of[$pkg]:-}, $deps"
done < <(dpkg-query -W -f='${Package}\t${Status}\t${Depends}, ${Pre-Depends}\n')
declare -A via=()     # package -> the listed package that pulls it in
queue=()
for pkg in "${!listed[@]}"; do via[$pkg]=$pkg; queue+=("$pkg"); done
while [ ${#queue[@]} -gt 0 ]; do
  pkg=${queue[0]}; queue=("${queue[@]:1}")
  [ -n "${deps_of[$pkg]:-}" ] || continue
  while read -r dep; do
    [ -n "$dep" ] || continue
    if [ -n "${deps_of[$dep]:-}" ] && [ -z "${via[$dep]:-}" ]; then
      via[$dep]=${via[$pkg]}
      queue+=("$dep")
    fi
  done < <(tr ',|' '\n\n' <<<"${deps_of[$pkg]}" | sed -e 's/([^)]*)//g' -e 's/:any//' -e 's/[[:space:]]//g')
done

# --- The verdict per library.
printf '%-34s %-28s %s\n' LIBRARY PACKAGE "IN THE IMAGE BECAUSE"
for soname in $(printf '%s\n' "${!lib_path[@]}" | sort); do
  path=${lib_path[$soname]}
  pkg=""
  while read -r cand; do
    if [ -n "${owner_of_path[$cand]:-}" ]; then pkg=${owner_of_path[$cand]}; break; fi
  done < <(spellings "$path")
  if [ -z "$pkg" ]; then
    problem "$soname ($path) belongs to no Debian package: the image cannot install it"
    continue
  fi
  # "pkg:amd64" or "pkg1:amd64, pkg2:amd64": any owner will do.
  why=""; shown=""
  for owner in $(tr ',' ' ' <<<"$pkg"); do
    owner=${owner%%:*}
    shown=${shown:-$owner}
    if [ -n "${listed[$owner]:-}" ]; then why="listed"; shown=$owner; break; fi
    if [ -z "${needed[$soname]:-}" ] && [ -n "${via[$owner]:-}" ]; then
      why="dependency of ${via[$owner]}"; shown=$owner
    fi
  done
  if [ -z "$why" ]; then
    if [ -n "${needed[$soname]:-}" ]; then
      problem "$soname ($path) is linked directly; its package $shown is not listed in deps/debian-runtime-packages.txt"
    else
      problem "$soname ($path): its package $shown is neither listed in deps/debian-runtime-packages.txt nor a dependency of a listed package"
    fi
    continue
  fi
  printf '%-34s %-28s %s\n' "$soname" "$shown" "$why"
done

if [ "$fail" -ne 0 ]; then
  echo "runtime libraries: FAILED (fix deps/debian-runtime-packages.txt)"
  exit 1
fi
echo "runtime libraries: all ${#lib_path[@]} come from deps/debian-runtime-packages.txt or its dependencies"
