# Written as llvm writes assembly (llc -march=bpf, clang -S -target bpf): it must assemble with
# bpf-asm to the same instructions, license and symbols as with llvm-mc-19 (tests/corpus.rs).
	.text
	.file	"probe.c"
	.globl	f                               # -- Begin function f
	.p2align	3
	.type	f,@function
f:                                      # @f
.Lf$local:
	.type	.Lf$local,@function
	.cfi_startproc
# %bb.0:
	r0 = r1
	r0 *= 3
	if r0 > 10 goto LBB0_2
	r0 = 0x1122334455667788 ll
LBB0_2:
	exit
.Lfunc_end0:
	.size	f, .Lfunc_end0-f
	.size	.Lf$local, .Lfunc_end0-f
	.cfi_endproc
                                        # -- End function
	.section	"kprobe/tcp_v4_connect","ax",@progbits
	.globl	kp
	.p2align	3
	.type	kp,@function
kp:
	r2 = *(u64 *)(r1 + 112)
	*(u64 *)(r10 - 8) = r2
	r0 = 0
	exit
.Lfunc_end1:
	.size	kp, .Lfunc_end1-kp
helper:
	.type helper,@function
	.local helper
	r0 = 1
	exit
	.size helper, 16
	.weak wk
wk:
	exit
	.type	_license,@object                # @_license
	.section	"license","aw",@progbits
	.globl	_license
_license:
	.asciz	"GPL"
	.size	_license, 4

	.ident	"clang version 19.1.7"
	.section	".note.GNU-stack","",@progbits
	.addrsig
	.addrsig_sym _license
