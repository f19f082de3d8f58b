; Prelude of probes.o: the kernel's BTF gives every layout, so every feature is on.
; The no-BTF twin (nobtf.s) defines the same macro its own way; common.s and state.s use it.

; Go to `skip` unless `sk` is a TCP socket (struct sock's sk_protocol).
.macro check_tcp_protocol sk, skip
    *(u64 *)(r10 + STACK_SCRATCH) = 0
    probe_read r10, STACK_SCRATCH, 2, \sk, offsetof(sock, sk_protocol)
    r1 = *(u16 *)(r10 + STACK_SCRATCH)
    if r1 != IPPROTO_TCP goto \skip
.endm
