#!/usr/bin/env bash
# conntrace's benchmarks against bpftrace, on this machine, as root; prints one table.
#
#   scripts/bench.sh                 # everything, a few minutes
#   CONNTRACE_BENCH_COUNT=20000 scripts/bench.sh   # a shorter load
#
# 1 start-up (hyperfine), 2 peak RSS under load, 3 loopback connection rate and loss with no
# tracer / conntrace --json / bpftrace, 4 decode+format ns/event (benches/decode_format.rs),
# 5 binary size (static musl build vs bpftrace + its shared libraries), 6 BTF parse time
# (examples/btf_bench.rs). The load is ctload (ctload/), on 127.0.0.1 and ::1 only; both
# tracers filter on the benchmark port so other work on the machine does not skew the counts.
#
# Sysctls: none are changed. ctload's server resets each connection after the client's FIN,
# so neither side enters TIME_WAIT and the default ephemeral port range suffices; the script
# prints net.ipv4.tcp_tw_reuse and ip_local_port_range, and checks no TIME_WAIT socket is left.
set -euo pipefail
cd "$(dirname "$0")/.."

PORT=${CONNTRACE_BENCH_PORT:-47319}
COUNT=${CONNTRACE_BENCH_COUNT:-100000}
STARTUP_RUNS=${CONNTRACE_BENCH_STARTUP_RUNS:-20}
# Longest any one load run may take before it is called a failure.
LOAD_TIMEOUT=${CONNTRACE_BENCH_LOAD_TIMEOUT:-60}

if [ "$(id -u)" != 0 ]; then
    echo "scripts/bench.sh: run it as root: it loads BPF programs (conntrace and bpftrace)" >&2
    exit 1
fi
for tool in hyperfine bpftrace jq; do
    command -v "$tool" >/dev/null || {
        echo "scripts/bench.sh: $tool is missing: apt-get install $tool" >&2
        exit 1
    }
done

WORK=$(mktemp -d /tmp/conntrace-bench.XXXXXX)
started=()
cleanup() {
    local p
    for p in "${started[@]}"; do kill -INT "$p" 2>/dev/null || true; done
    sleep 0.5
    for p in "${started[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { printf '=== %s (%s)\n' "$1" "$(date +%T)" >&2; }
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
now_us() { echo "${EPOCHREALTIME/./}"; }

step "building (release; static musl conntrace)"
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)
rustup target add x86_64-unknown-linux-musl >/dev/null 2>&1 || true
cargo build -q --release --target x86_64-unknown-linux-musl --bin conntrace
cargo build -q --release -p ctload
cargo build -q --release --example btf_bench
CT=$TARGET_DIR/x86_64-unknown-linux-musl/release/conntrace
LOAD=$TARGET_DIR/release/ctload
BTF_BENCH=$TARGET_DIR/release/examples/btf_bench

# --- 1. start-up -------------------------------------------------------------------------
step "start-up: hyperfine, $STARTUP_RUNS runs each"
ct_start="$CT -d 0.001 -P $PORT"
bt_start="bpftrace -e 'tracepoint:sock:inet_sock_set_state { } BEGIN { exit(); }'"
timeout 300 hyperfine -N --style none --warmup 3 --runs "$STARTUP_RUNS" \
    --export-json "$WORK/startup.json" "$ct_start" "$bt_start" >/dev/null 2>&1
ct_wall=$(jq '.results[0].median * 1000' "$WORK/startup.json")
bt_wall=$(jq '.results[1].median * 1000' "$WORK/startup.json")

# Time until each tool is tracing: conntrace's "attached" line, bpftrace's BEGIN (which runs
# once every probe is attached). The rest of a run's wall time is the kernel detaching.
ready_times() {
    local i t0 line
    for ((i = 0; i < STARTUP_RUNS; i++)); do
        t0=$(now_us)
        "$@" | while IFS= read -r line; do
            if [[ $line == *attached* || $line == ready ]]; then
                echo $(($(now_us) - t0))
                cat >/dev/null
                break
            fi
        done
    done | median
}
ct_ready_run() { "$CT" -d 0.001 -P "$PORT" 2>&1 >/dev/null; }
bt_ready_run() {
    bpftrace -e 'tracepoint:sock:inet_sock_set_state { } BEGIN { printf("ready\n"); exit(); }' 2>/dev/null
}
ct_ready=$(ready_times ct_ready_run)
bt_ready=$(ready_times bt_ready_run)

# --- 2, 3. load: rate, loss, peak RSS ----------------------------------------------------
step "load: $COUNT connections per run, port $PORT"
tw_reuse=$(sysctl -n net.ipv4.tcp_tw_reuse)
port_range=$(sysctl -n net.ipv4.ip_local_port_range | tr '\t' ' ')

# bpftrace, one line per event like conntrace: connect (SYN_SENT), established (SYN_SENT ->
# ESTABLISHED), accept (accept/accept4 returning in the load's server thread).
bt_prog() {
    cat <<EOF
tracepoint:sock:inet_sock_set_state /args->protocol == 6 && args->dport == $PORT/ {
  if (args->newstate == 2) { printf("connect %d %d %s %d\n", pid, tid, comm, args->dport); }
  if (args->oldstate == 2 && args->newstate == 1) {
    printf("established %d %d %s %d %d\n", pid, tid, comm, args->sport, args->dport);
  }
}
tracepoint:syscalls:sys_exit_accept4, tracepoint:syscalls:sys_exit_accept
/args->ret >= 0 && comm == "ctload-server"/ { printf("accept %d %d %s %d\n", pid, tid, comm, args->ret); }
EOF
}

# Waits (10 s at most) for a line matching $2 in file $1.
wait_for() {
    local i
    for ((i = 0; i < 200; i++)); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    echo "scripts/bench.sh: timed out waiting for '$2' in $1:" >&2
    cat "$1" >&2
    exit 1
}

# Stops a tracer started in the background: SIGINT, then waits (bounded).
stop_tracer() {
    local pid=$1 i
    kill -INT "$pid" 2>/dev/null || true
    for ((i = 0; i < 200; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

peak_rss_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }

# run_load TRACER FAMILY: runs ctload under TRACER (none, conntrace, bpftrace); sets
# rate, rss_kb, and the counts the tracer saw (n_connect, n_established, n_accept, n_lost).
run_load() {
    local tracer=$1 fam=$2 out=$WORK/$1-$2 pid=""
    rss_kb=- n_connect=- n_established=- n_accept=- n_lost=-
    case $tracer in
    conntrace)
        "$CT" --json -P "$PORT" >"$out.json" 2>"$out.err" &
        pid=$!
        started+=("$pid")
        wait_for "$out.err" attached
        ;;
    bpftrace)
        bpftrace -e "$(bt_prog)" >"$out.txt" 2>&1 &
        pid=$!
        started+=("$pid")
        wait_for "$out.txt" Attaching
        sleep 0.2 # "Attaching" is printed before the probes are all attached
        ;;
    esac
    if ! timeout "$LOAD_TIMEOUT" "$LOAD" --count "$COUNT" --family "$fam" --port "$PORT" \
        --report-json >"$out.load"; then
        echo "scripts/bench.sh: ctload under $tracer (IPv$fam) failed: $(cat "$out.load")" >&2
        exit 1
    fi
    rate=$(jq '.rate | floor' "$out.load")
    if [ -n "$pid" ]; then
        sleep 1 # let the tracer drain its rings
        rss_kb=$(peak_rss_kb "$pid")
        stop_tracer "$pid"
    fi
    case $tracer in
    conntrace)
        n_connect=$(grep -c '"event":"connect"' "$out.json" || true)
        n_established=$(grep -c '"event":"established"' "$out.json" || true)
        n_accept=$(grep -c '"event":"accept"' "$out.json" || true)
        n_lost=$(sed -n 's/.* events, \([0-9]*\) lost.*/\1/p' "$out.err")
        ;;
    bpftrace)
        n_connect=$(grep -c '^connect ' "$out.txt" || true)
        n_established=$(grep -c '^established ' "$out.txt" || true)
        n_accept=$(grep -c '^accept ' "$out.txt" || true)
        n_lost=$(sed -n 's/.*Lost \([0-9]*\) events.*/\1/p' "$out.txt" | awk '{ s += $1 } END { print s + 0 }')
        ;;
    esac
}

declare -A RATE RSS COUNTS
for fam in 4 6; do
    for tracer in none conntrace bpftrace; do
        step "IPv$fam, tracer: $tracer"
        run_load "$tracer" "$fam"
        RATE[$tracer$fam]=$rate
        RSS[$tracer$fam]=$rss_kb
        COUNTS[$tracer$fam]="$n_connect/$n_established/$n_accept lost $n_lost"
    done
done
time_wait=$(ss -Htan state time-wait "( sport = :$PORT or dport = :$PORT )" | wc -l)

# --- 4. decode + format ------------------------------------------------------------------
step "decode+format micro-benchmark"
cargo bench -q --bench decode_format >"$WORK/decode.txt" 2>&1 || {
    cat "$WORK/decode.txt" >&2
    exit 1
}
decode_json=$(awk '/^decode\+json/ { print $2 }' "$WORK/decode.txt")
decode_only=$(awk '/^decode only/ { print $3 }' "$WORK/decode.txt")

# --- 5. size -----------------------------------------------------------------------------
step "sizes"
ct_size=$(stat -c %s "$CT")
ct_static=$(file -b "$CT" | grep -o 'static[a-z -]*linked' || echo "NOT static")
bt_bin=$(readlink -f "$(command -v bpftrace)")
bt_size=$(stat -c %s "$bt_bin")
bt_libs=$(ldd "$bt_bin" | awk '/=> \// { print $3 } /^\t\/[^ ]* \(/ { print $1 }' | sort -u)
bt_nlibs=$(echo "$bt_libs" | wc -l)
bt_libs_size=$(echo "$bt_libs" | xargs stat -L -c %s | awk '{ s += $1 } END { print s }')

# --- 6. BTF ------------------------------------------------------------------------------
step "BTF parse"
btf_line=$(timeout 120 "$BTF_BENCH" 20)
btf_total=$(echo "$btf_line" | sed -n 's/.*total \([^ ]*\)$/\1/p')

# --- the table -----------------------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0) printf "%.1fx", b / a; else print "-" }'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.0f%%", 100 * a / b; else print "-" }'; }
mb() { awk -v k="$1" 'BEGIN { if (k ~ /^[0-9]+$/) printf "%.1f MB", k / 1024; else print "-" }'; }
kb() { awk -v b="$1" 'BEGIN { printf "%.0f KB", b / 1024 }'; }

echo
echo "conntrace benchmarks: $(nproc) CPUs, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), kernel $(uname -r)"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); net.ipv4.tcp_tw_reuse=$tw_reuse, ip_local_port_range=$port_range (unchanged)"
echo
printf '%-44s %-26s %-26s %s\n' "measure" "conntrace" "bpftrace" "comparison"
printf '%-44s %-26s %-26s %s\n' "1. start-up, wall time of a run (median)" \
    "$(printf '%.1f ms' "$ct_wall")" "$(printf '%.1f ms' "$bt_wall")" "$(ratio "$ct_wall" "$bt_wall") faster"
printf '%-44s %-26s %-26s %s\n' "   time until tracing (median)" \
    "$(awk -v u="$ct_ready" 'BEGIN { printf "%.1f ms", u / 1000 }')" \
    "$(awk -v u="$bt_ready" 'BEGIN { printf "%.1f ms", u / 1000 }')" "$(ratio "$ct_ready" "$bt_ready") faster"
for fam in 4 6; do
    printf '%-44s %-26s %-26s %s\n' "2. peak RSS under load, IPv$fam" \
        "$(mb "${RSS[conntrace$fam]}")" "$(mb "${RSS[bpftrace$fam]}")" "$(ratio "${RSS[conntrace$fam]}" "${RSS[bpftrace$fam]}") smaller"
done
for fam in 4 6; do
    printf '%-44s %-26s %-26s %s\n' "3. connections/s, IPv$fam (untraced ${RATE[none$fam]})" \
        "${RATE[conntrace$fam]} ($(pct "${RATE[conntrace$fam]}" "${RATE[none$fam]}"))" \
        "${RATE[bpftrace$fam]} ($(pct "${RATE[bpftrace$fam]}" "${RATE[none$fam]}"))" "traced/untraced in ()"
    printf '%-44s %-26s %-26s %s\n' "   events seen of $COUNT each: conn/est/acc" \
        "${COUNTS[conntrace$fam]}" "${COUNTS[bpftrace$fam]}" ""
done
printf '%-44s %-26s %-26s %s\n' "4. decode + JSON format per event" "$decode_json ns" "-" "decode alone $decode_only ns"
printf '%-44s %-26s %-26s %s\n' "5. size on disk" "$(kb "$ct_size") ($ct_static)" \
    "$(kb "$bt_size") + $(kb "$bt_libs_size")" "bpftrace + $bt_nlibs shared libraries"
printf '%-44s %-26s %-26s %s\n' "6. BTF: read+parse+resolve vmlinux (median)" "$btf_total" "-" ""
echo
echo "TIME_WAIT sockets left on port $PORT: $time_wait"
echo "btf_bench: $btf_line"
