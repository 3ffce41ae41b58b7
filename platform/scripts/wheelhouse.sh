#!/usr/bin/env bash
# wheelhouse.sh [DIR]
#
# Fills DIR (default platform/wheelhouse) with wheels of everything the platform
# image installs: the pinned dependencies of pyproject.toml and the build backend.
# `docker build -f platform/Dockerfile .` then installs from them alone, with no
# network inside the build. Wheels are built or downloaded on this host, for this
# host's Python and platform: run it where the image's Python matches (3.11, Linux
# x86_64 glibc, as in python:3.11-slim and the local Debian base).
#
# Environment:
#   PIP (.venv/bin/pip, else pip3)   the pip that downloads
set -euo pipefail
# shellcheck source=_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

[[ $# -le 1 && ${1:-} != -* ]] || {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
    exit 2
}
dir=${1:-$root/platform/wheelhouse}
pip=${PIP:-}
if [[ -z $pip ]]; then
    if [[ -x $root/.venv/bin/pip ]]; then pip=$root/.venv/bin/pip; else pip=pip3; fi
fi
have "$pip" || [[ -x $pip ]] || die "no pip ($pip): run 'make venv' first, or set PIP"
mkdir -p "$dir"

# The build backend pyproject.toml names, then the project with its dependencies (pip wheel builds
# a wheel for any of them published only as source, so the image never compiles anything).
backend=$(awk -F'"' '/^requires *=/ { print $2 }' "$root/pyproject.toml")
log "wheels for the platform image into $dir"
# pip decides environment markers by the Python running it, not the image's: Debian bookworm's
# python3 is 3.11.2, and redis needs async-timeout below 3.11.3, so it is added whatever this host runs.
for_older_311=(async-timeout)
run_logged "pip wheel" "$pip" wheel --quiet --wheel-dir "$dir" "${backend:-setuptools}" "${for_older_311[@]}" "$root" ||
    die "pip wheel failed (output above)"
# The project's own wheel is built again inside the image from the source copied there.
rm -f "$dir"/slipway-*.whl
log "$(find "$dir" -name '*.whl' | wc -l) wheels, $(du -sh "$dir" | cut -f1) in $dir ($(elapsed))"
