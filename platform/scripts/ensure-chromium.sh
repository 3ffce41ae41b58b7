#!/usr/bin/env bash
# ensure-chromium.sh [--smoke]
#
# Makes sure Chromium is installed (Debian package chromium, /usr/bin/chromium)
# with fonts that render text properly (fonts-dejavu-core, fonts-liberation),
# and prints its version. Right after installing, or with --smoke, it also
# renders a page headless to prove the browser runs.
# Use it from Playwright with executable_path=/usr/bin/chromium and
# args ["--no-sandbox", "--disable-gpu"]; never `playwright install`.
#
# Environment:
#   SLIPWAY_CHROMIUM (/usr/bin/chromium)   browser to check
set -euo pipefail
# shellcheck source=_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"

smoke=0
case "${1:-}" in
"") ;;
--smoke) smoke=1 ;;
*)
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
    exit 2
    ;;
esac
chromium=${SLIPWAY_CHROMIUM:-/usr/bin/chromium}
fonts=(fonts-dejavu-core fonts-liberation)

if [[ ! -x $chromium ]]; then
    [[ $chromium == /usr/bin/chromium ]] || die "SLIPWAY_CHROMIUM=$chromium is not an executable file"
    apt_install chromium "${fonts[@]}"
    [[ -x $chromium ]] || die "package chromium is installed but $chromium is missing"
    smoke=1
fi

if is_debian; then
    missing=()
    for p in "${fonts[@]}"; do pkg_installed "$p" || missing+=("$p"); done
    if [[ ${#missing[@]} -gt 0 ]]; then
        if is_root; then
            apt_install "${missing[@]}"
        else
            warn "fonts ${missing[*]} are missing (text may render as boxes): run 'sudo apt-get install -y ${missing[*]}'"
        fi
    fi
fi

# Debian's wrapper script may print shell noise on stderr (e.g. when /dev/shm is
# mounted twice); only stdout matters here.
version=$(timeout 30 "$chromium" --version 2>/dev/null) || die "$chromium --version failed; try running it by hand to see why (missing libraries?)"

if [[ $smoke -eq 1 ]]; then
    profile=$(mktemp -d "${TMPDIR:-/tmp}/slipway-chromium.XXXXXX")
    trap 'rm -rf "$profile"' EXIT
    dom=$(timeout 60 "$chromium" --headless --no-sandbox --disable-gpu --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --user-data-dir="$profile" --dump-dom 'data:text/html,<p>slipway-ok</p>' 2>"$profile.err") || true
    if [[ $dom != *slipway-ok* ]]; then
        tail -n 20 "$profile.err" | sed 's/^/    /' >&2
        rm -f "$profile.err"
        die "$chromium is installed but could not render a page headless (output above)"
    fi
    rm -f "$profile.err"
    log "headless render ok"
fi
log "$version at $chromium ($(elapsed))"
