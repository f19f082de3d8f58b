; Prelude of probes.o: the kernel's BTF gives every layout, so every feature is on.
; The no-BTF twin (nobtf.s) defines the same macros; common.s and state.s use them.

; Go to `skip` unless `sk` is a TCP socket (struct sock's sk_protocol).
.macro check_tcp_protocol sk, skip
    *(u64 *)(r10 + STACK_SCRATCH) = 0
    r1 = r10
    r1 += STACK_SCRATCH
    r2 = 2
    r3 = \sk
    r3 += offsetof(sock, sk_protocol)
    call bpf_probe_read_kernel
    r1 = *(u16 *)(r10 + STACK_SCRATCH)
    if r1 != IPPROTO_TCP goto \skip
.endm

; The socket's network namespace inode (sk->__sk_common.skc_net.net->ns.inum) into the event.
.macro read_netns sk, ev
    r1 = r10
    r1 += STACK_SCRATCH2
    r2 = 8
    r3 = \sk
    r3 += offsetof(sock_common, skc_net)
    call bpf_probe_read_kernel
    r3 = *(u64 *)(r10 + STACK_SCRATCH2)
    r3 += offsetof(net, ns.inum)
    r1 = \ev
    r1 += EV_NETNS
    r2 = 4
    call bpf_probe_read_kernel
.endm

; The socket's pending error (ECONNREFUSED, ETIMEDOUT, ...) into the event's error field.
.macro read_sk_error sk, ev
    r1 = \ev
    r1 += EV_ERROR
    r2 = 4
    r3 = \sk
    r3 += offsetof(sock, sk_err)
    call bpf_probe_read_kernel
.endm

; The local port into ev + EV_LOCAL_PORT (network order). inet_sport, not skc_num: a socket
; reset before accept() returns has had skc_num cleared with its port binding, while
; inet_sport keeps the port.
.macro read_local_port sk, ev
    r1 = \ev
    r1 += EV_LOCAL_PORT
    r2 = 2
    r3 = \sk
    r3 += offsetof(inet_sock, inet_sport)
    call bpf_probe_read_kernel
.endm
