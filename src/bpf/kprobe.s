; The kprobe backend: the original get_connection_info() hooks.
;
; connect:  kprobe tcp_v{4,6}_connect remembers the socket and the sockaddr (a kernel copy);
;           the kretprobe reports, in the connecting task, with the local port chosen.
; accept:   kretprobe inet_csk_accept: only its return value (the new socket), so the 6.10
;           signature change does not matter.
; outcome:  sock/inet_sock_set_state (state.s).
; PT_REGS_* come from the arch.s that build.rs generates for the target.

.macro connect_entry
    r6 = r1
    filter_task out\@
    zero_stack
    r1 = *(u64 *)(r6 + PT_REGS_PARM1)
    *(u64 *)(r10 - 144) = r1                ; CALL_HANDLE: the struct sock
    r1 = r10
    r1 += -136                              ; CALL_ADDR
    r2 = 28
    r3 = *(u64 *)(r6 + PT_REGS_PARM2)
    call bpf_probe_read_kernel
    call bpf_get_current_pid_tgid
    *(u64 *)(r10 - 152) = r0
    r1 = map connecting ll
    r2 = r10
    r2 += -152
    r3 = r10
    r3 += -144
    r4 = BPF_ANY
    call bpf_map_update_elem
out\@:
    r0 = 0
    exit
.endm

.macro connect_return
    r6 = r1
    call bpf_get_current_pid_tgid
    *(u64 *)(r10 - 152) = r0
    r1 = map connecting ll
    r2 = r10
    r2 += -152
    call bpf_map_lookup_elem
    if r0 == 0 goto out\@
    zero_stack
    copy_call_addr
    r7 = *(u64 *)(r0 + CALL_HANDLE)
    r1 = map connecting ll
    r2 = r10
    r2 += -152
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

.section kretprobe/inet_csk_accept
    r6 = r1
    r7 = *(u64 *)(r6 + PT_REGS_RC)
    if r7 == 0 goto out
    filter_task out
    zero_stack
    accept_done
out:
    r0 = 0
    exit
