#!/bin/sh
# The browser tests drive Debian's chromium with playwright (playwright's own browser download
# is not used: many build machines cannot fetch it). Called by `./dev test` and CI: installs
# chromium and a font from Debian packages when missing, which needs root; fails clearly otherwise.
#
#   TRACKER_CHROMIUM   the browser binary (default /usr/bin/chromium)
set -eu
CHROMIUM="${TRACKER_CHROMIUM:-/usr/bin/chromium}"
PACKAGES="chromium fonts-dejavu-core"
# apt/dpkg locks may be held by another install running on the same machine: wait for them (s).
LOCK_TIMEOUT=600

if [ -x "$CHROMIUM" ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "browser.sh: $CHROMIUM is missing; install it as root (apt-get install $PACKAGES)" >&2
    echo "            or point TRACKER_CHROMIUM at a Chromium binary" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "browser.sh: $CHROMIUM is missing and this is not a Debian-like system (no apt-get);" >&2
    echo "            install Chromium and set TRACKER_CHROMIUM to its binary" >&2
    exit 1
fi
echo "browser.sh: installing $PACKAGES from Debian packages ..." >&2
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=$LOCK_TIMEOUT update -qq >&2
# shellcheck disable=SC2086  # PACKAGES is a word list
apt-get -o DPkg::Lock::Timeout=$LOCK_TIMEOUT install -y -qq --no-install-recommends $PACKAGES >&2
if [ ! -x "$CHROMIUM" ]; then
    echo "browser.sh: apt-get installed chromium, but $CHROMIUM is still missing" >&2
    exit 1
fi
