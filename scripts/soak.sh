#!/usr/bin/env bash
# Soak: SECONDS (default 60) of connections at the highest rate this machine manages, to a
# loopback listener that conntrace --json -P PORT --pages 1 traces, its output piped into a
# deliberately slow reader (~400 KB/s). Passes when conntrace keeps running and exits 0 on
# SIGINT, every event was printed or reported lost (printed + lost = generated, exactly), peak
# RSS stays under 16 MB and RSS is flat (last per-second sample within 512 kB of the one after
# a 2 s warm-up). The same harness runs 10 s in CI: `cargo test --release --test flood`.
#
#   sudo scripts/soak.sh          # 60 s
#   sudo scripts/soak.sh 600      # ten minutes
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
case $seconds in
    '' | *[!0-9]*) echo "usage: scripts/soak.sh [SECONDS]   (a whole number, at least 3)" >&2; exit 2 ;;
esac
if [ "$(id -u)" != 0 ]; then
    echo "scripts/soak.sh: run it as root: conntrace loads BPF programs" >&2
    exit 1
fi

echo "soak: building conntrace and the flood harness (release)"
cargo build -q --release --bin conntrace
if cargo test -q --release --test flood -- --seconds "$seconds"; then
    echo "soak: PASS ($seconds s)"
else
    echo "soak: FAIL ($seconds s): see above" >&2
    exit 1
fi
