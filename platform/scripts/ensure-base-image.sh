#!/usr/bin/env bash
# ensure-base-image.sh NAME:TAG
#
# Makes sure the local Docker Engine has image NAME:TAG, a Debian base with
# Python 3 (python3, python3-venv, python3-pip, ca-certificates; `python`
# resolves like in python:3.11-slim; PATH, LANG=C.UTF-8 and CMD ["python3"]).
# When missing: tries `docker pull` (only for names that are safe to pull, see
# SLIPWAY_BASE_PULL), else builds it with debootstrap from the Debian mirror
# this machine's apt uses, and `docker import`s it. Starts dockerd if needed.
#
# Environment:
#   SLIPWAY_BASE_SUITE (bookworm)     Debian suite to bootstrap
#   SLIPWAY_DEBIAN_MIRROR             mirror URI (default: read from /etc/apt/sources.list*)
#   SLIPWAY_BASE_PULL (auto)          1: always try `docker pull` first; 0: never;
#                                     auto: only for official images (no "/" in NAME) and
#                                     names with a registry host (never a Docker Hub user's)
#   SLIPWAY_PULL_TIMEOUT (15)         seconds for that pull attempt
#   SLIPWAY_BASE_UPGRADE (1)          1: apply the suite's -updates/-security fixes; 0: skip
#   SLIPWAY_BUILD_TMP (/var/tmp)      where the temporary root filesystem is made
set -euo pipefail
# shellcheck source=_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if [[ $# -ne 1 || $1 == -* ]]; then
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
    exit 2
fi
image=$1
[[ $image == *:* && ${image##*:} != */* ]] || die "give the image as NAME:TAG (with an explicit tag), got '$image'"
suite=${SLIPWAY_BASE_SUITE:-bookworm}

image_present() { docker image inspect "$image" >/dev/null 2>&1; }

report() {
    local size created
    size=$(docker image inspect -f '{{.Size}}' "$image")
    created=$(docker image inspect -f '{{.Created}}' "$image")
    log "image $image present: $((size / 1000000)) MB, created ${created%%.*} ($1, $(elapsed))"
}

"$here/ensure-docker.sh"
if image_present; then
    report "already there"
    exit 0
fi

with_lock "$(lock_dir)/slipway-base-image.lock"
if image_present; then # built by a concurrent caller while we waited
    report "built by a concurrent run"
    exit 0
fi

# --- 1. pull ------------------------------------------------------------------
first=${image%%/*}
pull=${SLIPWAY_BASE_PULL:-auto}
if [[ $pull == auto ]]; then
    pull=0
    if [[ $image != */* ]] || [[ $first == *.* || $first == *:* || $first == localhost ]]; then
        pull=1
    fi
    [[ $pull -eq 1 ]] || log "not pulling $image: it would come from Docker Hub user '$first', not us (SLIPWAY_BASE_PULL=1 forces it)"
fi
if [[ $pull == 1 ]]; then
    log "trying docker pull $image (${SLIPWAY_PULL_TIMEOUT:-15}s limit)"
    if timeout "${SLIPWAY_PULL_TIMEOUT:-15}" docker pull -q "$image" >&2 2>/dev/null && image_present; then
        report "pulled"
        exit 0
    fi
    log "pull failed; building $image locally"
fi

# --- 2. build with debootstrap ----------------------------------------------
is_root || die "building $image needs root (debootstrap): run 'sudo $0 $image'"
is_debian || die "building $image needs Debian's debootstrap and apt; this is not a Debian system"
need_cmd debootstrap debootstrap
mirror=$(debian_mirror "$suite") ||
    die "found no Debian mirror for suite '$suite' (Types: deb, component main) in /etc/apt/sources.list or /etc/apt/sources.list.d/; set SLIPWAY_DEBIAN_MIRROR=http://<mirror>/debian"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[[ -r $keyring ]] || apt_install debian-archive-keyring

build_tmp=${SLIPWAY_BUILD_TMP:-/var/tmp}
mkdir -p "$build_tmp"
work=$(mktemp -d "$build_tmp/slipway-base.XXXXXX")
rootfs=$work/rootfs

# Unmount whatever debootstrap may have left mounted (proc, sys, a bind-mounted
# /dev when run inside a container), then delete without crossing filesystems.
unmount_rootfs() {
    local m
    while read -r m; do
        umount -l "$m" 2>/dev/null || true
    done < <(awk -v r="$rootfs" '$2 == r || index($2, r "/") == 1 { print $2 }' /proc/mounts | sort -r)
}
cleanup() {
    unmount_rootfs
    rm -rf --one-file-system "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

arch=$(dpkg --print-architecture)
log "debootstrap $suite ($arch, minbase) from $mirror into $rootfs (about a minute)"
if ! debootstrap --variant=minbase --arch="$arch" --keyring="$keyring" \
    --include=python3,python3-venv,python3-pip,ca-certificates \
    "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1; then
    tail -n 30 "$work/debootstrap.log" | sed 's/^/    /' >&2
    [[ -f $rootfs/debootstrap/debootstrap.log ]] && tail -n 30 "$rootfs/debootstrap/debootstrap.log" | sed 's/^/    /' >&2
    die "debootstrap of $suite from $mirror failed (log above)"
fi
unmount_rootfs
log "debootstrap done ($(elapsed))"

# apt sources of the image: the suite plus its -updates and -security suites
# when this machine's apt knows mirrors for them. Then take their fixes.
{
    printf 'deb %s %s main\n' "$mirror" "$suite"
    if m=$(debian_mirror "$suite-updates"); then printf 'deb %s %s-updates main\n' "$m" "$suite"; fi
    if m=$(debian_mirror "$suite-security"); then printf 'deb %s %s-security main\n' "$m" "$suite"; fi
} >"$rootfs/etc/apt/sources.list"
if [[ ${SLIPWAY_BASE_UPGRADE:-1} == 1 ]] && [[ $(wc -l <"$rootfs/etc/apt/sources.list") -gt 1 ]]; then
    log "applying $suite-updates/-security fixes"
    mount -t proc proc "$rootfs/proc" ||
        die "mounting /proc in the image's root needs privileges (CAP_SYS_ADMIN; not given inside an unprivileged container): run this as root on the host, or skip the updates with SLIPWAY_BASE_UPGRADE=0"
    run_logged "apt-get upgrade in the image" chroot "$rootfs" env DEBIAN_FRONTEND=noninteractive \
        sh -c 'apt-get -q update && apt-get -q -y --no-install-recommends upgrade && apt-get clean' ||
        die "could not apply $suite updates in the image (SLIPWAY_BASE_UPGRADE=0 skips this)"
    unmount_rootfs
fi

for f in usr/bin/python3 usr/sbin/useradd usr/bin/pip3; do
    [[ -e $rootfs/$f ]] || die "debootstrap result lacks /$f; the image would be unusable"
done
ln -sfn /usr/bin/python3 "$rootfs/usr/local/bin/python"

# Keep it small and free of host details.
rm -rf --one-file-system "${rootfs:?}"/dev/* "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin \
    "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/debconf/*-old "$rootfs"/var/lib/dpkg/*-old \
    "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/var/log/apt/* "$rootfs"/tmp/* "$rootfs"/var/tmp/*
find "$rootfs/var/log" -type f -exec truncate -s 0 {} +
: >"$rootfs/etc/resolv.conf"
: >"$rootfs/etc/hostname"
mkdir -p "$rootfs/var/lib/apt/lists/partial"
# Like the Docker official Debian images: never keep downloaded .debs.
printf '%s\n' 'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };' \
    'APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };' \
    'Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";' >"$rootfs/etc/apt/apt.conf.d/docker-clean"

log "docker import $image"
tar --numeric-owner -C "$rootfs" -c . |
    docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["python3"]' \
        --change "LABEL org.opencontainers.image.description=\"slipway base: Debian $suite minbase + python3 (debootstrap)\"" \
        --message "slipway ensure-base-image.sh: debootstrap $suite" \
        - "$image" >/dev/null || die "docker import of $image failed"

# Smoke test: the interpreter runs and venv (ensurepip) works.
docker run --rm --network none "$image" sh -c 'python --version && python3 -m venv /tmp/v && /tmp/v/bin/python -m pip --version >/dev/null' >&2 ||
    die "image $image was built but python/venv does not work in it"
report "built"
