; Shared layouts, maps and macros of the conntrace probes.
;
; Register conventions in every program: r6 = the program's context, r7 = the socket,
; r8 = the event being built (on the stack, or inside a `conns` entry), r9 = free per program.
; Stack (offsets from r10, below): the event at STACK_EVENT (EV_SIZE bytes, up to r10); a map
; value being built at STACK_ENTRY, which ends at r10 too: a `conns` entry, whose CONN_EV is
; the stack event, or a `connecting` entry; a map key at STACK_KEY; macro scratch at
; STACK_SCRATCH (filter_*, require_tcp, count_drop, check_tcp_protocol) and STACK_SCRATCH2
; (fd_to_sock, fd_read_ptr, read_netns), and a `socks` entry at STACK_SOCK.

.license "GPL"

; struct WireEvent (src/session/event.rs): 144 bytes. tests/bpf_layout.rs checks these tables, and the
; CFG_*, KIND_*, DROP_*, SIN*_* and AF_* ones below, against the Rust and libc definitions.
.equ EV_TS, 0
.equ EV_SOCK, 8
.equ EV_LATENCY, 16
.equ EV_CGROUP, 24
.equ EV_PID, 32
.equ EV_TID, 36
.equ EV_UID, 40
.equ EV_NETNS, 44
.equ EV_KIND, 48
.equ EV_OLD_STATE, 49          ; close: the state the socket left for TCP_CLOSE
.equ EV_CLOSE_FLAGS, 50        ; close: CLOSE_* below
.equ EV_ERROR, 52
.equ EV_COMM, 56
.equ EV_LOCAL, 72              ; sockaddr_in / sockaddr_in6 (SOCKADDR_SIZE bytes)
.equ EV_LOCAL_PORT, EV_LOCAL + SIN_PORT
.equ EV_LOCAL_ADDR4, EV_LOCAL + SIN_ADDR
.equ EV_LOCAL_ADDR6, EV_LOCAL + SIN6_ADDR
.equ EV_REMOTE, 100
.equ EV_REMOTE_PORT, EV_REMOTE + SIN_PORT
.equ EV_REMOTE_ADDR4, EV_REMOTE + SIN_ADDR
.equ EV_REMOTE_ADDR6, EV_REMOTE + SIN6_ADDR
.equ EV_REMOTE_ADDR6_W1, EV_REMOTE_ADDR6 + 4   ; second and third 32-bit words of the remote
.equ EV_REMOTE_ADDR6_W2, EV_REMOTE_ADDR6 + 8   ; IPv6 address
.equ EV_BYTES_ACKED, 128    ; close: tcp_sock.bytes_acked, less the entry's SOCK_BASE
.equ EV_BYTES_RECEIVED, 136    ; close: tcp_sock.bytes_received
.equ EV_SIZE, 144

; EV_CLOSE_FLAGS, and SOCK_FLAGS of a `socks` entry: what a close record knows.
.equ CLOSE_OWNER, 1            ; pid, tid, uid, comm and cgroup are the socket's owner's
.equ CLOSE_DURATION, 2         ; EV_LATENCY is the time since established
.equ CLOSE_BASE, 4             ; EV_BYTES_ACKED has the SYN taken out: it counts payload
.equ CLOSE_PEER_FIN, 8         ; the peer's FIN arrived (SOCK_DONE): bytes_received counts it

; struct sockaddr_in / sockaddr_in6, the form both ends of an event take.
.equ SIN_PORT, 2               ; sin_port / sin6_port, network order
.equ SIN_ADDR, 4               ; sin_addr
.equ SIN6_ADDR, 8              ; sin6_addr
.equ SOCKADDR_SIZE, 28         ; sizeof(struct sockaddr_in6), the larger

.equ KIND_CONNECT, 1
.equ KIND_ESTABLISHED, 2
.equ KIND_FAILED, 3
.equ KIND_ACCEPT, 4
.equ KIND_CLOSE, 5

; struct FilterConfig (src/session/filter.rs): 20 bytes.
.equ CFG_PID, 0
.equ CFG_UID, 4
.equ CFG_FAMILY, 8
.equ CFG_PORT_FILTER, 12
.equ CFG_CGROUP, 16            ; 1 = only tasks under the cgroup in `cgroups` (filter_cgroup)
.equ CFG_SIZE, 20

; A `conns` entry: one connect in flight, from SYN_SENT until both its records are out. Each
; side writes only its own word, so no update can be lost without atomic fetch (5.12); the
; one shared word is counted up with XADD (every kernel), and whoever counts to 2 frees it.
; Each record is sent as soon as it exists; user space puts an outcome after its connect.
.equ CONN_REFS, 0              ; u32: records of the two sent (XADD)
.equ CONN_EMITTED, 4           ; u16: 1 once the connect record is out (connect side only)
.equ CONN_OUTCOME, 6           ; u16: OUTCOME_SENT or NO_SYN (state-change side only)
.equ CONN_START, 8             ; ktime when the socket entered SYN_SENT
.equ CONN_EV, 16               ; the outcome record, written by the state change
.equ CONN_EV_ERROR, CONN_EV + EV_ERROR
.equ CONN_SIZE, CONN_EV + EV_SIZE
.equ OUTCOME_SENT, 1           ; the outcome record is out; its addresses are in CONN_EV
.equ NO_SYN, 2                 ; closed before any SYN: the connect's return reports it

; A `connecting` entry: a connect call between its entry and its return.
.equ CALL_HANDLE, 0            ; the fd (tracepoints) or the struct sock pointer (kprobes)
.equ CALL_ADDR, 8              ; the caller's sockaddr, SOCKADDR_SIZE bytes
.equ CALL_START, (CALL_ADDR + SOCKADDR_SIZE + 7) & ~7  ; 40: ktime at entry (kprobes only)
.equ CALL_SIZE, CALL_START + 8  ; 48

; A `socks` entry: an established connection's owner and start, until its close record.
; The connect side fills it at ESTABLISHED from its `conns` entry; the accept side creates it
; at SYN_RECV -> ESTABLISHED (softirq: no owner yet) and the accept fills in the owner.
.equ SOCK_PID, 0               ; u32 pid, tid, uid: as the event's
.equ SOCK_TID, 4
.equ SOCK_UID, 8
.equ SOCK_FLAGS, 12            ; u8: CLOSE_OWNER, CLOSE_DURATION, CLOSE_BASE
; u8: the state the connection last reached by a state change (ESTABLISHED on), 0 unknown:
; the old state of a close the kernel made without telling (state.s, destroy_program). A byte
; of its own, so the accept's update of the flags cannot undo a state change's store.
.equ SOCK_STATE, 13
.equ SOCK_CGROUP, 16
.equ SOCK_COMM, 24             ; 16 bytes
.equ SOCK_EST, 40              ; ktime at ESTABLISHED (with CLOSE_DURATION)
.equ SOCK_ID, 48               ; the id the socket's connect or accept record carried; 0: none
.equ SOCK_BASE, 56             ; bytes_acked at ESTABLISHED: 1 (the SYN) when connecting
.equ SOCK_SIZE, 64

; Stack slots, as offsets from r10 (see the top). zero_stack clears STACK_ENTRY up to r10.
.equ STACK_ENTRY, -CONN_SIZE                  ; -160: a `conns` (or `connecting`) entry
.equ STACK_EVENT, STACK_ENTRY + CONN_EV        ; -144: the event, that entry's outcome record
.equ STACK_KEY, STACK_ENTRY - 8                ; -168: an 8-byte map key
.equ STACK_SCRATCH, STACK_KEY - 8              ; -176: 8 bytes
.equ STACK_SCRATCH2, STACK_SCRATCH - 8         ; -184: 8 bytes
.equ STACK_SOCK, STACK_SCRATCH2 - SOCK_SIZE    ; -248: a `socks` entry being built
.equ STACK_RING, STACK_SOCK - 8                ; -256: emit's own (src/bpf/rings/ringbuf.s)

.equ AF_INET, 2
.equ AF_INET6, 10
.equ IPPROTO_TCP, 6
.equ TCP_ESTABLISHED, 1
.equ TCP_SYN_SENT, 2
.equ TCP_SYN_RECV, 3
.equ TCP_FIN_WAIT1, 4
.equ TCP_FIN_WAIT2, 5
.equ TCP_CLOSE, 7
.equ TCP_CLOSE_WAIT, 8
.equ TCP_LAST_ACK, 9
.equ TCP_LISTEN, 10
.equ TCP_CLOSING, 11
; The states a connection can leave for TCP_CLOSE once it was established, as a bit set.
.equ TCP_WAS_ESTABLISHED, (1 << TCP_ESTABLISHED) | (1 << TCP_FIN_WAIT1) | (1 << TCP_FIN_WAIT2) | (1 << TCP_CLOSE_WAIT) | (1 << TCP_LAST_ACK) | (1 << TCP_CLOSING)
.equ SOCK_DONE, 1              ; enum sock_flags: set in sk_flags when the peer's FIN arrives
.equ NEG_EINPROGRESS, -115    ; connect() return values, negated errnos
.equ NEG_EALREADY, -114
.equ NEG_EISCONN, -106
.equ BPF_ANY, 0                ; bpf_map_update_elem: create or replace
.equ BPF_SK_STORAGE_GET_F_CREATE, 1   ; bpf_sk_storage_get: create the socket's entry
.equ BPF_F_NO_PREALLOC, 1      ; map flag: entries allocated on demand
.equ BPF_RB_NO_WAKEUP, 1       ; bpf_ringbuf_output: do not wake the reader
.equ BPF_RB_FORCE_WAKEUP, 2    ; bpf_ringbuf_output: wake it
.equ BPF_RB_AVAIL_DATA, 0      ; bpf_ringbuf_query: bytes not yet consumed
.equ BPF_RB_RING_SIZE, 1       ; bpf_ringbuf_query: the data area's size

; Keys of the `drops` map: why a record could not be sent (LossReason in src/session/event.rs).
.equ DROP_RING_FULL, 0         ; the ring was full (bpf_perf_event_output or bpf_ringbuf_output failed)
.equ DROP_RETURN_MISSED, 1     ; a kretprobe missed a call's return
.equ DROP_STATE_FULL, 2        ; a map that holds state between hooks was full
.equ DROP_COUNT, 3             ; the number of keys (LossReason::DROPS.len())

.map config, array, 4, CFG_SIZE, 1
.map ports, hash, 4, 4, 64
.map cgroups, cgroup_array, 4, 4, 1            ; --cgroup: the cgroup v2 directory's fd, at key 0
.map connecting, hash, 8, CALL_SIZE, 10240      ; sized at load time (src/session/capacity.rs)
; Connects in flight. A plain hash, not an LRU: an LRU evicts quietly, and each eviction was a
; connect whose outcome vanished. A full map is counted (DROP_STATE_FULL) instead. The size
; here is replaced at load time: per machine, or --max-tracked (src/session/capacity.rs).
.map conns, hash, 8, CONN_SIZE, 16384
; Established connections, for their close records: a plain hash, sized at load time, a full
; map counted like `conns`. With the tp_btf state program (variants/btf.s) it holds only the
; owners the accept side writes: kprobe and tracepoint programs cannot reach socket storage.
.map socks, hash, 8, SOCK_SIZE, 65536
; The same entries in the socket itself, for the tp_btf state program (5.11+): created on
; demand, freed with the socket, so nothing to size and nothing to fill (an entry is charged
; to the socket's option memory, net.core.optmem_max; a refused one is counted as state_full).
.map sockstore, sk_storage, 4, SOCK_SIZE, 0, BPF_F_NO_PREALLOC
.map drops, percpu_array, 4, 8, DROP_COUNT     ; records the probes could not send, per CPU, by DROP_*

; The state changes the state program has made the records of, per CPU, for its rescue twin
; (src/bpf/state.s): a struct NestSlot (src/session/nesting.rs). A change is named by its
; socket and its states (old * 16 + new); the last two are kept.
.equ NEST_SOCK, 0              ; u64: the last change's socket
.equ NEST_STATES, 8            ; u64: its states
.equ NEST_SOCK2, 16            ; u64: the one before
.equ NEST_STATES2, 24
.equ NEST_RESCUED, 32          ; u64: changes whose run the kernel skipped, made by the rescue
.equ NEST_OWNER_SOCK, 40       ; u64: the socket of the change whose run holds the mark (0: none)
.equ NEST_OWNER_STATES, 48     ; u64: its states
.equ NEST_SIZE, 56
.map nest, percpu_array, 4, NEST_SIZE, 1

; The destroy program's runs, per CPU (one u64 at key 0): beside perf's own count of the
; tracepoint's calls, the calls the kernel ran no program for (src/session/frees.rs).
.map frees, percpu_array, 4, 8, 1

; `size` bytes of kernel memory at `src` + `src_off` to `dst` + `dst_off` (the stack or a
; map value), with bpf_probe_read_kernel: a fault leaves zeros. Clobbers r0-r5.
; `src_off` is usually offsetof(STRUCT, FIELD); `src` must not be r1 or r2.
.macro probe_read dst, dst_off, size, src, src_off
    r1 = \dst
    r1 += \dst_off
    r2 = \size
    r3 = \src
    r3 += \src_off
    call bpf_probe_read_kernel
.endm

; Look `map` up by the `width` (u32 or u64) key `key` (a register or an immediate), stored at
; the stack slot `slot` first: r0 = the value, or 0. Clobbers r0-r5.
.macro map_lookup map, width, slot, key
    *(\width *)(r10 + \slot) = \key
    r2 = r10
    r2 += \slot
    r1 = map \map ll
    call bpf_map_lookup_elem
.endm

; Zero STACK_ENTRY up to r10, CONN_SIZE bytes (the verifier wants every byte we send
; initialised), one aligned 8-byte store at a time.
.macro zero_stack
.irp off, 0, 8, 16, 24, 32, 40, 48, 56, 64, 72, 80, 88, 96, 104, 112, 120, 128, 136, 144, 152
    *(u64 *)(r10 + STACK_ENTRY + \off) = 0
.endr
.endm

; Zero the `socks` entry at STACK_SOCK.
.macro zero_sock
.irp off, 0, 8, 16, 24, 32, 40, 48, 56
    *(u64 *)(r10 + STACK_SOCK + \off) = 0
.endr
.endm

; Go to `skip` when the cgroup filter is on and the current task is outside the cgroup v2
; subtree held at key 0 of `cgroups` (bpf_current_task_under_cgroup, 4.9+). `cfg` is the
; register holding the config value. Clobbers r0-r5.
.macro filter_cgroup cfg, skip
    r1 = *(u32 *)(\cfg + CFG_CGROUP)
    if r1 == 0 goto done\@
    r1 = map cgroups ll
    r2 = 0
    call bpf_current_task_under_cgroup
    if r0 != 1 goto \skip
done\@:
.endm

; Go to `skip` unless the current task passes the pid, uid and cgroup filters.
.macro filter_task skip
    map_lookup config, u32, STACK_SCRATCH, 0
    if r0 == 0 goto \skip
    r1 = *(u32 *)(r0 + CFG_PID)
    *(u32 *)(r10 + STACK_SCRATCH) = r1
    r1 = *(u32 *)(r0 + CFG_UID)
    *(u32 *)(r10 + STACK_SCRATCH + 4) = r1
    filter_cgroup r0, \skip
    r1 = *(u32 *)(r10 + STACK_SCRATCH)
    if r1 == 0 goto uid\@
    call bpf_get_current_pid_tgid
    r0 >>= 32
    r1 = *(u32 *)(r10 + STACK_SCRATCH)
    if r1 != r0 goto \skip
uid\@:
    ; 64-bit compares only: JMP32 came in 5.1. (ALU32 zero-extends: w2 = -1 is 0xffffffff.)
    r1 = *(u32 *)(r10 + STACK_SCRATCH + 4)
    w2 = -1
    if r1 == r2 goto done\@
    call bpf_get_current_uid_gid
    w0 = w0                                 ; the uid: the low half
    r1 = *(u32 *)(r10 + STACK_SCRATCH + 4)
    if r1 != r0 goto \skip
done\@:
.endm

; Go to `skip` unless the event in `ev` passes the family and port filters; `port` is the
; offset of the port to check (remote for connects, local for accepts).
.macro filter_addr ev, port, skip
    map_lookup config, u32, STACK_SCRATCH, 0
    if r0 == 0 goto \skip
    r1 = *(u32 *)(r0 + CFG_FAMILY)
    if r1 == 0 goto port\@
    ; IPv4-mapped IPv6 peers count as IPv4.
    r2 = AF_INET
    r3 = *(u16 *)(\ev + EV_REMOTE)
    if r3 == AF_INET goto family\@
    r3 = *(u32 *)(\ev + EV_REMOTE_ADDR6)
    if r3 != 0 goto v6\@
    r3 = *(u32 *)(\ev + EV_REMOTE_ADDR6_W1)
    if r3 != 0 goto v6\@
    r3 = *(u32 *)(\ev + EV_REMOTE_ADDR6_W2)
    w4 = -65536                             ; 00 00 ff ff (::ffff:a.b.c.d), zero-extended
    if r3 == r4 goto family\@
v6\@:
    r2 = AF_INET6
family\@:
    if r1 != r2 goto \skip
port\@:
    r1 = *(u32 *)(r0 + CFG_PORT_FILTER)
    if r1 == 0 goto done\@
    r1 = *(u16 *)(\ev + \port)
    r1 = be16 r1
    map_lookup ports, u32, STACK_SCRATCH, r1
    if r0 == 0 goto \skip
done\@:
.endm

; pid, tid, uid, cgroup and comm of the current task into the event.
.macro task_info ev
    call bpf_get_current_pid_tgid
    *(u32 *)(\ev + EV_TID) = r0
    r0 >>= 32
    *(u32 *)(\ev + EV_PID) = r0
    call bpf_get_current_uid_gid
    *(u32 *)(\ev + EV_UID) = r0
    call bpf_get_current_cgroup_id
    *(u64 *)(\ev + EV_CGROUP) = r0
    r1 = \ev
    r1 += EV_COMM
    r2 = 16
    call bpf_get_current_comm
.endm

; The socket's network namespace inode (sk->__sk_common.skc_net.net->ns.inum) into the event.
.macro read_netns sk, ev
    *(u64 *)(r10 + STACK_SCRATCH2) = 0
    probe_read r10, STACK_SCRATCH2, 8, \sk, offsetof(sock_common, skc_net)
    ; Written out: the source is already in r3, where probe_read would copy it.
    r3 = *(u64 *)(r10 + STACK_SCRATCH2)
    r3 += offsetof(net, ns.inum)
    r1 = \ev
    r1 += EV_NETNS
    r2 = 4
    call bpf_probe_read_kernel
.endm

; The socket's pending error (ECONNREFUSED, ETIMEDOUT, ...) into the event's error field.
.macro read_sk_error sk, ev
    probe_read \ev, EV_ERROR, 4, \sk, offsetof(sock, sk_err)
.endm

; The local port into ev + EV_LOCAL_PORT (network order). inet_sport, not skc_num: a socket
; reset before accept() returns has had skc_num cleared with its port binding, while
; inet_sport keeps the port.
.macro read_local_port sk, ev
    probe_read \ev, EV_LOCAL_PORT, 2, \sk, offsetof(inet_sock, inet_sport)
.endm

; Go to `skip` unless `sk` is a TCP socket of family AF_INET or AF_INET6.
.macro require_tcp sk, skip
    check_tcp_protocol \sk, \skip
    *(u64 *)(r10 + STACK_SCRATCH) = 0
    probe_read r10, STACK_SCRATCH, 2, \sk, offsetof(sock_common, skc_family)
    r1 = *(u16 *)(r10 + STACK_SCRATCH)
    if r1 == AF_INET goto done\@
    if r1 != AF_INET6 goto \skip
done\@:
.endm

; This host's end of `sk` as a sockaddr_in/sockaddr_in6 at ev + EV_LOCAL.
.macro fill_local sk, ev
    probe_read \ev, EV_LOCAL, 2, \sk, offsetof(sock_common, skc_family)
    read_local_port \sk, \ev
    r1 = *(u16 *)(\ev + EV_LOCAL)
    if r1 == AF_INET6 goto v6\@
    probe_read \ev, EV_LOCAL_ADDR4, 4, \sk, offsetof(sock_common, skc_rcv_saddr)
    goto done\@
v6\@:
    probe_read \ev, EV_LOCAL_ADDR6, 16, \sk, offsetof(sock_common, skc_v6_rcv_saddr)
done\@:
.endm

; The peer's end of `sk` as a sockaddr_in/sockaddr_in6 at ev + EV_REMOTE.
.macro fill_remote sk, ev
    probe_read \ev, EV_REMOTE, 2, \sk, offsetof(sock_common, skc_family)
    probe_read \ev, EV_REMOTE_PORT, 2, \sk, offsetof(sock_common, skc_dport)
    r1 = *(u16 *)(\ev + EV_REMOTE)
    if r1 == AF_INET6 goto v6\@
    probe_read \ev, EV_REMOTE_ADDR4, 4, \sk, offsetof(sock_common, skc_daddr)
    goto done\@
v6\@:
    probe_read \ev, EV_REMOTE_ADDR6, 16, \sk, offsetof(sock_common, skc_v6_daddr)
done\@:
.endm

; The socket's opaque id and, where the variant can read it, its network namespace.
.macro sock_ids sk, ev
    *(u64 *)(\ev + EV_SOCK) = \sk
    read_netns \sk, \ev
.endm

; The socket's id for user space: its address XOR the time of its first record, so a socket
; allocated later at the same address gets another id. The time is spread over all 64 bits
; first (times the golden ratio's Fibonacci constant): a plain XOR let two live sockets whose
; addresses differ in the bits their birth times differ in share an id (10 to 28 in 200,000
; here). Needs EV_SOCK and EV_TS set.
.macro birth_id ev
    r1 = *(u64 *)(\ev + EV_SOCK)
    r2 = *(u64 *)(\ev + EV_TS)
    r3 = 0x9e3779b97f4a7c15 ll
    r2 *= r3
    r1 ^= r2
    *(u64 *)(\ev + EV_SOCK) = r1
.endm

; Send the EV_SIZE-byte event at `ev` to the ring (src/bpf/rings/: the BPF ring buffer or this
; CPU's perf ring). `ctx` must not be r1-r5 other than r1.
.macro emit ctx, ev
    ring_output \ctx, \ev
    if r0 == 0 goto sent\@
    ; A full ring (or a CPU without one): count it here, exactly. A perf ring's own LOST
    ; records are only written once it has room again; the ring buffer writes none.
    count_drop DROP_RING_FULL
sent\@:
.endm

; Count one record that could not be sent, in the `drops` slot `reason` of this CPU.
; Clobbers r0-r5 and STACK_SCRATCH.
.macro count_drop reason
    map_lookup drops, u32, STACK_SCRATCH, \reason
    if r0 == 0 goto done\@
    r1 = 1
    lock *(u64 *)(r0 + 0) += r1
done\@:
.endm

; One of the two records of the `conns` entry at `entry` is out: count it, and free the entry
; when this was the second (STACK_KEY must hold the socket). XADD and a read of the same word:
; the later adder always reads 2, so the entry is freed at least once (twice is harmless).
.macro release_conn entry
    r1 = 1
    lock *(u32 *)(\entry + CONN_REFS) += w1
    r1 = *(u32 *)(\entry + CONN_REFS)
    if r1 < 2 goto kept\@
    r2 = r10
    r2 += STACK_KEY
    r1 = map conns ll
    call bpf_map_delete_elem
kept\@:
.endm

; Store the stack event's kind and timestamp (now).
.macro stamp ev, kind
    r1 = \kind
    *(u8 *)(\ev + EV_KIND) = r1
    call bpf_ktime_get_ns
    *(u64 *)(\ev + EV_TS) = r0
.endm

; The socket behind file descriptor `fd` of the current task, into r7 (0 when there is none):
; current->files->fdt->fd[fd]->private_data (a struct socket)->sk.
.macro fd_to_sock fd, skip
    r7 = \fd
    call bpf_get_current_task
    r3 = r0
    r3 += offsetof(task_struct, files)
    fd_read_ptr
    r3 += offsetof(files_struct, fdt)
    fd_read_ptr
    ; fdt: check the fd against max_fds before indexing fd[].
    r9 = r3
    *(u64 *)(r10 + STACK_SCRATCH2) = 0
    r1 = r10
    r1 += STACK_SCRATCH2
    r2 = 4
    r3 += offsetof(fdtable, max_fds)
    call bpf_probe_read_kernel
    r1 = *(u32 *)(r10 + STACK_SCRATCH2)
    if r7 >= r1 goto \skip
    r3 = r9
    r3 += offsetof(fdtable, fd)
    fd_read_ptr
    r7 <<= 3
    r3 += r7
    fd_read_ptr
    r3 += offsetof(file, private_data)
    fd_read_ptr
    r3 += offsetof(socket, sk)
    fd_read_ptr
    r7 = r3
    if r7 == 0 goto \skip
.endm

; r3 = *(u64 *)r3, read with bpf_probe_read_kernel; 0 on a fault.
.macro fd_read_ptr
    *(u64 *)(r10 + STACK_SCRATCH2) = 0
    r1 = r10
    r1 += STACK_SCRATCH2
    r2 = 8
    call bpf_probe_read_kernel
    r3 = *(u64 *)(r10 + STACK_SCRATCH2)
.endm

; A connect call returned: r6 = ctx, r7 = sk, r9 = its return value (sign-extended), the
; stack event zeroed with the caller's sockaddr at EV_REMOTE. Emits the `connect` record and,
; when the handshake already ended, the outcome record waiting in the `conns` entry.
.macro connect_done
    require_tcp r7, out\@
    r8 = r10
    r8 += STACK_EVENT
    map_lookup conns, u64, STACK_KEY, r7
    if r0 == 0 goto nosyn\@
    ; A connect() repeated while the handshake runs (EALREADY) is not a new attempt.
    r1 = *(u16 *)(r0 + CONN_EMITTED)
    if r1 != 0 goto out\@
    ; The state change saw the socket close before any SYN (no free port) and the call
    ; failed: that is this connect's own refusal.
    r1 = *(u16 *)(r0 + CONN_OUTCOME)
    if r1 != NO_SYN goto syn\@
    if r9 s>= 0 goto syn\@
    if r9 == NEG_EINPROGRESS goto syn\@
    r2 = r10
    r2 += STACK_KEY
    r1 = map conns ll
    call bpf_map_delete_elem
    goto sync\@
syn\@:
    *(u64 *)(r10 + STACK_ENTRY) = r0
    r1 = *(u64 *)(r0 + CONN_START)
    *(u64 *)(r8 + EV_TS) = r1
    r1 = KIND_CONNECT
    *(u8 *)(r8 + EV_KIND) = r1
    task_info r8
    sock_ids r7, r8
    birth_id r8
    r0 = *(u64 *)(r10 + STACK_ENTRY)
    r1 = *(u16 *)(r0 + CONN_OUTCOME)
    if r1 == OUTCOME_SENT goto ended\@
    fill_local r7, r8
    fill_remote r7, r8
    goto send\@
ended\@:
    ; The handshake already failed or succeeded: a failed socket has had its ports and
    ; addresses cleared by now, so take them from the outcome record.
    copy_entry_addrs
send\@:
    emit r6, r8
    r9 = *(u64 *)(r10 + STACK_ENTRY)
    r1 = 1
    *(u16 *)(r9 + CONN_EMITTED) = r1
    release_conn r9
    goto out\@
nosyn\@:
    ; No SYN was sent: a failed call is a connect record with its error; anything else
    ; (filtered at SYN_SENT, or not a new attempt) is not ours to report.
    if r9 s>= 0 goto out\@
    if r9 == NEG_EINPROGRESS goto out\@
    if r9 == NEG_EALREADY goto out\@
    if r9 == NEG_EISCONN goto out\@
sync\@:
    filter_addr r8, EV_REMOTE_PORT, out\@
    r9 = -r9
    *(u32 *)(r8 + EV_ERROR) = r9
    stamp r8, KIND_CONNECT
    task_info r8
    fill_local r7, r8
    sock_ids r7, r8
    birth_id r8
    emit r6, r8
out\@:
.endm

; An accepted socket in r7, in the accepting task: emit its `accept` record.
.macro accept_done
    require_tcp r7, out\@
    r8 = r10
    r8 += STACK_EVENT
    fill_local r7, r8
    fill_remote r7, r8
    ; A socket with no peer is not an accepted one (MPTCP grafts its connecting subflows).
    r1 = *(u16 *)(r8 + EV_REMOTE_PORT)
    if r1 == 0 goto out\@
    filter_addr r8, EV_LOCAL_PORT, forget\@
    filter_task forget\@
    stamp r8, KIND_ACCEPT
    task_info r8
    sock_ids r7, r8
    birth_id r8
    emit r6, r8
    own_sock
    goto out\@
forget\@:
    ; Not ours to show: nor is its close (the state change made the entry, unfiltered).
    r2 = r10
    r2 += STACK_KEY
    *(u64 *)(r2 + 0) = r7
    r1 = map socks ll
    call bpf_map_delete_elem
out\@:
.endm

; The owner fields of the event at `ev` (pid, tid, uid, cgroup, comm, and its socket id) into
; the `socks` entry at `base` + `at`.
.macro owner_to_sock ev, base, at
.irp f, PID, TID, UID
    r1 = *(u32 *)(\ev + EV_\f)
    *(u32 *)(\base + \at + SOCK_\f) = r1
.endr
    r1 = *(u64 *)(\ev + EV_CGROUP)
    *(u64 *)(\base + \at + SOCK_CGROUP) = r1
    r1 = *(u64 *)(\ev + EV_COMM)
    *(u64 *)(\base + \at + SOCK_COMM) = r1
    r1 = *(u64 *)(\ev + EV_COMM + 8)
    *(u64 *)(\base + \at + SOCK_COMM + 8) = r1
    r1 = *(u64 *)(\ev + EV_SOCK)
    *(u64 *)(\base + \at + SOCK_ID) = r1
.endm

; The `socks` entry at `entry` (a map value) into the event at `ev`: the owner fields, zero
; when it has none, and the socket's id.
.macro sock_to_event entry, ev
.irp f, PID, TID, UID
    r1 = *(u32 *)(\entry + SOCK_\f)
    *(u32 *)(\ev + EV_\f) = r1
.endr
    r1 = *(u64 *)(\entry + SOCK_CGROUP)
    *(u64 *)(\ev + EV_CGROUP) = r1
    r1 = *(u64 *)(\entry + SOCK_COMM)
    *(u64 *)(\ev + EV_COMM) = r1
    r1 = *(u64 *)(\entry + SOCK_COMM + 8)
    *(u64 *)(\ev + EV_COMM + 8) = r1
    r1 = *(u64 *)(\entry + SOCK_ID)
    *(u64 *)(\ev + EV_SOCK) = r1
.endm

; Go to `skip` when any filter on the task (pid, uid, cgroup) is on: for a record whose
; owner is unknown, which no such filter can pass. Clobbers r0-r5.
.macro filter_any_task skip
    map_lookup config, u32, STACK_SCRATCH, 0
    if r0 == 0 goto \skip
    r1 = *(u32 *)(r0 + CFG_PID)
    if r1 != 0 goto \skip
    r1 = *(u32 *)(r0 + CFG_CGROUP)
    if r1 != 0 goto \skip
    r1 = *(u32 *)(r0 + CFG_UID)
    w2 = -1
    if r1 != r2 goto \skip
.endm

; CLOSE_PEER_FIN into the event's EV_CLOSE_FLAGS when `sk`'s SOCK_DONE flag (sk_flags, in sock_common) is set.
.macro read_peer_fin sk, ev
    *(u64 *)(r10 + STACK_SCRATCH2) = 0
    probe_read r10, STACK_SCRATCH2, 8, \sk, offsetof(sock_common, skc_flags)
    r1 = *(u64 *)(r10 + STACK_SCRATCH2)
    r1 >>= SOCK_DONE
    r1 &= 1
    if r1 == 0 goto done\@
    r1 = *(u8 *)(\ev + EV_CLOSE_FLAGS)
    r1 |= CLOSE_PEER_FIN
    *(u8 *)(\ev + EV_CLOSE_FLAGS) = r1
done\@:
.endm

; Store the `socks` entry at STACK_SOCK for the socket at STACK_KEY; `full` is where to go
; when the map has no room. Clobbers r0-r5.
.macro put_sock full
    r1 = map socks ll
    r2 = r10
    r2 += STACK_KEY
    r3 = r10
    r3 += STACK_SOCK
    r4 = BPF_ANY
    call bpf_map_update_elem
    if r0 != 0 goto \full
.endm

; The accepting task in the event at r8 owns the socket in r7: its close record will name it.
; STACK_KEY holds the socket (filter_addr and task_info leave it).
.macro own_sock
    *(u64 *)(r10 + STACK_KEY) = r7
    r2 = r10
    r2 += STACK_KEY
    r1 = map socks ll
    call bpf_map_lookup_elem
    if r0 == 0 goto new\@
    r9 = r0
    owner_to_sock r8, r9, 0
    r1 = *(u8 *)(r9 + SOCK_FLAGS)
    r1 |= CLOSE_OWNER
    *(u8 *)(r9 + SOCK_FLAGS) = r1
    goto done\@
new\@:
    ; Reset before accept() returned it: closed already, and its close record is out (with
    ; no owner). An entry now would never be freed.
    *(u64 *)(r10 + STACK_SCRATCH) = 0
    probe_read r10, STACK_SCRATCH, 1, r7, offsetof(sock_common, skc_state)
    r1 = *(u8 *)(r10 + STACK_SCRATCH)
    if r1 == TCP_CLOSE goto done\@
    ; Established before the probes were attached: the owner is known from now on, the
    ; start is not. The SYN was the peer's, so bytes_acked counts payload only.
    zero_sock
    owner_to_sock r8, r10, STACK_SOCK
    r1 = CLOSE_OWNER | CLOSE_BASE
    *(u8 *)(r10 + STACK_SOCK + SOCK_FLAGS) = r1
    put_sock full\@
    goto done\@
full\@:
    owner_lost
done\@:
.endm

; A `socks` entry could not be made: the socket's close will come without its owner. With a
; filter on the task that close is dropped, so count it lost; without one it is still sent
; (owner null, as for a connection older than the probes), and nothing is lost.
.macro owner_lost
    filter_any_task lost\@
    goto done\@
lost\@:
    count_drop DROP_STATE_FULL
done\@:
.endm

; Copy the caller's sockaddr (SOCKADDR_SIZE bytes) from the `connecting` entry in r0 to the
; stack event's EV_REMOTE, 4 bytes at a time: STACK_EVENT + EV_REMOTE is only 4-byte aligned,
; and the verifier wants aligned stack access.
.macro copy_call_addr
.irp off, 0, 4, 8, 12, 16, 20, 24
    r1 = *(u32 *)(r0 + CALL_ADDR + \off)
    *(u32 *)(r10 + STACK_EVENT + EV_REMOTE + \off) = r1
.endr
.endm

; Copy the local and remote sockaddrs of the `conns` entry in r0 (its outcome record) to
; the stack event: EV_LOCAL up to EV_BYTES_ACKED, 4 bytes at a time (aligned, as
; copy_call_addr).
.macro copy_entry_addrs
.irp off, 0, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 44, 48, 52
    r1 = *(u32 *)(r0 + CONN_EV + EV_LOCAL + \off)
    *(u32 *)(r10 + STACK_EVENT + EV_LOCAL + \off) = r1
.endr
.endm
