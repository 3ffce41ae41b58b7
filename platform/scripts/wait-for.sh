#!/usr/bin/env bash
# wait-for.sh HOST PORT [TIMEOUT]
#
# Waits until HOST:PORT accepts TCP connections (default TIMEOUT 30 seconds).
# Exit 0 when it does, 1 when the time is up.
set -euo pipefail
# shellcheck source=_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"

if [[ $# -lt 2 || $# -gt 3 ]]; then
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
    exit 2
fi
host=$1
port=$2
limit=${3:-30}
[[ $port =~ ^[0-9]+$ ]] || die "PORT must be a number, got '$port'"
[[ $limit =~ ^[0-9]+$ ]] || die "TIMEOUT must be whole seconds, got '$limit'"

wait_until "$limit" "$host:$port accepts connections" tcp_open "$host" "$port" ||
    die "nothing accepts connections on $host:$port after ${limit}s"
