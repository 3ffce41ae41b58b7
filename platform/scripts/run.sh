#!/usr/bin/env bash
# `make run`: the whole platform on this machine, in the foreground.
#
# Ctrl-C stops what runs in the foreground here: the web server, the Celery worker and beat. What
# outlives it on purpose (the registry and the model containers the demo deployed) is named on the
# way out, and `make stop` ends it.
#
# Environment: SLIPWAY_PORT (8000), SLIPWAY_VAR_DIR (var), DATABASE_URL (SQLite in the var folder),
# REDIS_URL (the local Redis, started when installed but stopped), SLIPWAY_DEFAULT_REGISTRY
# (127.0.0.1:5000; a 127.0.0.1 address gets a registry started here).
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=_lib.sh
source platform/scripts/_lib.sh
BIN=.venv/bin
PORT="${SLIPWAY_PORT:-8000}"
export SLIPWAY_VAR_DIR="${SLIPWAY_VAR_DIR:-$PWD/var}"
VAR=$SLIPWAY_VAR_DIR
mkdir -p "$VAR"

# A stable secret per checkout, so sessions and encrypted secrets survive restarts.
if [ -z "${SLIPWAY_SECRET_KEY:-}${SLIPWAY_SECRET_KEY_FILE:-}" ]; then
  [ -s "$VAR/secret_key" ] || (umask 077 && "$BIN/python" -c 'import secrets; print(secrets.token_urlsafe(50))' >"$VAR/secret_key")
  export SLIPWAY_SECRET_KEY_FILE="$VAR/secret_key"
fi
export SLIPWAY_ALLOWED_HOSTS="${SLIPWAY_ALLOWED_HOSTS:-127.0.0.1,localhost}"
# The demo's registry, Docker host and webhooks are all on this machine: let the platform reach loopback.
export SLIPWAY_OUTBOUND_ALLOWED_NETWORKS="${SLIPWAY_OUTBOUND_ALLOWED_NETWORKS:-127.0.0.0/8,::1/128}"
# The demo serves plain HTTP on 127.0.0.1: Secure cookies would never come back.
export SLIPWAY_SECURE_COOKIES="${SLIPWAY_SECURE_COOKIES:-false}"

# Redis: the one given, or the local one (started when installed but stopped).
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/0}"
bash platform/scripts/ensure-services.sh redis
# Builds need a Docker engine, a registry and a base image. Without them the platform still runs
# and each build fails saying what is missing.
export SLIPWAY_DEFAULT_REGISTRY="${SLIPWAY_DEFAULT_REGISTRY:-127.0.0.1:5000}"
if bash platform/scripts/ensure-docker.sh; then
  SLIPWAY_BASE_IMAGE="$(bash platform/scripts/base-image.sh)" && export SLIPWAY_BASE_IMAGE
  if [[ $SLIPWAY_DEFAULT_REGISTRY =~ ^127\.0\.0\.1:([0-9]+)$ ]]; then
    bash platform/scripts/ensure-registry.sh "${BASH_REMATCH[1]}" "$VAR/registry"
  fi
else
  warn "no Docker engine; builds will fail until one answers (see above)."
fi
[ -n "${DATABASE_URL:-}" ] || log "DATABASE_URL not set; using SQLite in $VAR/slipway.sqlite3"

"$BIN/python" manage.py migrate --no-input -v0
"$BIN/python" manage.py collectstatic --no-input -v0
"$BIN/python" manage.py seed_demo
# Whose containers these are: `make stop` removes those labelled with this id, and no other installation's.
"$BIN/python" manage.py installation_id >"$VAR/installation-id"

pids=()
demo_pid=""
stop() {
  trap - INT TERM EXIT
  echo
  log "stopping the web server, the worker and beat…"
  [ -z "$demo_pid" ] || kill "$demo_pid" 2>/dev/null || true
  kill "${pids[@]}" 2>/dev/null || true
  # A worker in the middle of a build finishes it first (a warm shutdown); do not wait for that
  # forever: the reaper fails such a build as "worker lost" on the next start.
  local deadline=$((SECONDS + ${SLIPWAY_STOP_TIMEOUT:-15})) pid survivors
  while ((SECONDS < deadline)); do
    survivors=()
    for pid in "${pids[@]}"; do pid_alive "$pid" && survivors+=("$pid"); done
    [ ${#survivors[@]} -eq 0 ] && break
    sleep 0.5
  done
  for pid in "${pids[@]}"; do
    if pid_alive "$pid"; then
      warn "pid $pid did not stop within ${SLIPWAY_STOP_TIMEOUT:-15}s; killing it and its children"
      # shellcheck disable=SC2046 # one pid per word
      kill -KILL $(cat /proc/"$pid"/task/*/children 2>/dev/null) "$pid" 2>/dev/null || true
    fi
  done
  wait "${pids[@]}" 2>/dev/null || true
  log "stopped the web server, the worker and beat"
  local left
  left=$(bash platform/scripts/stop.sh --list 2>/dev/null || true)
  if [ -n "$left" ]; then
    log "left running on purpose ('make stop' ends them):"
    printf '%s\n' "$left" | sed 's/^/    /' >&2
  fi
  log "machine services left as they are: dockerd, PostgreSQL and Redis (shared with other work)"
}
trap stop INT TERM EXIT

# Each worker process of gunicorn counts its requests here; /metrics adds them up.
PROMETHEUS_MULTIPROC_DIR="$VAR/metrics" "$BIN/gunicorn" config.wsgi --config platform/gunicorn.conf.py \
  --bind "127.0.0.1:$PORT" --workers 2 --threads 8 & pids+=($!)
"$BIN/celery" -A config worker --loglevel INFO --concurrency 2 --queues celery --hostname "worker@%h" & pids+=($!)
# Rollouts mostly wait on a cluster or a Docker host: a thread each, on their own queue.
"$BIN/celery" -A config worker --loglevel INFO --pool threads --concurrency 20 --queues rollouts \
  --hostname "rollouts@%h" & pids+=($!)
# Drift checks on their own queue and process: a hung cluster never holds up a build or a rollout.
"$BIN/celery" -A config worker --loglevel INFO --concurrency 1 --queues drift --hostname "drift@%h" & pids+=($!)
"$BIN/celery" -A config beat --loglevel INFO --schedule "$VAR/celerybeat-schedule" & pids+=($!)
# The demo comes alive while you look: the worker builds the demo's versions, then they are deployed
# to dev and staging and a promotion to prod waits for bob. Progress lines start with "demo:"; the
# build and rollout pages show the same live. Already done on an earlier start: nothing to do.
"$BIN/python" manage.py seed_demo --roll-out & demo_pid=$!

sleep 2
cat <<MSG

  Slipway is running:  http://127.0.0.1:$PORT/
  API docs:            http://127.0.0.1:$PORT/api/docs/
  Sign in as alice / alice-slipway (developer), bob / bob-slipway (approver),
  carol / carol-slipway (viewer) or admin / admin-slipway (site admin).
  Press Ctrl-C to stop everything; 'make stop' ends the registry and the demo's model containers.

MSG
# If any of the three dies, stop the others too rather than limp on half-started.
wait -n "${pids[@]}"
