; sock/inet_sock_set_state: when a connect starts and how it ends, on both backends.
;
; CLOSE -> SYN_SENT runs in the connecting task: it creates the `conns` entry with the task's
; identity and the start time. SYN_SENT -> ESTABLISHED or CLOSE (often in softirq) builds the
; outcome record in the entry and sends it at once; the connect record may follow it (the
; tracepoint backend reports connects at the syscall's return), and user space holds an outcome
; until its connect is printed (src/app/reader.rs). The entry goes when both are out.

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
.macro fill_from_tracepoint
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

.section tracepoint/sock/inet_sock_set_state
    r6 = r1
    tp_load r1, u16, protocol          ; a u8 before 5.6: the loader narrows the load
    if r1 != IPPROTO_TCP goto out
    tp_load r7, u64, skaddr
    tp_load r1, u32, oldstate
    tp_load r2, u32, newstate
    if r1 != TCP_CLOSE goto not_opening
    if r2 == TCP_SYN_SENT goto syn_sent
not_opening:
    if r1 != TCP_SYN_SENT goto out
    if r2 == TCP_ESTABLISHED goto outcome
    if r2 == TCP_CLOSE goto outcome
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
    if r0 == 0 goto out
    ; No room: this connect's records cannot be made. Count it, never drop it quietly.
    count_drop DROP_STATE_FULL
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
    tp_load r1, u32, newstate
    if r1 == TCP_ESTABLISHED goto established
    ; Closed without a local port: the kernel gave up before any SYN (no free port). That is
    ; the connect's own refusal, which its return reports; this is no outcome.
    tp_load r1, u16, sport
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
ended:
    call bpf_ktime_get_ns
    *(u64 *)(r8 + EV_TS) = r0
    r1 = *(u64 *)(r9 + CONN_START)
    r0 -= r1
    *(u64 *)(r8 + EV_LATENCY) = r0
    fill_from_tracepoint
    ; Sent now, whether or not the connect record is out yet: user space orders them.
    emit r6, r8
    r1 = OUTCOME_SENT
    *(u16 *)(r9 + CONN_OUTCOME) = r1
    release_conn r9
out:
    r0 = 0
    exit
