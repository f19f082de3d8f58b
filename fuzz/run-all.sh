#!/bin/sh
# Runs every fuzz target for a bounded time and fails on the first crash:
#   fuzz/run-all.sh SECONDS        (CI uses ~20 s per target; scripts/test.sh runs it)
# Installs a nightly toolchain and cargo-fuzz first if they are missing. A crash leaves its
# input in fuzz/artifacts/TARGET/; reproduce it with `cargo +nightly fuzz run TARGET FILE`.
set -eu
if [ $# -ne 1 ]; then
    echo "usage: $0 SECONDS   (seconds of fuzzing per target)" >&2
    exit 2
fi
seconds=$1
cd "$(dirname "$0")"

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

# Build every target once, with overflow checks and debug assertions on: the parsers promise
# no arithmetic overflow, so an overflow must be a crash here too.
cargo +nightly fuzz build --debug-assertions

for source in fuzz_targets/*.rs; do
    target=$(basename "$source" .rs)
    # Inputs as large as the biggest real one: a probe object or a slice of BTF is tens of KiB.
    case $target in
        btf_parse | probe_object) max_len=65536 ;;
        *) max_len=4096 ;;
    esac
    # New inputs go to a scratch corpus (target/ is ignored by git); the checked-in seeds are
    # read only. cargo fuzz exits non-zero on a crash, a leak, a timeout or running out of
    # memory. Its chatty log goes to a file, shown when it fails.
    mkdir -p "target/corpus-$target"
    log=target/fuzz-$target.log
    if ! cargo +nightly fuzz run --debug-assertions "$target" "target/corpus-$target" "corpus/$target" -- \
        -max_total_time="$seconds" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 >"$log" 2>&1; then
        tail -n 60 "$log" >&2
        echo "fuzz/run-all.sh: fuzz target $target failed (full log: fuzz/$log)" >&2
        exit 1
    fi
    echo "$target: $(grep -E '^Done [0-9]+ runs' "$log" | tail -n 1)"
done
echo "fuzz/run-all.sh: every target ran $seconds s without a crash"
