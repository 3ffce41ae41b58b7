#!/usr/bin/env bash
# `make run`: the whole platform on this machine, in the foreground. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=.venv/bin
PORT="${SLIPWAY_PORT:-8000}"
mkdir -p var

# A stable secret per checkout, so sessions and encrypted secrets survive restarts.
if [ -z "${SLIPWAY_SECRET_KEY:-}${SLIPWAY_SECRET_KEY_FILE:-}" ]; then
  [ -s var/secret_key ] || { "$BIN/python" -c 'import secrets; print(secrets.token_urlsafe(50))' > var/secret_key; chmod 600 var/secret_key; }
  export SLIPWAY_SECRET_KEY_FILE="$PWD/var/secret_key"
fi
export SLIPWAY_ALLOWED_HOSTS="${SLIPWAY_ALLOWED_HOSTS:-127.0.0.1,localhost}"

# Redis: the one given, or the local one (started here when installed but stopped).
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/0}"
bash platform/scripts/ensure-services.sh redis
# Builds need a Docker engine, a registry and a base image. Without them the platform still runs
# and each build fails saying what is missing.
export SLIPWAY_DEFAULT_REGISTRY="${SLIPWAY_DEFAULT_REGISTRY:-127.0.0.1:5000}"
if bash platform/scripts/ensure-docker.sh; then
  SLIPWAY_BASE_IMAGE="$(bash platform/scripts/base-image.sh)" && export SLIPWAY_BASE_IMAGE
  if [ "$SLIPWAY_DEFAULT_REGISTRY" = "127.0.0.1:5000" ]; then
    bash platform/scripts/ensure-registry.sh 5000 "$PWD/var/registry"
  fi
else
  echo "slipway: warning: no Docker engine; builds will fail until one answers (see above)." >&2
fi
[ -n "${DATABASE_URL:-}" ] || echo "slipway: DATABASE_URL not set; using SQLite in var/slipway.sqlite3"

"$BIN/python" manage.py migrate --no-input -v0
"$BIN/python" manage.py collectstatic --no-input -v0
"$BIN/python" manage.py seed_demo

pids=()
stop() {
  trap - INT TERM EXIT
  echo; echo "slipway: stopping…"
  kill "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
}
trap stop INT TERM EXIT

"$BIN/gunicorn" config.wsgi --bind "127.0.0.1:$PORT" --workers 2 --threads 8 --access-logfile - \
  --log-level warning & pids+=($!)
"$BIN/celery" -A config worker --loglevel INFO --concurrency 2 --hostname "worker@%h" & pids+=($!)
"$BIN/celery" -A config beat --loglevel INFO --schedule var/celerybeat-schedule & pids+=($!)

sleep 2
cat <<MSG

  Slipway is running:  http://127.0.0.1:$PORT/
  API docs:            http://127.0.0.1:$PORT/api/docs/
  Sign in as alice / alice-slipway (developer), bob / bob-slipway (approver),
  carol / carol-slipway (viewer) or admin / admin-slipway (site admin).
  Press Ctrl-C to stop everything.

MSG
# If any of the three dies, stop the others too rather than limp on half-started.
wait -n "${pids[@]}"
