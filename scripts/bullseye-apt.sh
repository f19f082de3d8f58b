#!/usr/bin/env bash
# Makes Debian 11 (bullseye) packages reachable for the VM tests: its 5.10 cloud kernels and
# linux-source-5.10, and nothing else. Adds, when missing, an apt source for the suite bullseye
# (on the mirror the machine's own sources already use) and a preferences file that pins every
# other bullseye package to -1, so nothing the host installs or upgrades can come from it. Then
# refreshes the package lists once.
#
# bullseye only, not bullseye-security: the point release's kernel (5.10.0-32, 5.10.223) and
# linux-source-5.10 of the same version are there, and stay put, while bullseye-security moves
# every few weeks and its mirror here lacks the -unsigned cloud images (404).
#
#   scripts/bullseye-apt.sh        # as root; prints what it does, idempotent
#   . scripts/bullseye-apt.sh      # only defines ensure_bullseye_apt (scripts/test.sh)

BULLSEYE_SOURCES=/etc/apt/sources.list.d/conntrace-bullseye.sources
BULLSEYE_PREFS=/etc/apt/preferences.d/conntrace-bullseye

# Every URI of the machine's enabled apt sources, one a line (one-line and deb822 formats).
_apt_uris() {
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        sed -n -E 's/^[[:space:]]*deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+).*/\2/p' "$f"
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] && [ "$f" != "$BULLSEYE_SOURCES" ] || continue
        awk 'tolower($1) == "uris:" { for (i = 2; i <= NF; i++) print $i }' "$f"
    done
}

ensure_bullseye_apt() {
    local uris main keyring want_sources want_prefs changed=0
    uris=$(_apt_uris)
    # The Debian archive, as the host already names it.
    main=$(grep -E '/debian/?$' <<<"$uris" | head -n1 || true)
    if [ -z "$main" ]; then
        echo "bullseye-apt: no apt source of the machine points at a Debian archive (…/debian);" \
            "cannot add bullseye" >&2
        return 1
    fi
    keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    [ -f "$keyring" ] || { echo "bullseye-apt: $keyring missing (package debian-archive-keyring)" >&2; return 1; }
    want_sources="# Added by conntrace's scripts/bullseye-apt.sh: Debian 11 kernels for the VM tests.
# $BULLSEYE_PREFS pins everything here but those kernels to -1.
Types: deb
URIs: $main
Suites: bullseye
Components: main
Signed-By: $keyring"
    # "*" is the general form (-1: never a candidate); the named globs are the specific form,
    # whose first match wins, so only these packages can be downloaded from bullseye (":any":
    # a glob without an architecture matches native packages only, and arm64 is foreign here).
    want_prefs="# Added by conntrace's scripts/bullseye-apt.sh: nothing from bullseye but 5.10 kernels.
Package: *
Pin: release n=bullseye
Pin-Priority: -1

Package: linux-image-5.10.0-*:any linux-source-5.10
Pin: release n=bullseye
Pin-Priority: 100"
    if [ "$(cat "$BULLSEYE_PREFS" 2>/dev/null)" != "$want_prefs" ]; then
        echo "bullseye-apt: writing $BULLSEYE_PREFS (bullseye pinned to -1 but for 5.10 kernels)" >&2
        printf '%s\n' "$want_prefs" >"$BULLSEYE_PREFS"
        changed=1
    fi
    if [ "$(cat "$BULLSEYE_SOURCES" 2>/dev/null)" != "$want_sources" ]; then
        echo "bullseye-apt: writing $BULLSEYE_SOURCES (bullseye from $main)" >&2
        printf '%s\n' "$want_sources" >"$BULLSEYE_SOURCES"
        changed=1
    fi
    # Lists missing although the files are there (a fresh clone of the machine's lists, or an
    # update that failed): refresh too. The output is captured first: grep -q would close the
    # pipe early and pipefail would call that a failure.
    local policy
    policy=$(apt-cache policy 2>/dev/null || true)
    if [ $changed = 1 ] || ! grep -q 'n=bullseye,' <<<"$policy"; then
        echo "bullseye-apt: apt-get update" >&2
        apt-get update -q >/dev/null
    fi
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    [ "$(id -u)" = 0 ] || { echo "bullseye-apt: run it as root (it writes to /etc/apt)" >&2; exit 1; }
    ensure_bullseye_apt
fi
