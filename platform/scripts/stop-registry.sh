#!/usr/bin/env bash
# stop-registry.sh [--purge] DATA_DIR
#
# Stops the registry that ensure-registry.sh started from DATA_DIR (pid file
# DATA_DIR/registry.pid). Doing nothing is fine when it is not running.
# --purge also deletes what ensure-registry.sh put in DATA_DIR (config,
# htpasswd, storage, log) and DATA_DIR itself when it is then empty.
set -euo pipefail
# shellcheck source=_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
    exit 2
}
purge=0
if [[ ${1:-} == --purge ]]; then
    purge=1
    shift
fi
[[ $# -eq 1 ]] || usage
if [[ ! -d $1 ]]; then
    log "no registry data dir $1; nothing to stop"
    exit 0
fi
data_dir=$(cd "$1" && pwd -P)
pidfile=$data_dir/registry.pid
config=$data_dir/config.yml

with_lock "$data_dir/.lock"

pid=""
if [[ -r $pidfile ]]; then
    pid=$(cat "$pidfile" 2>/dev/null || true)
    if ! [[ $pid =~ ^[0-9]+$ ]] || ! kill -0 "$pid" 2>/dev/null ||
        ! tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$config"; then
        pid="" # stale pid file, or the pid now belongs to another process
    fi
fi

if [[ -z $pid ]]; then
    log "registry from $data_dir is not running"
else
    kill "$pid"
    for _ in $(seq 1 40); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.25
    done
    if kill -0 "$pid" 2>/dev/null; then
        warn "registry (pid $pid) ignored SIGTERM for 10s; sending SIGKILL"
        kill -9 "$pid" 2>/dev/null || true
    fi
    log "stopped registry (pid $pid) from $data_dir ($(elapsed))"
fi
rm -f "$pidfile"

if [[ $purge -eq 1 ]]; then
    rm -rf --one-file-system "$data_dir/storage"
    rm -f "$config" "$data_dir/htpasswd" "$data_dir/registry.log" "$data_dir/.lock"
    rmdir "$data_dir" 2>/dev/null || true
    log "purged registry data in $data_dir"
fi
