.section s
l: if w1 s>= -0x80000000 goto l
r1 = 0xffffffffffffffff ll
lock *(u32 *)(r1 - 0x8) ^= w9
