#!/usr/bin/env bash
# Runs conntrace's whole test suite on a fresh Debian machine, as root, installing what the
# tests need first (apt packages, rust targets, rustfmt and clippy, nightly + cargo-fuzz).
# Downloads (kernel packages) are cached outside the clone, in $CONNTRACE_CACHE (default
# /var/cache/conntrace).
#
#   sudo scripts/test.sh            # everything
#   sudo scripts/test.sh --quick    # no VMs, no fuzzing
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
[ "${1:-}" = "--quick" ] && quick=1
export CONNTRACE_CACHE=${CONNTRACE_CACHE:-/var/cache/conntrace}
export CONNTRACE_VM_CACHE=${CONNTRACE_VM_CACHE:-$CONNTRACE_CACHE/vm}
export BPF_ASM_REQUIRE_LLVM=1
mkdir -p "$CONNTRACE_CACHE"

fail() { echo "scripts/test.sh: $*" >&2; exit 1; }

# Each step's elapsed seconds, printed as a table when the script ends (also on a failure), so
# CI's time can be watched: it must stay under 45 min on a fresh machine, 15 min warm.
times=()
current=
step_done() {
    [ -n "$current" ] && times+=("$(printf '%6d s  %s' $((SECONDS - started)) "$current")")
    current=
}
step() {
    step_done
    current=$1
    started=$SECONDS
    printf '\n=== %s (%s)\n' "$1" "$(date +%T)"
}
summary() {
    local status=$?
    [ -n "$current" ] && [ $status != 0 ] && current="$current (FAILED)"
    step_done
    [ ${#times[@]} -gt 0 ] || return 0
    printf '\n=== time per step\n'
    printf '%s\n' "${times[@]}"
    printf '%6d s  total\n' "$SECONDS"
}
trap summary EXIT

# Debian 11's 5.10 in the VMs: the bullseye apt source (pinned: only the 5.10 kernels can come
# from it) and the x86_64 kernel without BTF, built once into $CONNTRACE_CACHE/kernels and
# reused while its config is unchanged. On by default; CONNTRACE_VM_510=0 skips it and the
# three 5.10 VMs (for a quicker run; CI keeps them).
prepare_510() {
    # shellcheck source=scripts/build-nobtf-kernel.sh
    . scripts/build-nobtf-kernel.sh
    ensure_bullseye_apt
    build_nobtf_kernel >/dev/null
}

if [ "$(id -u)" != 0 ]; then
    echo "scripts/test.sh: run it as root: the tests load BPF programs and boot VMs" >&2
    exit 1
fi

step "installing test dependencies"
need=()
# docker.io: tests/containers.rs (it starts its own dockerd when none runs); prometheus:
# the metrics host test (a real Prometheus on loopback, and promtool); nginx-light, wrk,
# libbpf-tools (tcplife), hyperfine and jq: the benchmarks' short pass (scripts/bench.sh).
for pkg in llvm-19 qemu-system-x86 qemu-system-arm cpio file musl-tools bpftrace bpftool docker.io prometheus \
    nginx-light wrk libbpf-tools hyperfine jq; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
rustup target add x86_64-unknown-linux-musl aarch64-unknown-linux-musl >/dev/null
rustup component add rustfmt clippy >/dev/null

# Before the long steps: a formatting slip or a lint should fail CI in a minute, not after the VMs.
step "formatting and lints (rustfmt, clippy -D warnings)"
cargo fmt --all --check || fail "code is not formatted as rustfmt would: run cargo fmt --all"
cargo clippy --workspace --all-targets -- -D warnings || fail "clippy warnings (above)"
# The fuzz crate is outside the workspace and needs nightly; fuzz/run-all.sh installs nightly
# (minimal profile, so clippy is added here). On a machine without nightly yet, skip it.
cargo fmt --check --manifest-path fuzz/Cargo.toml || fail "fuzz/ is not formatted: run cargo fmt in fuzz/"
if rustup run nightly rustc --version >/dev/null 2>&1; then
    rustup component add --toolchain nightly clippy >/dev/null
    (cd fuzz && cargo +nightly clippy --all-targets -- -D warnings) || fail "clippy warnings in fuzz/ (above)"
else
    echo "fuzz/: clippy skipped: no nightly toolchain yet (the fuzzing step installs it)"
fi

step "unit tests, assembler oracle, host integration tests, containers, metrics"
cargo test --workspace --release 2>&1

# Ratios are not checked (CI machines are noisy): it fails if a measurement cannot run or
# conntrace loses or misses an event at its low rate.
step "benchmarks, short pass: every measurement runs, nothing lost"
scripts/bench.sh --short

step "static release binaries"
cargo build --release --target x86_64-unknown-linux-musl --bin conntrace
cargo build --release --target aarch64-unknown-linux-musl --bin conntrace
for t in x86_64 aarch64; do
    bin=target/$t-unknown-linux-musl/release/conntrace
    file "$bin" 2>/dev/null | grep -Eq 'statically linked|static-pie linked' || { echo "$bin is not static" >&2; exit 1; }
    echo "$bin: $(stat -c %s "$bin") bytes, static"
done

if [ $quick = 1 ]; then
    exit 0
fi

vm_matrix=--all
if [ "${CONNTRACE_VM_510:-1}" = 1 ]; then
    step "Debian 11 5.10: bullseye apt source, x86_64 kernel without BTF (built once, then cached)"
    prepare_510
    vm_matrix=--all-with-510
else
    vm_matrix=--all-without-510
fi

step "distro kernels in VMs: both backends, fallbacks, cleanup, faults, no BTF"
cargo run -q -p vmtest --release -- "$vm_matrix"

step "fuzzing (bounded)"
fuzz/run-all.sh "${CONNTRACE_FUZZ_SECONDS:-25}"
