; Layout discovery without BTF (src/session/discover.rs): before the main programs load, this
; probe dumps the sockets conntrace makes for the purpose, so user space can find the fields
; beyond the built-in sock_common table (sock.sk_err, sock_common.skc_flags,
; inet_sock.inet_sport, tcp_sock.bytes_acked, tcp_sock.bytes_received, net.ns.inum) and the
; TCP protocol pointers. Both objects contain it; only the no-BTF path loads it.
;
; kprobe tcp_set_state(sk, state), at entry: for a socket whose local port (skc_num, host
; order) user space put into `layout_ports` (port -> slot), the sock's first LAYOUT_SOCK
; bytes, then LAYOUT_NET bytes of the struct net its skc_net points to, the new state and a
; count of calls go into slot `slot` of `layout_dump`. Each call overwrites: the last state
; change wins.
;
; The sock is read in SOCK_PIECE pieces: it is a struct tcp_sock (tcp6_sock for IPv6),
; smaller than LAYOUT_SOCK, so the dump's tail is whatever the slab holds next, and a piece
; the kernel cannot read comes back as zeros without taking the others with it.

; Bytes of the sock: struct tcp_sock, which begins with inet_connection_sock, inet_sock and
; sock. bytes_acked ends at 1456 (5.10), 1504 (6.1), 1848 (6.12), 1832 (6.18) in Debian's
; and this host's kernels, and tcp_sock is 2216-2368 bytes there; lockdep and spinlock
; debugging grow each of its dozen locks and timers by some 60 bytes, which LAYOUT_SOCK
; still covers.
.equ LAYOUT_SOCK, 4096
; Bytes per probe_read of the sock: a layout of the BPF code alone, no Rust copy.
.equ SOCK_PIECE, LAYOUT_SOCK / 4
.equ LAYOUT_NET, 512           ; bytes of its struct net
.equ LAYOUT_STATE, LAYOUT_SOCK + LAYOUT_NET    ; u32: the state tcp_set_state was asked for
.equ LAYOUT_CALLS, LAYOUT_STATE + 4            ; u32: state changes seen
.equ LAYOUT_SIZE, LAYOUT_CALLS + 4             ; 4616
; Five clients' sockets, an unused listener, and the one socket the data exchange's server
; accepted (keyed by its listener's port, which no other socket has while it is open).
.equ LAYOUT_SLOTS, 7

.map layout_ports, hash, 4, 4, LAYOUT_SLOTS
.map layout_dump, array, 4, LAYOUT_SIZE, LAYOUT_SLOTS

.section kprobe/tcp_set_state
    r6 = r1
    r7 = *(u64 *)(r6 + PT_REGS_PARM1)
    *(u64 *)(r10 + STACK_SCRATCH) = 0
    probe_read r10, STACK_SCRATCH, 2, r7, offsetof(sock_common, skc_num)
    r1 = *(u16 *)(r10 + STACK_SCRATCH)
    map_lookup layout_ports, u32, STACK_KEY, r1
    if r0 == 0 goto out
    r1 = *(u32 *)(r0 + 0)
    map_lookup layout_dump, u32, STACK_KEY, r1
    if r0 == 0 goto out
    r8 = r0
    ; One probe_read of a constant size per piece: the 4.19 verifier takes it.
.irp at, 0, SOCK_PIECE, 2 * SOCK_PIECE, 3 * SOCK_PIECE
    probe_read r8, \at, SOCK_PIECE, r7, \at
.endr
    *(u64 *)(r10 + STACK_SCRATCH) = 0
    probe_read r10, STACK_SCRATCH, 8, r7, offsetof(sock_common, skc_net)
    ; Written out: the source is the pointer just read (a null one leaves zeros).
    r1 = r8
    r1 += LAYOUT_SOCK
    r2 = LAYOUT_NET
    r3 = *(u64 *)(r10 + STACK_SCRATCH)
    call bpf_probe_read_kernel
    r1 = *(u64 *)(r6 + PT_REGS_PARM2)
    *(u32 *)(r8 + LAYOUT_STATE) = r1
    r1 = 1
    lock *(u32 *)(r8 + LAYOUT_CALLS) += w1
out:
    r0 = 0
    exit
