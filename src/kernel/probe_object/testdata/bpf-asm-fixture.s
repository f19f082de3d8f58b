; A fixture for conntrace's probe_object tests, assembled with bpf-asm.
.license "GPL"
.map events, perf_event_array, 4, 4, 0
.map filter, hash, 8, 16, 1024

.section kprobe/tcp_v4_connect
    r6 = *(u64 *)(r1 + 112)
    r2 = *(u16 *)(r6 + offsetof(sock_common, skc_dport))
    r3 = *(u32 *)(r6 + offsetof(sock_common, skc_v6_daddr) + 4)
    r4 = r6
    r4 += offsetof(sock_common, skc_v6_rcv_saddr)
    r1 = map filter ll
    r0 = 0
    exit

.section tracepoint/syscalls/sys_exit_connect
    r1 = map events ll
    r0 = 0
    exit
