; Prelude of probes.o: the kernel's BTF gives every layout, so every feature is on.
; The no-BTF twin (nobtf.s) defines the same macro its own way; common.s and state.s use it.

; Go to `skip` unless `sk` is a TCP socket (struct sock's sk_protocol).
.macro check_tcp_protocol sk, skip
    *(u64 *)(r10 + STACK_SCRATCH) = 0
    probe_read r10, STACK_SCRATCH, 2, \sk, offsetof(sock, sk_protocol)
    r1 = *(u16 *)(r10 + STACK_SCRATCH)
    if r1 != IPPROTO_TCP goto \skip
.endm

; The state program as tp_btf (its socket state in socket-local storage), invoked at the end
; of state.s, which defines what it uses. nobtf.s has none: tp_btf needs the kernel's BTF.
.macro btf_only_programs
.section tp_btf/inet_sock_set_state
    state_program nest_begin, nest_done, btf_enter, raw_new_state, raw_local_port, raw_fill, storage_forget_new, storage_put, storage_passive, storage_find, storage_forget, storage_track

; Attached right after the one above (src/session/backend.rs).
.section tp_btf.rescue/inet_sock_set_state
    state_program nest_rescue, no_nesting, btf_enter, raw_new_state, raw_local_port, raw_fill, storage_forget_new, storage_put, storage_passive, storage_find, storage_forget, storage_track

; Where the state is in socket storage, the socket's end reads it there.
.section tp_btf/tcp_destroy_sock
    destroy_program btf_socket, storage_find, storage_forget
.endm
