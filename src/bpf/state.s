; sock/inet_sock_set_state: when a connect starts and how it ends, and when an established
; connection ends, on both backends.
;
; CLOSE -> SYN_SENT runs in the connecting task: it creates the `conns` entry with the task's
; identity and the start time. SYN_SENT -> ESTABLISHED or CLOSE (often in softirq) builds the
; outcome record in the entry and sends it at once; the connect record may follow it (the
; tracepoint backend reports connects at the syscall's return), and user space holds an outcome
; until its connect is printed (src/app/order.rs). The entry goes when both are out.
;
; Lifecycle: reaching ESTABLISHED creates the socket's `socks` entry, with the connecting
; task as its owner (SYN_SENT ->) or none yet (SYN_RECV ->, softirq: the accept names the
; owner, common.s's own_sock). Reaching CLOSE from any state after ESTABLISHED sends the
; `close` record, its owner and start from the entry (null without one: the connection is
; older than the probes), and frees the entry; each change between keeps the state reached in
; the entry (SOCK_STATE), for a close the kernel makes without this tracepoint, which the
; socket's free then reports (destroy_program). User space derives closed_by and the payload
; byte counts from the old state, the error and CLOSE_* flags (src/session/event.rs).

; The tracepoint's record, struct trace_event_raw_inet_sock_set_state: its layout changed
; between kernels (protocol grew from u8 to u16 in 5.6, moving the addresses to odd offsets
; before), so every field is placed at load time, from BTF or the tracepoint's tracefs format
; (src/session/fields.rs). Ports are in host order. The addresses are copied with
; bpf_probe_read_kernel: a direct ctx load must be aligned, and before 5.6 they are not.
.macro tp_load dst, width, field
    \dst = *(\width *)(r6 + offsetof(trace_event_raw_inet_sock_set_state, \field))
.endm

; The outcome's addresses from the tracepoint's own copy, taken before the state change
; clears the socket's port (a refused socket has lport 0 by the time anyone reads it).
.macro tp_fill
    tp_load r1, u16, family
    *(u16 *)(r8 + EV_LOCAL) = r1
    *(u16 *)(r8 + EV_REMOTE) = r1
    tp_load r2, u16, sport
    r2 = be16 r2
    *(u16 *)(r8 + EV_LOCAL_PORT) = r2
    tp_load r2, u16, dport
    r2 = be16 r2
    *(u16 *)(r8 + EV_REMOTE_PORT) = r2
    if r1 == AF_INET6 goto v6\@
    probe_read r8, EV_LOCAL_ADDR4, 4, r6, offsetof(trace_event_raw_inet_sock_set_state, saddr)
    probe_read r8, EV_REMOTE_ADDR4, 4, r6, offsetof(trace_event_raw_inet_sock_set_state, daddr)
    goto done\@
v6\@:
    probe_read r8, EV_LOCAL_ADDR6, 16, r6, offsetof(trace_event_raw_inet_sock_set_state, saddr_v6)
    probe_read r8, EV_REMOTE_ADDR6, 16, r6, offsetof(trace_event_raw_inet_sock_set_state, daddr_v6)
done\@:
.endm

; The tracepoint's own record (sock:inet_sock_set_state through a perf event).
.macro tp_enter skip
    r6 = r1
    tp_load r1, u16, protocol          ; a u8 before 5.6: the loader narrows the load
    if r1 != IPPROTO_TCP goto \skip
    tp_load r7, u64, skaddr
    *(u64 *)(r10 + STACK_KEY) = r7
    tp_load r1, u32, oldstate
    tp_load r2, u32, newstate
.endm

.macro tp_new_state dst
    tp_load \dst, u32, newstate
.endm

.macro tp_local_port dst
    tp_load \dst, u16, sport
.endm

; The raw tracepoint (4.17+): its context is TP_PROTO(const struct sock *sk, int oldstate,
; int newstate), one u64 each, and everything else is read from the socket. That is the
; same moment the tracepoint copies its record from, so the same values. Raw tracepoints
; cost less per hit, are released without a grace period, and do not nest under another
; program's bpf_prog_active or the perf trace buffer's recursion guard (which skip a run
; without counting it on many kernels).
.equ RAW_ARG0, 0
.equ RAW_ARG1, 8
.equ RAW_ARG2, 16

.macro raw_enter skip
    r6 = r1
    r7 = *(u64 *)(r6 + RAW_ARG0)
    check_tcp_protocol r7, \skip
    *(u64 *)(r10 + STACK_KEY) = r7
    r1 = *(u64 *)(r6 + RAW_ARG1)
    r2 = *(u64 *)(r6 + RAW_ARG2)
.endm

.macro raw_new_state dst
    \dst = *(u64 *)(r6 + RAW_ARG2)
.endm

.macro raw_local_port dst
    *(u64 *)(r10 + STACK_SCRATCH) = 0
    probe_read r10, STACK_SCRATCH, 2, r7, offsetof(inet_sock, inet_sport)
    \dst = *(u16 *)(r10 + STACK_SCRATCH)
.endm

.macro raw_fill
    fill_local r7, r8
    fill_remote r7, r8
.endm

; tp_btf (5.5+, with BTF): the raw tracepoint's context, its socket a BTF pointer. The shared
; body takes it as a plain number (keys, ids, birth_id's hash, reads through
; bpf_probe_read_kernel): the verifier allows no arithmetic on a BTF pointer, and a copy
; through bpf_probe_read_kernel is a number. The storage steps read the pointer again.
.macro btf_enter skip
    btf_socket
    check_tcp_protocol r7, \skip
    r1 = *(u64 *)(r6 + RAW_ARG1)
    r2 = *(u64 *)(r6 + RAW_ARG2)
.endm

; r6 = ctx, r7 = its socket as a number, also at STACK_KEY.
.macro btf_socket
    r6 = r1
    r7 = *(u64 *)(r6 + RAW_ARG0)
    *(u64 *)(r10 + STACK_KEY) = r7
    probe_read r10, STACK_KEY, 8, r10, STACK_KEY
    r7 = *(u64 *)(r10 + STACK_KEY)
.endm

; Runs nested on a CPU. A state change in softirq can interrupt the state program running for
; another socket in a task on the same CPU (a burst of timeouts or of arriving packets often
; does). From Linux 6.2 the kernel then skips the nested run of that program (it counts it in
; recursion_misses), and every record of that state change would be lost. So the raw
; tracepoint takes a second program, attached after the first (a tracepoint calls its programs
; in the order they were attached, every kernel): the state program's last act is to note the
; change it has seen in `nest`; the rescue program takes the note off and leaves, and where
; there is none the state program did not run for this change: the rescue program makes its
; records instead and counts that (user space reports the skips it did not make up,
; src/session/nesting.rs). Two notes are kept: a change nested in the state program's run
; (not skipped before 6.2) or in the rescue program's leaves one of its own before the outer
; one is taken off.
; Two notes are not always enough: a softirq can make two or more changes while the rescue
; program runs (its own runs for them skipped, so their notes stay), pushing the note of the
; change it is about out of both slots. Made again, that change's records came twice (a
; second outcome, and its connect record lost with the conns entry), about once in 300,000
; connections at full loopback rate. So the state program also claims the CPU's mark when no
; run holds it (its first act; nothing nests in a state program's run unskipped from 6.2, and
; before 6.2 nothing is skipped), and a change whose run holds the mark is known to have run
; whatever became of its note: its rescue clears the mark as its last act. A change is made
; again only if its note is gone and its run did not hold the mark (another run's mark left
; by a rescue the kernel skipped in the few instructions after it was cleared).

; r2 = the change's socket, r3 = its states (old * 16 + new), from the context in r6.
.macro raw_change
    r2 = *(u64 *)(r6 + RAW_ARG0)
    r3 = *(u64 *)(r6 + RAW_ARG1)
    r3 <<= 4
    r1 = *(u64 *)(r6 + RAW_ARG2)
    r3 += r1
.endm

; The state program's first act: the CPU's mark for this change, if no run holds it.
.macro nest_begin
    r6 = r1
    map_lookup nest, u32, STACK_SCRATCH, 0
    if r0 == 0 goto begun\@
    r4 = *(u64 *)(r0 + NEST_OWNER_SOCK)
    if r4 != 0 goto begun\@
    raw_change
    *(u64 *)(r0 + NEST_OWNER_SOCK) = r2
    *(u64 *)(r0 + NEST_OWNER_STATES) = r3
begun\@:
    r1 = r6
.endm

.macro nest_done
    map_lookup nest, u32, STACK_SCRATCH, 0
    if r0 == 0 goto noted\@
    raw_change
    r4 = *(u64 *)(r0 + NEST_SOCK)
    *(u64 *)(r0 + NEST_SOCK2) = r4
    r4 = *(u64 *)(r0 + NEST_STATES)
    *(u64 *)(r0 + NEST_STATES2) = r4
    *(u64 *)(r0 + NEST_SOCK) = r2
    *(u64 *)(r0 + NEST_STATES) = r3
noted\@:
.endm

; The rescue program's start: on to the state program's body only for a skipped run. r5 is
; 1 when this change's run holds the mark, which is then cleared on the way out.
.macro nest_rescue
    r6 = r1
    map_lookup nest, u32, STACK_SCRATCH, 0
    if r0 == 0 goto out
    raw_change
    r5 = 0
    r4 = *(u64 *)(r0 + NEST_OWNER_SOCK)
    if r4 != r2 goto first\@
    r4 = *(u64 *)(r0 + NEST_OWNER_STATES)
    if r4 != r3 goto first\@
    r5 = 1
first\@:
    r4 = *(u64 *)(r0 + NEST_SOCK)
    if r4 != r2 goto second\@
    r4 = *(u64 *)(r0 + NEST_STATES)
    if r4 != r3 goto second\@
    r4 = *(u64 *)(r0 + NEST_SOCK2)
    *(u64 *)(r0 + NEST_SOCK) = r4
    r4 = *(u64 *)(r0 + NEST_STATES2)
    *(u64 *)(r0 + NEST_STATES) = r4
    *(u64 *)(r0 + NEST_SOCK2) = 0
    goto ran\@
second\@:
    r4 = *(u64 *)(r0 + NEST_SOCK2)
    if r4 != r2 goto unnoted\@
    r4 = *(u64 *)(r0 + NEST_STATES2)
    if r4 != r3 goto unnoted\@
    *(u64 *)(r0 + NEST_SOCK2) = 0
    goto ran\@
unnoted\@:
    if r5 == 0 goto rescue\@
ran\@:
    if r5 == 0 goto out
    *(u64 *)(r0 + NEST_OWNER_SOCK) = 0
    goto out
rescue\@:
    r1 = 1
    lock *(u64 *)(r0 + NEST_RESCUED) += r1
    r1 = r6
.endm

; The classic tracepoint's runs never nest: the perf trace buffer's guard and
; bpf_prog_active stop every nested program alike, and no rescue could run either.
.macro no_nesting
.endm

; Where a socket's close-record state (a `socks` entry, SOCK_*) lives: in the `socks` hash
; (every kernel), or in the socket itself (`sockstore`, tp_btf only) with the accept side's
; owners still in the hash. Each way has the same five steps; r7 is the socket.

; A new socket (CLOSE -> SYN_SENT, LISTEN -> SYN_RECV): an entry at its address is a dead
; socket's that missed its close (an accept racing the close of a reset connection). It
; must not name this one's owner.
.macro hash_forget_new
    hash_delete
.endm

; Store STACK_SOCK as the socket's entry, or go to `full`.
.macro hash_put full
    put_sock \full
.endm

; SYN_RECV -> ESTABLISHED: the start and byte base of an accepted connection, STACK_SOCK
; zeroed. TCP Fast Open: accept() can return the socket before its handshake ends, so the
; accept's entry may be there already. No room: not counted here. The accept tries again
; and counts it; a connection never accepted had no owner to lose, and its close is still
; sent.
.macro hash_passive
    map_lookup socks, u64, STACK_KEY, r7
    if r0 == 0 goto new\@
    r9 = r0
    call bpf_ktime_get_ns
    *(u64 *)(r9 + SOCK_EST) = r0
    r1 = *(u8 *)(r9 + SOCK_FLAGS)
    r1 |= CLOSE_DURATION
    *(u8 *)(r9 + SOCK_FLAGS) = r1
    r1 = TCP_ESTABLISHED
    *(u8 *)(r9 + SOCK_STATE) = r1
    goto done\@
new\@:
    passive_entry
    put_sock done\@
done\@:
.endm

; r0 = the socket's entry, or 0. It is also the state changes' own entry (the `track` step).
.macro hash_find
    map_lookup socks, u64, STACK_KEY, r7
.endm

; The entry is done with.
.macro hash_forget
    hash_delete
.endm

.macro hash_delete
    r1 = map socks ll
    r2 = r10
    r2 += STACK_KEY
    call bpf_map_delete_elem
.endm

; STACK_SOCK for an accepted connection whose handshake just ended.
.macro passive_entry
    r1 = CLOSE_DURATION | CLOSE_BASE
    *(u8 *)(r10 + STACK_SOCK + SOCK_FLAGS) = r1
    r1 = TCP_ESTABLISHED
    *(u8 *)(r10 + STACK_SOCK + SOCK_STATE) = r1
    call bpf_ktime_get_ns
    *(u64 *)(r10 + STACK_SOCK + SOCK_EST) = r0
    probe_read r10, STACK_SOCK + SOCK_BASE, 8, r7, offsetof(tcp_sock, bytes_acked)
.endm

; Socket-local storage (tp_btf): its helpers take the socket as the kernel typed it, read
; again from the context (r6) each time, r7 being a plain number (btf_enter).
; A socket reused for a new connect must not keep its last connection's entry; the hash may
; hold a stale owner as above.
.macro storage_forget_new
    storage_delete
    hash_delete
.endm

.macro storage_put full
    r1 = map sockstore ll
    r2 = *(u64 *)(r6 + RAW_ARG0)
    r3 = r10
    r3 += STACK_SOCK
    r4 = BPF_SK_STORAGE_GET_F_CREATE
    call bpf_sk_storage_get
    if r0 == 0 goto \full
    ; An entry the socket had already comes back as it was: this one replaces it.
.irp off, 0, 8, 16, 24, 32, 40, 48, 56
    r1 = *(u64 *)(r10 + STACK_SOCK + \off)
    *(u64 *)(r0 + \off) = r1
.endr
.endm

; The accept's owner goes to the hash whenever it comes (before the handshake ends or
; after): the close joins the two.
.macro storage_passive
    passive_entry
    storage_put done\@
done\@:
.endm

; r0 = the socket's storage entry, which the state changes keep, or 0.
.macro storage_track
    r1 = map sockstore ll
    r2 = *(u64 *)(r6 + RAW_ARG0)
    r3 = 0
    r4 = 0
    call bpf_sk_storage_get
.endm

; r0 = the socket's entry: its storage, with the owner an accept left in the hash joined in
; (flags or-ed: CLOSE_OWNER from the accept, CLOSE_DURATION and CLOSE_BASE from storage;
; SOCK_STATE is the storage's); the hash's entry alone for a connection established before
; the probes; or 0.
.macro storage_find
    storage_track
    r9 = r0
    map_lookup socks, u64, STACK_KEY, r7
    if r0 == 0 goto done\@
    if r9 != 0 goto join\@
    r9 = r0
    goto done\@
join\@:
.irp f, PID, TID, UID
    r1 = *(u32 *)(r0 + SOCK_\f)
    *(u32 *)(r9 + SOCK_\f) = r1
.endr
.irp off, SOCK_CGROUP, SOCK_COMM, SOCK_COMM + 8, SOCK_ID
    r1 = *(u64 *)(r0 + \off)
    *(u64 *)(r9 + \off) = r1
.endr
    r1 = *(u8 *)(r0 + SOCK_FLAGS)
    r2 = *(u8 *)(r9 + SOCK_FLAGS)
    r1 |= r2
    *(u8 *)(r9 + SOCK_FLAGS) = r1
done\@:
    r0 = r9
.endm

.macro storage_forget
    storage_delete
    hash_delete
.endm

.macro storage_delete
    r1 = map sockstore ll
    r2 = *(u64 *)(r6 + RAW_ARG0)
    call bpf_sk_storage_delete
.endm

; The program, over either source: `begin` and `finish` open and close every run (the notes
; above); `enter` leaves r6 = ctx, r7 = the socket (at STACK_KEY too), r1 = the
; old state, r2 = the new one, or goes to `out` for a socket not TCP; `new_state dst` and
; `local_port dst` (any byte order, tested against 0 only) read again; `fill` writes both
; ends' addresses and ports into the event at r8; the last six are the socket-state steps
; above, all hash_* or all storage_* (`track`: hash_find or storage_track).
.macro state_program begin, finish, enter, new_state, local_port, fill, forget_new, put, passive, find, forget, track
    \begin
    \enter out
    if r1 != TCP_CLOSE goto not_opening
    if r2 == TCP_SYN_SENT goto syn_sent
not_opening:
    if r1 != TCP_SYN_SENT goto not_connecting
    if r2 == TCP_ESTABLISHED goto outcome
    if r2 == TCP_CLOSE goto outcome
    goto out
not_connecting:
    if r2 == TCP_CLOSE goto closing
    if r1 == TCP_LISTEN goto born      ; LISTEN -> SYN_RECV: a listener's new child
    if r1 != TCP_SYN_RECV goto progress
    if r2 == TCP_ESTABLISHED goto passive
    goto out

syn_sent:
    filter_task out
    zero_stack
    r8 = r10
    r8 += STACK_ENTRY + CONN_EV             ; = STACK_EVENT: the entry is built in place
    fill_remote r7, r8
    filter_addr r8, EV_REMOTE_PORT, out
    task_info r8
    sock_ids r7, r8
    call bpf_ktime_get_ns
    *(u64 *)(r10 + STACK_ENTRY + CONN_START) = r0
    *(u64 *)(r8 + EV_TS) = r0               ; the connect record's time, for birth_id
    birth_id r8
    *(u64 *)(r10 + STACK_KEY) = r7
    r1 = map conns ll
    r2 = r10
    r2 += STACK_KEY
    r3 = r10
    r3 += STACK_ENTRY
    r4 = BPF_ANY
    call bpf_map_update_elem
    if r0 == 0 goto born
    ; No room: this connect's records cannot be made. Count it, never drop it quietly.
    count_drop DROP_STATE_FULL
born:
    \forget_new
    goto out

outcome:
    *(u64 *)(r10 + STACK_KEY) = r7
    r1 = map conns ll
    r2 = r10
    r2 += STACK_KEY
    call bpf_map_lookup_elem
    if r0 == 0 goto out
    r9 = r0
    r8 = r0
    r8 += CONN_EV
    \new_state r1
    if r1 == TCP_ESTABLISHED goto established
    ; Closed without a local port: the kernel gave up before any SYN (no free port). That is
    ; the connect's own refusal, which its return reports; this is no outcome.
    \local_port r1
    if r1 != 0 goto failed
    r1 = NO_SYN
    *(u16 *)(r9 + CONN_OUTCOME) = r1
    goto out
failed:
    r1 = KIND_FAILED
    *(u8 *)(r8 + EV_KIND) = r1
    ; ECONNREFUSED, ETIMEDOUT, EHOSTUNREACH ...: set before the state change.
    read_sk_error r7, r8
    goto ended
established:
    r1 = KIND_ESTABLISHED
    *(u8 *)(r8 + EV_KIND) = r1
    ; The connecting task owns the connection: its close record will name it.
    zero_sock
    owner_to_sock r8, r10, STACK_SOCK
    r1 = CLOSE_OWNER | CLOSE_DURATION | CLOSE_BASE
    *(u8 *)(r10 + STACK_SOCK + SOCK_FLAGS) = r1
    r1 = TCP_ESTABLISHED
    *(u8 *)(r10 + STACK_SOCK + SOCK_STATE) = r1
    call bpf_ktime_get_ns
    *(u64 *)(r10 + STACK_SOCK + SOCK_EST) = r0
    probe_read r10, STACK_SOCK + SOCK_BASE, 8, r7, offsetof(tcp_sock, bytes_acked)
    \put sock_full
    goto ended
sock_full:
    owner_lost
ended:
    call bpf_ktime_get_ns
    *(u64 *)(r8 + EV_TS) = r0
    r1 = *(u64 *)(r9 + CONN_START)
    r0 -= r1
    *(u64 *)(r8 + EV_LATENCY) = r0
    \fill
    ; Sent now, whether or not the connect record is out yet: user space orders them.
    emit r6, r8
    r1 = OUTCOME_SENT
    *(u16 *)(r9 + CONN_OUTCOME) = r1
    release_conn r9
    goto out

; SYN_RECV -> ESTABLISHED, an accepted connection's handshake done (softirq, most often): its
; start, for the close record; the accept adds the owner. Only the address filters apply here.
passive:
    zero_stack
    r8 = r10
    r8 += STACK_EVENT
    \fill
    filter_addr r8, EV_LOCAL_PORT, out
    zero_sock
    \passive
    goto out

; A step of an established connection towards its end (ESTABLISHED -> FIN_WAIT1, CLOSE_WAIT,
; FIN_WAIT1 -> FIN_WAIT2, CLOSING, CLOSE_WAIT -> LAST_ACK ...; r2 = the new state): its entry
; keeps the state, the old one of a close the kernel may make without this tracepoint
; (destroy_program). One lookup, only for such steps.
progress:
    was_established r2, out
    r9 = r2
    \track
    if r0 == 0 goto out
    *(u8 *)(r0 + SOCK_STATE) = r9
    goto out

; -> CLOSE from a state after ESTABLISHED (r1 = the old state): the connection ended.
closing:
    was_established r1, out
    zero_stack
    r8 = r10
    r8 += STACK_EVENT
    *(u8 *)(r8 + EV_OLD_STATE) = r1
    \find
    r9 = r0
    close_record \fill, \forget, out
out:
    \finish
    r0 = 0
    exit
.endm

; Go to `skip` unless the TCP state in register `state` is one an established connection can
; be in (TCP_WAS_ESTABLISHED). Clobbers r3.
.macro was_established state, skip
    if \state > TCP_CLOSING goto \skip
    r3 = 1
    r3 <<= \state
    r3 &= TCP_WAS_ESTABLISHED
    if r3 == 0 goto \skip
.endm

; The close record of the socket in r7, built in the zeroed event at r8 (EV_OLD_STATE set)
; and sent: owner, start and byte base from its entry in r9, which then goes (`forget`); 0:
; none, a connection older than the probes. `fill` writes both ends; a close the filters do
; not pass goes to `skip`. The state program's end of a connection and the destroy
; program's alike.
.macro close_record fill, forget, skip
    if r9 == 0 goto unowned\@
    sock_to_event r9, r8
    r1 = *(u8 *)(r9 + SOCK_FLAGS)
    *(u8 *)(r8 + EV_CLOSE_FLAGS) = r1
    r2 = r1
    r2 &= CLOSE_OWNER
    if r2 != 0 goto owned\@
    filter_any_task forget\@
owned\@:
    r1 = *(u8 *)(r9 + SOCK_FLAGS)
    r1 &= CLOSE_DURATION
    if r1 == 0 goto fill\@
    call bpf_ktime_get_ns
    r1 = *(u64 *)(r9 + SOCK_EST)
    r0 -= r1
    *(u64 *)(r8 + EV_LATENCY) = r0
    goto fill\@
unowned\@:
    ; Older than the probes: shown unless a task filter is on (its owner is unknown).
    filter_any_task \skip
fill\@:
    \fill
    if r9 != 0 goto filtered\@
    ; No entry checked the addresses: the connection may have either end's port.
    filter_addr r8, EV_REMOTE_PORT, try_local\@
    goto filtered\@
try_local\@:
    filter_addr r8, EV_LOCAL_PORT, \skip
filtered\@:
    stamp r8, KIND_CLOSE
    read_sk_error r7, r8
    read_netns r7, r8
    probe_read r8, EV_BYTES_ACKED, 8, r7, offsetof(tcp_sock, bytes_acked)
    probe_read r8, EV_BYTES_RECEIVED, 8, r7, offsetof(tcp_sock, bytes_received)
    read_peer_fin r7, r8
    r1 = *(u64 *)(r8 + EV_SOCK)
    if r1 != 0 goto has_id\@
    *(u64 *)(r8 + EV_SOCK) = r7
    birth_id r8
has_id\@:
    if r9 == 0 goto send\@
    r1 = *(u64 *)(r8 + EV_BYTES_ACKED)
    r2 = *(u64 *)(r9 + SOCK_BASE)
    r1 -= r2
    *(u64 *)(r8 + EV_BYTES_ACKED) = r1
forget\@:
    ; The entry is done with: free it before sending (r9 is not read again).
    \forget
    r1 = *(u8 *)(r8 + EV_KIND)
    if r1 != KIND_CLOSE goto \skip
send\@:
    emit r6, r8
.endm

; The raw tracepoint where the kernel has one (every kernel conntrace supports), the classic
; tracepoint where it does not: src/session/backend.rs picks by probing.
.section raw_tracepoint/inet_sock_set_state
    state_program nest_begin, nest_done, raw_enter, raw_new_state, raw_local_port, raw_fill, hash_forget_new, hash_put, hash_passive, hash_find, hash_forget, hash_find

; Attached right after the one above, on the same raw tracepoint (src/session/backend.rs).
.section raw_tracepoint.rescue/inet_sock_set_state
    state_program nest_rescue, no_nesting, raw_enter, raw_new_state, raw_local_port, raw_fill, hash_forget_new, hash_put, hash_passive, hash_find, hash_forget, hash_find

.section tracepoint/sock/inet_sock_set_state
    state_program no_nesting, no_nesting, tp_enter, tp_new_state, tp_local_port, tp_fill, hash_forget_new, hash_put, hash_passive, hash_find, hash_forget, hash_find

; The tp_btf programs, in the object for kernels with BTF only (variants/btf.s): a tp_btf
; program is attached by the kernel's BTF id of its tracepoint. Their context is the raw
; tracepoint's, the socket typed, so they may use socket-local storage (5.11+). Nested runs
; are skipped as the raw tracepoint's are, and rescued the same way.
btf_only_programs

; tcp:tcp_destroy_sock: the socket is being freed. Linux 6.18 was seen to free sockets whose
; last state change it made without inet_sock_set_state, for every tracer alike (under a storm
; of 40,000 SYN timeouts ~1%: TcpAbortOnTimeout and tcp_destroy_sock count them all). A
; connect still waiting for its outcome here gets it now: failed, with the socket's error
; (ETIMEDOUT, unless the owner read it with SO_ERROR first) and the time until the socket was
; freed as its latency, at the latest. A connection whose close record is still to come gets
; it now, made as the state change to CLOSE would have made it (close_record): its old state
; the last one a state change showed (SOCK_STATE; a later step the kernel did not show is not
; known), its time and duration those of the free, at the latest. Either way the entry goes:
; a second free finds nothing, so no connection has two closes, and nothing is left behind.
; (Under the held-open storm, tests/host/held.rs, 6.18 runs no BPF program at all for the
; last changes and the free of a few sockets in 10,000, though perf counts them; those frees
; are counted as lost, `undelivered`: src/session/frees.rs.)
.macro destroy_program enter, find, forget
    ; Its run counted first: a call of the tracepoint that perf counts and this does not had
    ; no program run (src/session/frees.rs).
    r6 = r1
    map_lookup frees, u32, STACK_SCRATCH, 0
    if r0 == 0 goto counted
    r1 = *(u64 *)(r0 + 0)
    r1 += 1
    *(u64 *)(r0 + 0) = r1
counted:
    r1 = r6
    \enter
    map_lookup conns, u64, STACK_KEY, r7
    if r0 == 0 goto closing
    r9 = r0
    r1 = *(u16 *)(r9 + CONN_OUTCOME)
    if r1 != 0 goto closing
    r8 = r9
    r8 += CONN_EV
    r1 = KIND_FAILED
    *(u8 *)(r8 + EV_KIND) = r1
    read_sk_error r7, r8
    call bpf_ktime_get_ns
    *(u64 *)(r8 + EV_TS) = r0
    r1 = *(u64 *)(r9 + CONN_START)
    r0 -= r1
    *(u64 *)(r8 + EV_LATENCY) = r0
    raw_fill
    emit r6, r8
    r1 = OUTCOME_SENT
    *(u16 *)(r9 + CONN_OUTCOME) = r1
    release_conn r9
closing:
    \find
    if r0 == 0 goto destroyed
    ; Only an entry a state change made (its start: CLOSE_DURATION) proves an ESTABLISHED
    ; that never reached CLOSE. One the accept made alone may be a close that was announced
    ; before it (an accept racing a reset), or a connection older than the probes.
    r9 = r0
    r1 = *(u8 *)(r9 + SOCK_FLAGS)
    r1 &= CLOSE_DURATION
    if r1 == 0 goto forget
    zero_stack
    r8 = r10
    r8 += STACK_EVENT
    r1 = *(u8 *)(r9 + SOCK_STATE)
    *(u8 *)(r8 + EV_OLD_STATE) = r1
    close_record raw_fill, \forget, destroyed
    goto destroyed
forget:
    \forget
destroyed:
    r0 = 0
    exit
.endm

; r6 = ctx, r7 = the socket, also at STACK_KEY (the tracepoint is TCP's own).
.macro destroy_raw_enter
    r6 = r1
    r7 = *(u64 *)(r6 + RAW_ARG0)
    *(u64 *)(r10 + STACK_KEY) = r7
.endm


.section raw_tracepoint/tcp_destroy_sock
    destroy_program destroy_raw_enter, hash_find, hash_forget
