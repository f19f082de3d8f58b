#!/usr/bin/env bash
# Builds (once) the x86_64 5.10 kernel without BTF that `vmtest --kernel 5.10-nobtf` boots:
# Debian 11's linux-source-5.10, `make tinyconfig`, then vmtest/kernels/5.10-nobtf-x86_64.config
# on top, the way embedded kernels are configured. Everything lives outside the clone:
#
#   $CONNTRACE_CACHE/kernels/src/linux-source-5.10_*.deb      the source, downloaded once
#   $CONNTRACE_CACHE/kernels/build-5.10-nobtf-amd64/           the build tree
#   $CONNTRACE_CACHE/kernels/5.10-nobtf-amd64/bzImage          the result, with config, key
#
# The key is a hash of the config fragment, the source package and this script's recipe: a
# change to any of them rebuilds, anything else reuses. The last line on stdout is the
# bzImage's path (progress goes to stderr).
#
#   scripts/build-nobtf-kernel.sh       # as root (it may add the bullseye apt source)
#   . scripts/build-nobtf-kernel.sh     # only defines build_nobtf_kernel (scripts/test.sh)

_nobtf_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/bullseye-apt.sh
. "$_nobtf_here/bullseye-apt.sh"

# Bump when the steps below change what gets built.
NOBTF_RECIPE=1

_nobtf_say() { echo "build-nobtf-kernel: $*" >&2; }
_nobtf_fail() { _nobtf_say "FAILED: $*"; return 1; }

build_nobtf_kernel() {
    local cache=${CONNTRACE_CACHE:-/var/cache/conntrace}
    local fragment=$_nobtf_here/../vmtest/kernels/5.10-nobtf-x86_64.config
    local srcdir=$cache/kernels/src
    local build=$cache/kernels/build-5.10-nobtf-amd64
    local out=$cache/kernels/5.10-nobtf-amd64
    local deb key tree started
    [ -f "$fragment" ] || { _nobtf_fail "no config fragment at $fragment"; return 1; }
    fragment=$(realpath "$fragment")
    mkdir -p "$srcdir" "$out" || { _nobtf_fail "cannot create $srcdir; set CONNTRACE_CACHE"; return 1; }

    # The source: the .deb already downloaded, else the newest linux-source-5.10 of bullseye.
    # A cached .deb is kept on purpose (a new Debian upload must not rebuild in CI); delete it
    # to move on.
    deb=$(find "$srcdir" -maxdepth 1 -name 'linux-source-5.10_*_all.deb' | sort -V | tail -n1)
    if [ -z "$deb" ]; then
        ensure_bullseye_apt || return 1
        _nobtf_say "downloading linux-source-5.10 into $srcdir"
        # _apt cannot write into root's cache directory: download into a temporary one it can.
        local tmp
        tmp=$(mktemp -d)
        chmod 777 "$tmp"
        (cd "$tmp" && apt-get download -q linux-source-5.10 >&2) ||
            { rm -rf "$tmp"; _nobtf_fail "apt-get download linux-source-5.10 failed"; return 1; }
        mv "$tmp"/linux-source-5.10_*_all.deb "$srcdir/" && rm -rf "$tmp"
        deb=$(find "$srcdir" -maxdepth 1 -name 'linux-source-5.10_*_all.deb' | sort -V | tail -n1)
        [ -n "$deb" ] || { _nobtf_fail "apt-get download left no linux-source-5.10 .deb"; return 1; }
    fi

    key=$( (echo "recipe $NOBTF_RECIPE"; basename "$deb"; cat "$fragment") | sha256sum | cut -d' ' -f1)
    if [ -f "$out/bzImage" ] && [ "$(cat "$out/key" 2>/dev/null)" = "$key" ]; then
        _nobtf_say "cached $out/bzImage ($(basename "$deb"), key ${key:0:12})"
        echo "$out/bzImage"
        return 0
    fi

    local need=()
    local pkg
    for pkg in gcc make flex bison bc libelf-dev libssl-dev xz-utils; do
        dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
    done
    if [ ${#need[@]} -gt 0 ]; then
        _nobtf_say "installing build tools: ${need[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >&2 ||
            { _nobtf_fail "apt-get install ${need[*]} failed"; return 1; }
    fi

    started=$SECONDS
    tree=$build/linux-source-5.10
    if [ "$(cat "$build/source" 2>/dev/null)" != "$(basename "$deb")" ]; then
        _nobtf_say "unpacking $(basename "$deb") into $build"
        rm -rf "$build" && mkdir -p "$build"
        dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$build" ./usr/src/linux-source-5.10.tar.xz ||
            { _nobtf_fail "cannot take the tarball out of $deb"; return 1; }
        tar -xJf "$build/usr/src/linux-source-5.10.tar.xz" -C "$build" ||
            { _nobtf_fail "cannot unpack the kernel tarball"; return 1; }
        rm -rf "$build/usr"
        basename "$deb" >"$build/source"
    fi
    [ -f "$tree/Makefile" ] || { _nobtf_fail "$tree has no Makefile"; return 1; }

    # ARCH=x86_64, not x86: with x86, allnoconfig would answer "64-bit kernel" with no.
    local mk=(make -C "$tree" ARCH=x86_64 -s)
    _nobtf_say "configuring: tinyconfig + $(basename "$fragment"), olddefconfig"
    "${mk[@]}" tinyconfig >&2 || { _nobtf_fail "make tinyconfig failed"; return 1; }
    (cd "$tree" && ARCH=x86_64 scripts/kconfig/merge_config.sh -m .config "$fragment" >/dev/null) ||
        { _nobtf_fail "merge_config.sh failed"; return 1; }
    "${mk[@]}" olddefconfig >&2 || { _nobtf_fail "make olddefconfig failed"; return 1; }

    # Kconfig drops what it cannot satisfy without a word: check every line of the fragment.
    local line name missing=()
    while IFS= read -r line; do
        case $line in
        CONFIG_*=*)
            grep -qxF "$line" "$tree/.config" || missing+=("$line")
            ;;
        "# CONFIG_"*" is not set")
            name=${line#"# "}
            name=${name%" is not set"}
            grep -q "^$name=" "$tree/.config" && missing+=("$line")
            ;;
        esac
    done <"$fragment"
    if [ ${#missing[@]} -gt 0 ]; then
        _nobtf_fail "the final .config does not have: ${missing[*]} (a dependency is missing from $fragment)"
        return 1
    fi

    _nobtf_say "building bzImage (nice -n 10, -j2; log in $build/build.log)"
    if ! nice -n 10 make -C "$tree" ARCH=x86_64 -j2 bzImage >"$build/build.log" 2>&1; then
        tail -n 30 "$build/build.log" >&2
        _nobtf_fail "the kernel build failed; see $build/build.log"
        return 1
    fi
    # Copy then rename, so an interrupted build never leaves a truncated kernel as a cache hit.
    cp "$tree/arch/x86/boot/bzImage" "$out/bzImage.partial" &&
        cp "$tree/.config" "$out/config" &&
        basename "$deb" >"$out/package" &&
        mv "$out/bzImage.partial" "$out/bzImage" &&
        echo "$key" >"$out/key" || { _nobtf_fail "cannot write to $out"; return 1; }
    _nobtf_say "built $out/bzImage in $((SECONDS - started)) s"
    echo "$out/bzImage"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    [ "$(id -u)" = 0 ] || { echo "build-nobtf-kernel: run it as root (it may add an apt source)" >&2; exit 1; }
    build_nobtf_kernel
fi
