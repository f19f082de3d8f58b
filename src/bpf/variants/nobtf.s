; Prelude of probes-nobtf.o, for kernels without BTF. The sock_common fields come from the
; built-in table (src/kernel/btf/builtin.rs); sock.sk_err, inet_sock.inet_sport and
; net.ns.inum from the layout discovery that runs before these programs load
; (src/session/discover.rs, src/bpf/layout.s), which the loader resolves like any other
; field. The self-test then proves every one. Only the kprobe backend is used without BTF.

; The TCP protocol structs, &tcp_prot and &tcpv6_prot (0 when IPv6 is off), as the layout
; discovery found them in its own sockets' skc_prot: one entry, two u64s.
.map tcp_prots, array, 4, 16, 1

; Go to `skip` unless `sk` is a TCP socket: its skc_prot is &tcp_prot or &tcpv6_prot (so not
; SCTP, DCCP or MPTCP's own socket, whose sk_protocol BTF would show).
.macro check_tcp_protocol sk, skip
    *(u64 *)(r10 + STACK_SCRATCH) = 0
    probe_read r10, STACK_SCRATCH, 8, \sk, offsetof(sock_common, skc_prot)
    map_lookup tcp_prots, u32, STACK_SCRATCH2, 0
    if r0 == 0 goto \skip
    r1 = *(u64 *)(r10 + STACK_SCRATCH)
    if r1 == 0 goto \skip
    r2 = *(u64 *)(r0 + 0)
    if r1 == r2 goto done\@
    r2 = *(u64 *)(r0 + 8)
    if r1 != r2 goto \skip
done\@:
.endm

; The tp_btf programs need the kernel's BTF: none here (btf.s has them).
.macro btf_only_programs
.endm
