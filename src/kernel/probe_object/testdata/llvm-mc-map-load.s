	.section maps,"aw",@progbits
	.globl events
	.type events,@object
	.size events,20
events:
	.long 4,4,4,0,0
	.section kprobe/tcp_v4_connect,"ax",@progbits
	.globl kprobe_tcp_v4_connect
	.type kprobe_tcp_v4_connect,@function
kprobe_tcp_v4_connect:
	r0 = 0
	r1 = events ll
	exit
	.section license,"aw",@progbits
	.asciz "GPL"
