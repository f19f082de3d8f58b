; Prelude of the objects for kernels without the BPF ring buffer (before 5.8): records go to
; this CPU's perf ring through the perf event array (src/kernel/ring/rings.rs reads them).
; The perf event wakes the reader once an eighth of its ring is waiting (its watermark).

.map events, perf_event_array, 4, 4, 0          ; max_entries 0: the loader sets the CPU count

; Send the EV_SIZE-byte event at `ev`; r0 = 0 when it was sent. Clobbers r0-r5.
.macro ring_output ctx, ev
    r4 = \ev
    r1 = \ctx
    r2 = map events ll
    r3 = 0xffffffff ll                           ; BPF_F_CURRENT_CPU
    r5 = EV_SIZE
    call bpf_perf_event_output
.endm
