#!/bin/sh
# One image, three roles: `web` (migrates, then serves), `worker`, `beat`.
set -eu
case "${1:-web}" in
  web)
    python manage.py migrate --no-input
    exec gunicorn config.wsgi --bind "0.0.0.0:${PORT:-8000}" --workers "${WEB_CONCURRENCY:-3}" --threads 8 \
      --access-logfile - ;;
  worker)
    exec celery -A config worker --loglevel INFO --concurrency "${WORKER_CONCURRENCY:-2}" ;;
  beat)
    exec celery -A config beat --loglevel INFO --schedule /var/lib/slipway/celerybeat-schedule ;;
  *)
    exec "$@" ;;
esac
