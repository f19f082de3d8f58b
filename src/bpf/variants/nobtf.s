; Prelude of probes-nobtf.o, for kernels without BTF: only the built-in sock_common layout
; (src/kernel/btf/builtin.rs) is known, so these macros read no field outside it. The loader then
; never meets a field the fallback lacks. Only the kprobe backend is used without BTF.

; sk_protocol lives in struct sock, whose layout varies: no check. The connect hooks imply
; TCP (tcp_v4_connect, tcp_v6_connect, tcp_connect); the accept hooks do not quite:
; security_sock_graft and __inet_accept also see SCTP's (and DCCP's, on kernels that still have
; it) AF_INET/AF_INET6 accepts, which without BTF show as TCP.
.macro check_tcp_protocol sk, skip
.endm

; struct net varies with the config: netns stays 0, shown as unknown.
.macro read_netns sk, ev
.endm

; sk_err lives in struct sock: failed records carry no error.
.macro read_sk_error sk, ev
.endm

; struct inet_sock varies: the local port comes from sock_common's skc_num (host order), which
; a connection reset before accept() returns has already lost (its accept shows port 0).
.macro read_local_port sk, ev
    probe_read \ev, EV_LOCAL_PORT, 2, \sk, offsetof(sock_common, skc_num)
    r1 = *(u16 *)(\ev + EV_LOCAL_PORT)
    r1 = be16 r1
    *(u16 *)(\ev + EV_LOCAL_PORT) = r1
.endm
