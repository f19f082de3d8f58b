; Prelude of probes.o: the kernel's BTF gives every layout, so every feature is on.
; The no-BTF twin (nobtf.s) defines the same macros; common.s and state.s use them.

; Go to `skip` unless `sk` is a TCP socket (struct sock's sk_protocol).
.macro check_tcp_protocol sk, skip
    *(u64 *)(r10 + STACK_SCRATCH) = 0
    probe_read r10, STACK_SCRATCH, 2, \sk, offsetof(sock, sk_protocol)
    r1 = *(u16 *)(r10 + STACK_SCRATCH)
    if r1 != IPPROTO_TCP goto \skip
.endm

; The socket's network namespace inode (sk->__sk_common.skc_net.net->ns.inum) into the event.
.macro read_netns sk, ev
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
