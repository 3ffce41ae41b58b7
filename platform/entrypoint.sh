#!/bin/sh
# One image, six roles: `web` (migrates unless told not to, then serves), `worker` (builds, webhooks),
# `rollouts` (rollouts, on a queue of their own, each in a thread: they mostly wait on a cluster or a
# Docker host), `drift` (the drift checks, on a queue of their own so a hung cluster never holds up a
# build or a rollout), `beat`, and `migrate` (for running migrations once, as a Kubernetes Job, before
# new web pods start).
#
# Environment: PORT (8000), SLIPWAY_BIND_ADDRESS (0.0.0.0), WEB_CONCURRENCY (3),
# WORKER_CONCURRENCY (2), ROLLOUT_CONCURRENCY (20 rollouts at once), SLIPWAY_WORKER_NAME (worker@%h),
# SLIPWAY_MIGRATE_ON_START (true).
set -eu
case "${1:-web}" in
  web)
    case "${SLIPWAY_MIGRATE_ON_START:-true}" in
      1 | true | yes | on) python manage.py migrate --no-input ;;
      *) ;;
    esac
    exec gunicorn config.wsgi --config platform/gunicorn.conf.py \
      --bind "${SLIPWAY_BIND_ADDRESS:-0.0.0.0}:${PORT:-8000}" --workers "${WEB_CONCURRENCY:-3}" --threads 8 ;;
  migrate)
    exec python manage.py migrate --no-input ;;
  worker)
    exec celery -A config worker --loglevel INFO --concurrency "${WORKER_CONCURRENCY:-2}" --queues celery \
      --hostname "${SLIPWAY_WORKER_NAME:-worker@%h}" ;;
  rollouts)
    exec celery -A config worker --loglevel INFO --pool threads --concurrency "${ROLLOUT_CONCURRENCY:-20}" \
      --queues rollouts --hostname "${SLIPWAY_WORKER_NAME:-rollouts@%h}" ;;
  drift)
    exec celery -A config worker --loglevel INFO --concurrency 1 --queues drift \
      --hostname "${SLIPWAY_WORKER_NAME:-drift@%h}" ;;
  beat)
    exec celery -A config beat --loglevel INFO --schedule /var/lib/slipway/celerybeat-schedule ;;
  *)
    exec "$@" ;;
esac
