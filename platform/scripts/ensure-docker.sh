#!/usr/bin/env bash
# ensure-docker.sh
#
# Makes sure a Docker Engine answers `docker info`. If none does: installs
# Debian's docker.io when dockerd is missing (root on Debian only), starts
# dockerd detached from the caller (it outlives make), and waits for it.
#
# Environment:
#   DOCKER_HOST                  a non-local daemon is only checked, never started
#   SLIPWAY_DOCKERD_LOG          dockerd log (/var/log/dockerd.log)
#   SLIPWAY_DOCKERD_ARGS         extra dockerd arguments (word-split), e.g. "--data-root /srv/docker"
#   SLIPWAY_DOCKER_TIMEOUT (60)  seconds to wait for the daemon to answer
set -euo pipefail
# shellcheck source=_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"

[[ $# -eq 0 ]] || {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
    exit 2
}

timeout_s=${SLIPWAY_DOCKER_TIMEOUT:-60}
logfile=${SLIPWAY_DOCKERD_LOG:-/var/log/dockerd.log}

docker_answers() {
    have docker && timeout 10 docker info --format '{{.ServerVersion}}' >/dev/null 2>&1
}

report_up() {
    local server client
    server=$(timeout 10 docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})' 2>/dev/null || echo '?')
    client=$(timeout 10 docker version --format '{{.Client.Version}}' 2>/dev/null || echo '?')
    log "docker engine $server answers (client $client at $(command -v docker)) ($(elapsed))"
}

if docker_answers; then
    report_up
    exit 0
fi

case "${DOCKER_HOST:-unix:///var/run/docker.sock}" in
unix:///var/run/docker.sock | unix:///run/docker.sock) ;;
*) die "no Docker Engine answers at DOCKER_HOST=$DOCKER_HOST; this script only starts the local default daemon: start that one yourself or unset DOCKER_HOST" ;;
esac

if ! is_root; then
    sock=/var/run/docker.sock
    if [[ -S $sock && ! -w $sock ]] && pgrep -x dockerd >/dev/null 2>&1; then
        die "dockerd runs but $(id -un) may not use $sock: run as root, or add the user to the docker group ('sudo usermod -aG docker $(id -un)', then log in again)"
    fi
    have dockerd || die "no Docker Engine answers and dockerd is not installed: run 'sudo apt-get install -y docker.io' and start dockerd (or run this script as root)"
    die "no Docker Engine answers at /var/run/docker.sock and starting dockerd needs root: run 'sudo $0', or start it yourself ('sudo dockerd >/var/log/dockerd.log 2>&1 &')"
fi

# Serialise concurrent callers: only one of them installs/starts dockerd.
with_lock "$(lock_dir)/slipway-docker.lock"
if docker_answers; then
    report_up
    exit 0
fi

# /usr/local/bin/docker may be a lone client; what matters is the daemon.
if ! have dockerd || ! have containerd || ! have runc; then
    apt_install docker.io
fi
have dockerd || die "docker.io is installed but dockerd is not on PATH ($PATH); dockerd normally lives in /usr/sbin"
have docker || apt_install docker.io
# The engine may have been there all along with only the client missing (a mounted socket).
if docker_answers; then
    report_up
    exit 0
fi

# A dockerd may be running but not answering yet (just started by someone else).
pid=""
if [[ -r /var/run/docker.pid ]]; then
    pid=$(cat /var/run/docker.pid 2>/dev/null || true)
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && grep -q dockerd "/proc/$pid/cmdline" 2>/dev/null; then
        log "dockerd (pid $pid) is running but not answering yet; waiting"
    else
        pid=""
    fi
fi

if [[ -z $pid ]]; then
    mkdir -p "$(dirname "$logfile")"
    read -r -a extra <<<"${SLIPWAY_DOCKERD_ARGS:-}"
    log "starting dockerd $(dockerd --version 2>/dev/null | sed 's/^Docker version //') (log $logfile)"
    printf '\n==== slipway: dockerd started %s ====\n' "$(date -Is)" >>"$logfile"
    pid=$(spawn_detached "$logfile" dockerd "${extra[@]}")
fi

# Stop waiting as soon as dockerd is gone: one that cannot start (no privileges) exits at once.
up_or_gone() { docker_answers || ! pid_alive "$pid"; }
if ! wait_until "$timeout_s" "waited for dockerd (pid $pid)" up_or_gone || ! docker_answers; then
    if ! pid_alive "$pid"; then
        log "dockerd exited; last lines of $logfile:"
        tail -n 20 "$logfile" | sed 's/^/    /' >&2
        die "dockerd failed to start (see $logfile)"
    fi
    tail -n 20 "$logfile" | sed 's/^/    /' >&2
    die "dockerd (pid $pid) did not answer 'docker info' within ${timeout_s}s (see $logfile)"
fi
report_up
