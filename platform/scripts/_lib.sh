# shellcheck shell=bash
# Shared helpers for the slipway platform scripts. Sourced, never executed.
#
# Conventions: every message goes to stderr and starts with "slipway:"; a
# script that cannot do its job calls `die` with what is missing and how to get it.

SLIPWAY_T0=$(date +%s%N)

log() { printf 'slipway: %s\n' "$*" >&2; }
warn() { printf 'slipway: warning: %s\n' "$*" >&2; }
die() {
    printf 'slipway: error: %s\n' "$*" >&2
    exit 1
}

# Seconds since the script started, e.g. "1.3s".
elapsed() {
    local now
    now=$(date +%s%N)
    awk -v ns="$((now - SLIPWAY_T0))" 'BEGIN { printf "%.1fs", ns / 1e9 }'
}

have() { command -v "$1" >/dev/null 2>&1; }

is_root() { [[ ${EUID:-$(id -u)} -eq 0 ]]; }

# Is PID running? A zombie (exited, not yet reaped, e.g. under a container's PID 1) is not.
pid_alive() {
    kill -0 "$1" 2>/dev/null && [[ $(awk '/^State:/ { s = $2 } END { print s }' "/proc/$1/status" 2>/dev/null) != Z ]]
}

is_debian() { [[ -r /etc/debian_version ]] && have apt-get && have dpkg-query; }

# Installed (state "install ok installed")?
pkg_installed() {
    [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]
}

# run_logged DESCRIPTION CMD... : run CMD with its output in a temp file; on
# failure show the last lines of it and return non-zero.
run_logged() {
    local what=$1 out rc=0
    shift
    out=$(mktemp "${TMPDIR:-/tmp}/slipway-out.XXXXXX")
    "$@" >"$out" 2>&1 || rc=$?
    if [[ $rc -ne 0 ]]; then
        log "$what failed (exit $rc); last lines of its output:"
        tail -n 25 "$out" | sed 's/^/    /' >&2
    fi
    rm -f "$out"
    return "$rc"
}

# apt_install PKG... : install the Debian packages that are not installed yet,
# without recommended packages (SLIPWAY_APT_RECOMMENDS=1 keeps them).
# Runs `apt-get update` only when the package lists do not know a package or
# when an install from stale lists fails.
apt_install() {
    local missing=() p
    if is_debian; then
        for p in "$@"; do pkg_installed "$p" || missing+=("$p"); done
        [[ ${#missing[@]} -eq 0 ]] && return 0
    else
        missing=("$@")
    fi
    is_debian || die "need Debian package(s) ${missing[*]}, but this is not a Debian system (no /etc/debian_version or apt-get); install the equivalent with your package manager"
    is_root || die "need Debian package(s) ${missing[*]}; installing requires root: run 'sudo apt-get install -y ${missing[*]}' (or run this script as root)"

    local -a apt=(apt-get -q -y -o DPkg::Lock::Timeout=300 -o Acquire::Retries=3)
    local -a install=(install)
    [[ ${SLIPWAY_APT_RECOMMENDS:-0} == 1 ]] || install+=(--no-install-recommends)
    local need_update=0 cand
    if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
        need_update=1
    else
        for p in "${missing[@]}"; do
            # awk reads to the end: an early `exit` makes apt-cache die of SIGPIPE, and under
            # pipefail the pipeline then fails with 141 (issue 9).
            cand=$(apt-cache policy "$p" 2>/dev/null | awk '/Candidate:/ && c == "" { c = $2 } END { print c }')
            if [[ -z $cand || $cand == "(none)" ]]; then need_update=1; fi
        done
    fi
    export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1
    if [[ $need_update -eq 1 ]]; then
        log "apt-get update (package lists do not know ${missing[*]} yet)"
        run_logged "apt-get update" "${apt[@]}" update || die "apt-get update failed; check /etc/apt/sources.list* and the network"
    fi
    log "apt-get install ${missing[*]}"
    if ! run_logged "apt-get install ${missing[*]}" "${apt[@]}" "${install[@]}" "${missing[@]}"; then
        [[ $need_update -eq 1 ]] && die "apt-get install ${missing[*]} failed"
        log "retrying after apt-get update (package lists may be stale)"
        run_logged "apt-get update" "${apt[@]}" update || die "apt-get update failed; check /etc/apt/sources.list* and the network"
        run_logged "apt-get install ${missing[*]}" "${apt[@]}" "${install[@]}" "${missing[@]}" || die "apt-get install ${missing[*]} failed"
    fi
    log "installed ${missing[*]} ($(elapsed))"
}

# need_cmds CMD:PKG... : make sure each CMD exists, installing the Debian
# packages of the missing ones in one apt-get run.
need_cmds() {
    local pair pkgs=()
    for pair in "$@"; do
        have "${pair%%:*}" || pkgs+=("${pair#*:}")
    done
    [[ ${#pkgs[@]} -eq 0 ]] && return 0
    apt_install "${pkgs[@]}"
    for pair in "$@"; do
        have "${pair%%:*}" || die "package ${pair#*:} is installed but command '${pair%%:*}' is still missing from PATH ($PATH)"
    done
}
need_cmd() { need_cmds "$1:$2"; }

# The Debian mirror URI this machine's apt uses for SUITE (default bookworm),
# read from /etc/apt/sources.list{,.d/*.list} (one-line format) and
# /etc/apt/sources.list.d/*.sources (deb822). SLIPWAY_DEBIAN_MIRROR overrides.
debian_mirror() {
    local suite=${1:-bookworm}
    if [[ -n ${SLIPWAY_DEBIAN_MIRROR:-} ]]; then
        printf '%s\n' "${SLIPWAY_DEBIAN_MIRROR%/}"
        return 0
    fi
    local -a files=()
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [[ -r $f ]] && files+=("$f")
    done
    [[ ${#files[@]} -gt 0 ]] || return 1
    awk -v suite="$suite" '
        function consider(types, uris, suites, comps,   n, i, t, s, u, ok) {
            if (types !~ /(^|[ \t])deb([ \t]|$)/) return
            if (comps !~ /(^|[ \t])main([ \t]|$)/) return
            ok = 0
            n = split(suites, s, /[ \t]+/)
            for (i = 1; i <= n; i++) if (s[i] == suite) ok = 1
            if (!ok) return
            n = split(uris, u, /[ \t]+/)
            for (i = 1; i <= n; i++)
                if (u[i] ~ /^(https?|file):/ && !found) { found = u[i]; sub(/\/+$/, "", found) }
        }
        function flush() { if (inrec) consider(T, U, S, C); inrec = 0; T = U = S = C = ""; enabled = 1 }
        FILENAME ~ /\.sources$/ {
            if (FILENAME != cur) { flush(); cur = FILENAME }
            if ($0 ~ /^[ \t]*$/) { flush(); next }
            if ($0 ~ /^[ \t]*#/) next
            inrec = 1
            line = $0; key = tolower(line); sub(/:.*/, "", key)
            val = line; sub(/^[^:]*:[ \t]*/, "", val)
            if (key == "types") T = val
            else if (key == "uris") U = val
            else if (key == "suites") S = val
            else if (key == "components") C = val
            else if (key == "enabled" && tolower(val) == "no") { T = "" }
            next
        }
        {
            if (cur != "") { flush(); cur = "" }
            line = $0; sub(/#.*/, "", line)
            gsub(/\[[^]]*\]/, "", line)          # drop [ signed-by=... ] options
            n = split(line, w, /[ \t]+/)
            j = 0; for (i = 1; i <= n; i++) if (w[i] != "") v[++j] = w[i]
            if (j >= 4) { comps = ""; for (i = 4; i <= j; i++) comps = comps " " v[i]; consider(v[1], v[2], v[3], comps) }
            delete v
        }
        END { flush(); if (found) print found; else exit 1 }
    ' "${files[@]}"
}

# tcp_open HOST PORT : does something accept TCP connections there?
tcp_open() {
    # shellcheck disable=SC2016 # expanded by the inner bash
    timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

is_local_host() {
    case "$1" in
    127.* | localhost | ::1 | "[::1]" | /*) return 0 ;;
    *) return 1 ;;
    esac
}

# wait_until SECONDS DESCRIPTION CMD... : poll CMD every 0.25 s until it succeeds.
wait_until() {
    local limit=$1 what=$2
    shift 2
    local deadline=$(($(date +%s%N) + limit * 1000000000))
    until "$@"; do
        if (($(date +%s%N) > deadline)); then
            return 1
        fi
        sleep 0.25
    done
    log "$what ($(elapsed))"
}

# Close every file descriptor above 2 in the current (sub)shell, so that a
# daemon started from here keeps no pipe of its caller (make, CI log capture,
# subprocess.run) open.
close_extra_fds() {
    local fd
    for fd in /proc/"$BASHPID"/fd/*; do
        fd=${fd##*/}
        [[ $fd =~ ^[0-9]+$ ]] && ((fd > 2)) && eval "exec $fd>&-" 2>/dev/null
    done
    return 0
}

# spawn_detached LOGFILE CMD... : start CMD in its own session (survives the
# caller and its process group), stdin from /dev/null, output appended to
# LOGFILE. Prints the daemon's pid.
spawn_detached() {
    local logfile=$1
    shift
    (
        cd /
        close_extra_fds
        exec setsid nohup "$@" </dev/null >>"$logfile" 2>&1
    ) &
    printf '%s\n' "$!"
}

# with_lock FILE : take an exclusive lock held until the script exits, so that
# concurrent callers (parallel make jobs) do not start the same thing twice.
with_lock() {
    local lockfile=$1
    mkdir -p "$(dirname "$lockfile")" 2>/dev/null || true
    exec {SLIPWAY_LOCK_FD}>>"$lockfile" || die "cannot open lock file $lockfile"
    if ! flock -w "${SLIPWAY_LOCK_TIMEOUT:-600}" "$SLIPWAY_LOCK_FD"; then
        die "timed out waiting for lock $lockfile (another slipway script is still running)"
    fi
}

# A lock directory that exists and is writable for this user.
lock_dir() {
    if is_root && [[ -d /run/lock && -w /run/lock ]]; then
        printf '/run/lock\n'
    else
        printf '%s\n' "${XDG_RUNTIME_DIR:-${TMPDIR:-/tmp}}"
    fi
}
