; Prelude of the objects for kernels with the BPF ring buffer (5.8+): one ring for every CPU,
; in the order records are reserved (src/kernel/ring/bpf_ring.rs reads it). Its size is set at
; load time (src/session/rings.rs).

.map ring, ringbuf, 0, 0, 0

; Send the EV_SIZE-byte event at `ev`; r0 = 0 when it was sent. Clobbers r0-r5 and STACK_RING.
; Like the perf rings' watermark, the reader is woken only once an eighth of the ring is
; waiting (a quiet ring is read at its poll timeout): waking it for every record cost a
; wake-up and a context switch per event.
.macro ring_output ctx, ev
    r1 = map ring ll
    r2 = BPF_RB_RING_SIZE
    call bpf_ringbuf_query
    r0 >>= 3
    *(u64 *)(r10 + STACK_RING) = r0
    r1 = map ring ll
    r2 = BPF_RB_AVAIL_DATA
    call bpf_ringbuf_query
    r4 = BPF_RB_NO_WAKEUP
    r1 = *(u64 *)(r10 + STACK_RING)
    if r0 < r1 goto quiet\@
    r4 = BPF_RB_FORCE_WAKEUP
quiet\@:
    r1 = map ring ll
    r2 = \ev
    r3 = EV_SIZE
    call bpf_ringbuf_output
.endm
