#!/usr/bin/env bash
# base-image.sh: prints the base image that model images are built FROM, making sure it exists.
#
# SLIPWAY_BASE_IMAGE when set (pulled if missing); else python:3.11-slim when the engine has it or
# can pull it; else a Debian bookworm image with Python 3.11 made locally once with debootstrap
# (slipway/python:3.11-bookworm) and reused. Messages go to stderr; only the name to stdout.
set -euo pipefail
# shellcheck source=_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
local_image=slipway/python:3.11-bookworm

if [[ -n ${SLIPWAY_BASE_IMAGE:-} ]]; then
    bash "$here/ensure-base-image.sh" "$SLIPWAY_BASE_IMAGE" >&2
    echo "$SLIPWAY_BASE_IMAGE"
    exit 0
fi
if docker image inspect python:3.11-slim >/dev/null 2>&1; then
    echo python:3.11-slim
    exit 0
fi
if docker image inspect "$local_image" >/dev/null 2>&1; then
    echo "$local_image"
    exit 0
fi
if timeout "${SLIPWAY_PULL_TIMEOUT:-15}" docker pull -q python:3.11-slim >/dev/null 2>&1; then
    log "pulled python:3.11-slim"
    echo python:3.11-slim
    exit 0
fi
log "python:3.11-slim cannot be pulled here; making $local_image locally (once)"
SLIPWAY_BASE_PULL=0 bash "$here/ensure-base-image.sh" "$local_image" >&2
echo "$local_image"
