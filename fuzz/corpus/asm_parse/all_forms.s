.section .text
r1 = r2
w1 = w2
r1 = -5
w1 = 0x7fffffff
r1 += r2
w1 -= 3
r1 s>>= 3
r1 = -r1
w1 = -w1
r1 = be16 r1
r1 = le64 r1
r1 = *(u8 *)(r2 - 8)
*(u32 *)(r10 - 4) = r1
*(u64 *)(r10 - 16) = 7
*(u8 *)(r10 - 16) = -7
r1 = 0x1122334455667788 ll
r1 = -1 ll
r1 = -2 ll
if r1 == r2 goto +3
if w1 s< -1 goto -2
if r1 & 0x10 goto +0
if r1 & r2 goto +0
goto -1
call 6
exit
lock *(u64 *)(r1 + 0) += r2
lock *(u32 *)(r1 + 8) |= w2
lock *(u64 *)(r1 + 0) &= r2
lock *(u64 *)(r1 + 0) ^= r2
r2 = atomic_fetch_add((u64 *)(r1 + 0), r2)
w2 = atomic_fetch_or((u32 *)(r1 + 0), w2)
r2 = xchg_64(r1 + 0, r2)
w2 = xchg32_32(r1 + 0, w2)
r0 = cmpxchg_64(r1 + 0, r0, r2)
w0 = cmpxchg32_32(r1 + 0, w0, w2)
r1 s/= r2
r1 s%= r2
r1 = (s8)r2
r1 = *(s16 *)(r2 + 0)
gotol +5
w1 = (s16)w2
r1 = bswap16 r1
r1 = (s32)r2
w1 = 0xffffffff
r1 = -2147483648
