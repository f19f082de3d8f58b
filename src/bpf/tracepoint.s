; The tracepoint backend: needs only tracepoints and BTF (for the fd -> socket walk).
;
; connect:  sys_enter_connect remembers the fd and the caller's sockaddr; sys_exit_connect
;           finds the socket behind the fd (its local port is chosen by then) and reports.
; accept:   sys_exit_accept4 / sys_exit_accept, in the accepting task, from the new fd.
; outcome:  sock/inet_sock_set_state (state.s), shared with the kprobe backend.

; struct trace_event_raw_sys_enter / sys_exit: arguments and return value at 16.
.equ SYS_ARG0, 16
.equ SYS_ARG1, 24
.equ SYS_ARG2, 32
.equ SYS_RET, 16

.section tracepoint/syscalls/sys_enter_connect
    r6 = r1
    filter_task out
    zero_stack
    r1 = *(u64 *)(r6 + SYS_ARG0)
    w1 = w1                                 ; int fd
    *(u64 *)(r10 + STACK_ENTRY + CALL_HANDLE) = r1     ; the fd
    ; The caller's sockaddr: on a failure before the SYN it is the only record of the peer.
    r2 = *(u64 *)(r6 + SYS_ARG2)
    w2 = w2                                 ; int addrlen
    if r2 <= SOCKADDR_SIZE goto len_ok
    r2 = SOCKADDR_SIZE
len_ok:
    r1 = r10
    r1 += STACK_ENTRY + CALL_ADDR
    r3 = *(u64 *)(r6 + SYS_ARG1)
    call bpf_probe_read_user
    call bpf_get_current_pid_tgid
    *(u64 *)(r10 + STACK_KEY) = r0
    r1 = map connecting ll
    r2 = r10
    r2 += STACK_KEY
    r3 = r10
    r3 += STACK_ENTRY
    r4 = BPF_ANY
    call bpf_map_update_elem
out:
    r0 = 0
    exit

.section tracepoint/syscalls/sys_exit_connect
    r6 = r1
    call bpf_get_current_pid_tgid
    *(u64 *)(r10 + STACK_KEY) = r0
    r1 = map connecting ll
    r2 = r10
    r2 += STACK_KEY
    call bpf_map_lookup_elem
    if r0 == 0 goto out
    zero_stack
    copy_call_addr
    r7 = *(u64 *)(r0 + CALL_HANDLE)
    r1 = map connecting ll
    r2 = r10
    r2 += STACK_KEY
    call bpf_map_delete_elem
    fd_to_sock r7, out
    r9 = *(u64 *)(r6 + SYS_RET)
    connect_done
out:
    r0 = 0
    exit

; Attached to both sys_exit_accept4 and sys_exit_accept (same layout).
.section tracepoint/syscalls/sys_exit_accept4
    r6 = r1
    r7 = *(u64 *)(r6 + SYS_RET)
    if r7 s< 0 goto out
    zero_stack
    fd_to_sock r7, out
    accept_done                 ; filters the task after the walk: it drops the socket's `socks` entry
out:
    r0 = 0
    exit
