#!/bin/sh
# Runs one fuzz target for a bounded time: fuzz/run.sh TARGET SECONDS
# Needs cargo-fuzz (cargo install cargo-fuzz) and a nightly toolchain.
set -eu
if [ $# -ne 2 ]; then
    echo "usage: $0 TARGET SECONDS   (targets: $(ls "$(dirname "$0")/fuzz_targets" | sed 's/\.rs$//' | tr '\n' ' '))" >&2
    exit 2
fi
target=$1
seconds=$2
cd "$(dirname "$0")"

# New inputs go to a scratch corpus (target/ is ignored by git); the checked-in seeds are read only.
mkdir -p "target/corpus-$target"
exec cargo +nightly fuzz run --debug-assertions "$target" "target/corpus-$target" "corpus/$target" -- -max_total_time="$seconds" -max_len=4096 -timeout=10
