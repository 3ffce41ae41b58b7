#!/usr/bin/env bash
# ensure-commands.sh COMMAND:PACKAGE...
#
# Makes sure each COMMAND is on PATH, installing the Debian PACKAGE of every
# missing one (in one apt-get run; root on Debian only). Prints where each
# command is. Used by `make` for the tools the checks run: shellcheck,
# docker-compose, jq, e.g.
#   ensure-commands.sh shellcheck:shellcheck jq:jq
set -euo pipefail
# shellcheck source=_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"

if [[ $# -eq 0 || $1 == -* ]]; then
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
    exit 2
fi
for pair in "$@"; do
    [[ $pair =~ ^[A-Za-z0-9._+-]+:[a-z0-9][a-z0-9.+-]+$ ]] || die "give COMMAND:PACKAGE, got '$pair'"
done

need_cmds "$@"
for pair in "$@"; do
    log "${pair%%:*} is $(command -v "${pair%%:*}") (package ${pair#*:})"
done
