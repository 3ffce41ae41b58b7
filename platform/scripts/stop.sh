#!/usr/bin/env bash
# stop.sh [--list]   (`make stop`)
#
# Ends what `make run` leaves running on purpose when it stops: the registry it
# started (data in $SLIPWAY_VAR_DIR/registry) and the model containers the demo
# deployed to this machine's Docker engine: those labelled with the installation
# id of make run's database ($SLIPWAY_VAR_DIR/installation-id, written by make
# run), and no other installation's. --list only names them, one per line.
# dockerd, PostgreSQL and Redis are machine services that other work shares: they
# are named by `make run` on exit but never stopped here.
#
# Environment:
#   SLIPWAY_VAR_DIR (var)   the state folder `make run` used
set -euo pipefail
# shellcheck source=_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here/../.."

list=0
case "${1:-}" in
"") ;;
--list) list=1 ;;
*)
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
    exit 2
    ;;
esac
var_dir=${SLIPWAY_VAR_DIR:-var}
registry_dir=$var_dir/registry

# The registry make run started: its pid file, and its address from the config it was started with.
registry_pid=""
registry_addr=""
if [[ -r $registry_dir/registry.pid ]]; then
    registry_pid=$(cat "$registry_dir/registry.pid" 2>/dev/null || true)
    [[ $registry_pid =~ ^[0-9]+$ ]] && pid_alive "$registry_pid" || registry_pid=""
fi
if [[ -r $registry_dir/config.yml ]]; then
    registry_addr=$(awk '/^  addr:/ { a = $2 } END { print a }' "$registry_dir/config.yml")
fi

# Model containers deployed by the demo: managed by Slipway and labelled with make run's installation
# id. Another installation on the same engine (a second checkout, a test run) keeps its containers.
installation=""
if [[ -r $var_dir/installation-id ]]; then
    installation=$(tr -d '[:space:]' <"$var_dir/installation-id")
    [[ $installation =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] || die "$var_dir/installation-id holds no installation id"
fi
containers=()
if [[ -n $installation ]] && have docker && timeout 10 docker info >/dev/null 2>&1; then
    while read -r name; do
        [[ -n $name ]] && containers+=("$name")
    done < <(docker ps -a --filter label=app.kubernetes.io/managed-by=slipway \
        --filter "label=slipway.io/installation=$installation" --format '{{.Names}}')
fi

if [[ $list -eq 1 ]]; then
    [[ -n $registry_pid ]] && printf 'registry %s (pid %s, data in %s)\n' "$registry_addr" "$registry_pid" "$registry_dir"
    for name in "${containers[@]}"; do printf 'container %s\n' "$name"; done
    exit 0
fi

if [[ ${#containers[@]} -gt 0 ]]; then
    docker rm -f "${containers[@]}" >/dev/null
    log "removed ${#containers[@]} model container(s) of the demo (installation $installation): ${containers[*]}"
elif [[ -z $installation ]]; then
    log "no installation id in $var_dir (make run never got that far): no model containers to remove"
else
    log "no model containers of the demo (installation $installation) are running"
fi
bash "$here/stop-registry.sh" "$registry_dir"
