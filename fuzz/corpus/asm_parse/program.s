.license "GPL"
.equ OFF, -8
.map events, perf_event_array, 4, 4, 0
.macro save reg, off
  *(u64 *)(r10 + \off) = \reg
.endm
.section kprobe/tcp_v4_connect
entry:
  r6 = r1
  r2 = *(u64 *)(r6 + PT_REGS_PARM1)
  r3 = *(u16 *)(r2 + offsetof(sock_common, skc_family))
  r4 += offsetof(sock_common, skc_v6_daddr) + 4
  save r6, OFF
  if r3 != 2 goto done\@
  r1 = map events ll
  call bpf_perf_event_output
done:
  r0 = 0
  exit
