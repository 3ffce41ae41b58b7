#!/usr/bin/env bash
# ensure-services.sh [--redis-only | --postgres-only | SERVICE...]
#
# Makes sure PostgreSQL and/or Redis answer; starts a locally installed one
# that has stopped; fails loudly when that is not possible.
#
# Services: "postgres" and/or "redis" as arguments, else $SLIPWAY_SERVICES,
# else both. `--redis-only` is for `make run` on SQLite.
#
# Environment:
#   PGHOST (127.0.0.1), PGPORT (5432)      PostgreSQL to check
#   REDIS_URL (redis://127.0.0.1:6379/0)   Redis to check (host, port, password)
#   REDIS_HOST / REDIS_PORT                override the host/port from REDIS_URL
#   SLIPWAY_SERVICE_TIMEOUT (20)           seconds to wait after starting one
#   SLIPWAY_REDIS_DIR (/var/lib/redis), SLIPWAY_REDIS_LOG (/var/log/redis/ci.log)
set -euo pipefail
# shellcheck source=_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
    exit "${1:-2}"
}

services=()
for arg in "$@"; do
    case "$arg" in
    --redis-only) services+=(redis) ;;
    --postgres-only) services+=(postgres) ;;
    postgres | postgresql | pg) services+=(postgres) ;;
    redis) services+=(redis) ;;
    -h | --help) usage 0 ;;
    *)
        log "unknown argument: $arg"
        usage
        ;;
    esac
done
if [[ ${#services[@]} -eq 0 ]]; then
    read -r -a services <<<"${SLIPWAY_SERVICES:-postgres redis}"
fi
timeout_s=${SLIPWAY_SERVICE_TIMEOUT:-20}

# ---------------------------------------------------------------- PostgreSQL
pg_host=${PGHOST:-127.0.0.1}
pg_port=${PGPORT:-5432}

pg_answers() {
    if have pg_isready; then
        pg_isready -q -t 2 -h "$pg_host" -p "$pg_port"
    else
        [[ $pg_host == /* ]] && [[ -S $pg_host/.s.PGSQL.$pg_port ]] && return 0
        tcp_open "$pg_host" "$pg_port"
    fi
}

pg_start() {
    have pg_ctlcluster || die "PostgreSQL does not answer on $pg_host:$pg_port and is not installed here (no pg_ctlcluster): install it with 'apt-get install -y postgresql', or point PGHOST/PGPORT at a running server"
    is_root || [[ $(id -un) == postgres ]] || die "PostgreSQL does not answer on $pg_host:$pg_port; starting it needs root or the postgres user: run 'sudo pg_ctlcluster --skip-systemctl-redirect <version> main start'"
    local ver name conf found=0
    if have pg_lsclusters; then
        # Start the cluster(s) configured for this port.
        while read -r ver name status; do
            found=1
            [[ $status == online* ]] && continue
            log "starting PostgreSQL cluster $ver/$name (port $pg_port)"
            pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" start >&2 || warn "pg_ctlcluster $ver $name start failed"
        done < <(pg_lsclusters -h 2>/dev/null | awk -v p="$pg_port" '$3 == p { print $1, $2, $4 }')
        [[ $found -eq 1 ]] || die "PostgreSQL does not answer on $pg_host:$pg_port and no local cluster is configured for port $pg_port (pg_lsclusters): create one with 'pg_createcluster --port $pg_port <version> main', or fix PGPORT"
    else
        for conf in /etc/postgresql/*/main; do
            [[ -d $conf ]] || continue
            found=1
            ver=${conf%/main}
            ver=${ver##*/}
            log "starting PostgreSQL cluster $ver/main"
            pg_ctlcluster --skip-systemctl-redirect "$ver" main start >&2 || warn "pg_ctlcluster $ver main start failed"
        done
        [[ $found -eq 1 ]] || die "PostgreSQL is installed but has no cluster (no /etc/postgresql/*/main): create one with 'pg_createcluster <version> main'"
    fi
}

ensure_postgres() {
    if pg_answers; then
        log "PostgreSQL answers on $pg_host:$pg_port"
        return 0
    fi
    is_local_host "$pg_host" || die "PostgreSQL does not answer on $pg_host:$pg_port (not a local address, so not starting one): check PGHOST/PGPORT"
    pg_start
    wait_until "$timeout_s" "PostgreSQL answers on $pg_host:$pg_port" pg_answers ||
        die "PostgreSQL still does not answer on $pg_host:$pg_port after ${timeout_s}s; see /var/log/postgresql/ (pg_lsclusters shows the state)"
}

# --------------------------------------------------------------------- Redis
redis_url=${REDIS_URL:-redis://127.0.0.1:6379/0}
redis_password=""
# redis://[[user]:password@]host[:port][/db]
rest=${redis_url#*://}
rest=${rest%%/*}
if [[ $rest == *@* ]]; then
    creds=${rest%@*}
    rest=${rest##*@}
    redis_password=${creds#*:}
    [[ $creds == *:* ]] || redis_password=$creds
fi
if [[ $rest == \[*\]* ]]; then # [::1]:6379
    redis_host=${rest%%]*}
    redis_host=${redis_host#[}
    rest=${rest#*]}
    redis_port=${rest#:}
else
    redis_host=${rest%%:*}
    redis_port=${rest#"$redis_host"}
    redis_port=${redis_port#:}
fi
redis_host=${REDIS_HOST:-${redis_host:-127.0.0.1}}
redis_port=${REDIS_PORT:-${redis_port:-6379}}
[[ $redis_port =~ ^[0-9]+$ ]] || die "cannot read a Redis port from REDIS_URL=$redis_url"

redis_answers() {
    local reply=""
    if have redis-cli; then
        reply=$(REDISCLI_AUTH=$redis_password timeout 3 redis-cli -h "$redis_host" -p "$redis_port" ping 2>/dev/null) || true
    else
        # Plain RESP over bash's /dev/tcp.
        # shellcheck disable=SC2016 # expanded by the inner bash
        reply=$(timeout 3 bash -c '
            exec 3<>"/dev/tcp/$1/$2" || exit 1
            if [[ -n $3 ]]; then printf "AUTH %s\r\n" "$3" >&3; read -r _ <&3; fi
            printf "PING\r\n" >&3
            read -r line <&3 && printf "%s\n" "$line"
        ' _ "$redis_host" "$redis_port" "$redis_password" 2>/dev/null) || true
    fi
    # PONG, or an auth error: either way a Redis server is answering.
    [[ $reply == *PONG* || $reply == *NOAUTH* || $reply == *WRONGPASS* ]]
}

ensure_redis() {
    if redis_answers; then
        log "Redis answers on $redis_host:$redis_port"
        return 0
    fi
    is_local_host "$redis_host" || die "Redis does not answer on $redis_host:$redis_port (not a local address, so not starting one): check REDIS_URL"
    have redis-server || die "Redis does not answer on $redis_host:$redis_port and is not installed here (no redis-server): install it with 'apt-get install -y redis-server', or point REDIS_URL at a running server"

    local dir=${SLIPWAY_REDIS_DIR:-/var/lib/redis} logfile=${SLIPWAY_REDIS_LOG:-/var/log/redis/ci.log}
    mkdir -p "$dir" 2>/dev/null || true
    if [[ ! -d $dir || ! -w $dir ]]; then
        dir=$(mktemp -d "${TMPDIR:-/tmp}/slipway-redis.XXXXXX")
    fi
    mkdir -p "$(dirname "$logfile")" 2>/dev/null || true
    if ! touch "$logfile" 2>/dev/null; then
        logfile=$dir/redis.log
    fi
    local -a bind=("$redis_host")
    [[ $redis_host == 127.0.0.1 ]] && bind=(127.0.0.1 -::1) # "-": skip ::1 when IPv6 is off
    [[ $redis_host == localhost ]] && bind=(127.0.0.1 -::1)
    local -a args=(--daemonize yes --bind "${bind[@]}" --port "$redis_port" --save "" --appendonly no --dir "$dir" --logfile "$logfile")
    [[ -n $redis_password ]] && args+=(--requirepass "$redis_password")
    log "starting redis-server on $redis_host:$redis_port (dir $dir, log $logfile)"
    # --daemonize forks; close our extra fds so the daemon holds no pipe of the caller.
    (
        close_extra_fds
        exec redis-server "${args[@]}" </dev/null >>"$logfile" 2>&1
    ) || die "redis-server failed to start; see $logfile"
    wait_until "$timeout_s" "Redis answers on $redis_host:$redis_port" redis_answers ||
        die "Redis still does not answer on $redis_host:$redis_port after ${timeout_s}s; see $logfile"
}

for s in "${services[@]}"; do
    case "$s" in
    postgres | postgresql | pg) ensure_postgres ;;
    redis) ensure_redis ;;
    *) die "unknown service '$s' in SLIPWAY_SERVICES (known: postgres redis)" ;;
    esac
done
