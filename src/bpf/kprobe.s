; The kprobe backend: entry probes wherever they can do the job, because a return probe
; misses calls that entered before it was registered and calls beyond its fixed number of
; instances (about 10 on 2 CPUs), and says nothing of either.
;
; connect:  kprobe tcp_connect reports the connect, in the connecting task, once the local
;           port is chosen and just before the SYN goes out (so before any outcome).
;           kprobe tcp_v{4,6}_connect remembers the socket and the caller's sockaddr for the
;           one case tcp_connect never sees: a connect the kernel refuses before any SYN,
;           which the kretprobe reports. A return that probe missed is found and counted.
; accept:   an entry probe in the accepting task once the new socket exists, chosen per
;           kernel by backend.rs: security_sock_graft (sock_graft, which every accept()
;           calls on kernels with CONFIG_SECURITY_NETWORK), else __inet_accept (6.10+),
;           else the kretprobe of inet_csk_accept, whose misses the kernel counts.
; outcome:  sock/inet_sock_set_state (state.s).
; PT_REGS_* come from the arch.s that build.rs generates for the target.

.macro connect_entry
    r6 = r1
    filter_task out\@
    zero_stack
    r7 = *(u64 *)(r6 + PT_REGS_PARM1)
    call bpf_get_current_pid_tgid
    *(u64 *)(r10 + STACK_KEY) = r0
    ; An entry this thread left behind is a call whose return was never seen: if it was
    ; refused before its SYN, that refusal is lost. Count it. (tcp_v6_connect calls
    ; tcp_v4_connect for an IPv4-mapped peer: the same socket, one call.)
    r1 = map connecting ll
    r2 = r10
    r2 += STACK_KEY
    call bpf_map_lookup_elem
    if r0 == 0 goto fresh\@
    r1 = *(u64 *)(r0 + CALL_HANDLE)
    if r1 == r7 goto fresh\@
    count_drop DROP_RETURN_MISSED
fresh\@:
    *(u64 *)(r10 + STACK_ENTRY + CALL_HANDLE) = r7     ; the struct sock
    r1 = r10
    r1 += STACK_ENTRY + CALL_ADDR
    r2 = SOCKADDR_SIZE
    r3 = *(u64 *)(r6 + PT_REGS_PARM2)
    call bpf_probe_read_kernel
    ; When the call began: at exit an old entry is a missed return, a fresh one a call that
    ; was running while the probes were detached.
    call bpf_ktime_get_ns
    *(u64 *)(r10 + STACK_ENTRY + CALL_START) = r0
    r1 = map connecting ll
    r2 = r10
    r2 += STACK_KEY
    r3 = r10
    r3 += STACK_ENTRY
    r4 = BPF_ANY
    call bpf_map_update_elem
    if r0 == 0 goto out\@
    count_drop DROP_STATE_FULL
out\@:
    r0 = 0
    exit
.endm

.macro connect_return
    r6 = r1
    call bpf_get_current_pid_tgid
    *(u64 *)(r10 + STACK_KEY) = r0
    r1 = map connecting ll
    r2 = r10
    r2 += STACK_KEY
    call bpf_map_lookup_elem
    if r0 == 0 goto out\@
    zero_stack
    copy_call_addr
    r7 = *(u64 *)(r0 + CALL_HANDLE)
    r1 = map connecting ll
    r2 = r10
    r2 += STACK_KEY
    call bpf_map_delete_elem
    r9 = *(u64 *)(r6 + PT_REGS_RC)
    r9 <<= 32                               ; an int: sign-extend it
    r9 s>>= 32
    connect_done
out\@:
    r0 = 0
    exit
.endm

.section kprobe/tcp_v4_connect
    connect_entry

.section kretprobe/tcp_v4_connect
    connect_return

.section kprobe/tcp_v6_connect
    connect_entry

.section kretprobe/tcp_v6_connect
    connect_return

; The connect record: the port is chosen, the SYN not yet sent. The call's return then has
; nothing to add, so its `connecting` entry goes.
.section kprobe/tcp_connect
    r6 = r1
    r7 = *(u64 *)(r6 + PT_REGS_PARM1)
    call bpf_get_current_pid_tgid
    *(u64 *)(r10 + STACK_KEY) = r0
    r1 = map connecting ll
    r2 = r10
    r2 += STACK_KEY
    call bpf_map_delete_elem
    zero_stack
    r9 = 0
    connect_done
    r0 = 0
    exit

; An accepted socket, `sk` read from argument register `arg`, in the accepting task.
.macro accept_entry arg
    r6 = r1
    r7 = *(u64 *)(r6 + \arg)
    if r7 == 0 goto out\@
    zero_stack
    accept_done
out\@:
    r0 = 0
    exit
.endm

; security_sock_graft(sk, parent): sock_graft of the accepted socket, every family.
.section kprobe/security_sock_graft
    accept_entry PT_REGS_PARM1

; __inet_accept(sock, newsock, newsk), 6.10+.
.section kprobe/__inet_accept
    accept_entry PT_REGS_PARM3

; The fallback: its return value only, so the 6.10 signature change does not matter.
.section kretprobe/inet_csk_accept
    accept_entry PT_REGS_RC
