.section .text
# Every instruction form bpf-asm shares with llvm-mc-19 (regenerate forms.hex with regen.sh).
r1 += r2
r9 += -2147483648
r3 -= r7
r6 -= -100
r2 *= r9
r8 *= 255
r5 /= r6
r7 /= 42
r4 %= r5
r1 %= 0x7fffffff
r9 |= r8
r3 |= 3
r6 &= r1
r2 &= 0x10
r8 ^= r4
r5 ^= -7
r7 <<= r3
r4 <<= 19
r1 >>= r2
r9 >>= 21
r3 s>>= r7
r6 s>>= 23
r2 = r9
r8 = 255
r0 = -r0
r1 = -r1
r2 = -r2
r3 = -r3
r4 = -r4
r5 = -r5
r6 = -r6
r7 = -r7
r8 = -r8
r9 = -r9
w5 += w6
w7 += 42
w4 -= w5
w1 -= 0x7fffffff
w9 *= w8
w3 *= 3
w6 /= w1
w2 /= 0x10
w8 %= w4
w5 %= -7
w7 |= w3
w4 |= -1
w1 &= w2
w9 &= -2147483648
w3 ^= w7
w6 ^= -100
w2 <<= w9
w8 <<= 12
w5 >>= w6
w7 >>= 14
w4 s>>= w5
w1 s>>= 16
w9 = w8
w3 = 3
w0 = -w0
w1 = -w1
w2 = -w2
w3 = -w3
w4 = -w4
w5 = -w5
w6 = -w6
w7 = -w7
w8 = -w8
w9 = -w9
w1 = 0xffffffff
w7 = -2147483648
r1 = be16 r1
r9 = le16 r9
r2 = be32 r2
r8 = le32 r8
r3 = be64 r3
r7 = le64 r7
r4 = be16 r4
r6 = le16 r6
r5 = be32 r5
r5 = le32 r5
r6 = be64 r6
r4 = le64 r4
r7 = be16 r7
r3 = le16 r3
r8 = be32 r8
r2 = le32 r2
r9 = be64 r9
r1 = le64 r1
r1 = *(u8 *)(r2 - 8)
*(u8 *)(r1 - 8) = r2
*(u8 *)(r1 - 8) = -1
r1 = *(u16 *)(r2 + 0)
*(u16 *)(r1 + 0) = r2
*(u16 *)(r1 + 0) = 0x7fffffff
r1 = *(u32 *)(r2 + 32767)
*(u32 *)(r1 + 32767) = r2
*(u32 *)(r1 + 32767) = -2147483648
r1 = *(u64 *)(r2 - 32768)
*(u64 *)(r1 - 32768) = r2
*(u64 *)(r1 - 32768) = 3
r9 = *(u8 *)(r8 + 0)
*(u8 *)(r9 + 0) = r8
*(u8 *)(r9 + 0) = 0x7fffffff
r9 = *(u16 *)(r8 + 32767)
*(u16 *)(r9 + 32767) = r8
*(u16 *)(r9 + 32767) = -2147483648
r9 = *(u32 *)(r8 - 32768)
*(u32 *)(r9 - 32768) = r8
*(u32 *)(r9 - 32768) = 3
r9 = *(u64 *)(r8 - 1)
*(u64 *)(r9 - 1) = r8
*(u64 *)(r9 - 1) = -100
r3 = *(u8 *)(r7 + 32767)
*(u8 *)(r3 + 32767) = r7
*(u8 *)(r3 + 32767) = -2147483648
r3 = *(u16 *)(r7 - 32768)
*(u16 *)(r3 - 32768) = r7
*(u16 *)(r3 - 32768) = 3
r3 = *(u32 *)(r7 - 1)
*(u32 *)(r3 - 1) = r7
*(u32 *)(r3 - 1) = -100
r3 = *(u64 *)(r7 + 100)
*(u64 *)(r3 + 100) = r7
*(u64 *)(r3 + 100) = 0x10
r6 = *(u8 *)(r1 - 32768)
*(u8 *)(r6 - 32768) = r1
*(u8 *)(r6 - 32768) = 3
r6 = *(u16 *)(r1 - 1)
*(u16 *)(r6 - 1) = r1
*(u16 *)(r6 - 1) = -100
r6 = *(u32 *)(r1 + 100)
*(u32 *)(r6 + 100) = r1
*(u32 *)(r6 + 100) = 0x10
r6 = *(u64 *)(r1 - 0x10)
*(u64 *)(r6 - 0x10) = r1
*(u64 *)(r6 - 0x10) = 255
r2 = *(u8 *)(r9 - 1)
*(u8 *)(r2 - 1) = r9
*(u8 *)(r2 - 1) = -100
r2 = *(u16 *)(r9 + 100)
*(u16 *)(r2 + 100) = r9
*(u16 *)(r2 + 100) = 0x10
r2 = *(u32 *)(r9 - 0x10)
*(u32 *)(r2 - 0x10) = r9
*(u32 *)(r2 - 0x10) = 255
r2 = *(u64 *)(r9 + 0x7ff)
*(u64 *)(r2 + 0x7ff) = r9
*(u64 *)(r2 + 0x7ff) = -7
r8 = *(u8 *)(r4 + 100)
*(u8 *)(r8 + 100) = r4
*(u8 *)(r8 + 100) = 0x10
r8 = *(u16 *)(r4 - 0x10)
*(u16 *)(r8 - 0x10) = r4
*(u16 *)(r8 - 0x10) = 255
r8 = *(u32 *)(r4 + 0x7ff)
*(u32 *)(r8 + 0x7ff) = r4
*(u32 *)(r8 + 0x7ff) = -7
r8 = *(u64 *)(r4 - 512)
*(u64 *)(r8 - 512) = r4
*(u64 *)(r8 - 512) = 42
r5 = *(u8 *)(r6 - 0x10)
*(u8 *)(r5 - 0x10) = r6
*(u8 *)(r5 - 0x10) = 255
r5 = *(u16 *)(r6 + 0x7ff)
*(u16 *)(r5 + 0x7ff) = r6
*(u16 *)(r5 + 0x7ff) = -7
r5 = *(u32 *)(r6 - 512)
*(u32 *)(r5 - 512) = r6
*(u32 *)(r5 - 512) = 42
r5 = *(u64 *)(r6 - 8)
*(u64 *)(r5 - 8) = r6
*(u64 *)(r5 - 8) = -1
r7 = *(u8 *)(r3 + 0x7ff)
*(u8 *)(r7 + 0x7ff) = r3
*(u8 *)(r7 + 0x7ff) = -7
r7 = *(u16 *)(r3 - 512)
*(u16 *)(r7 - 512) = r3
*(u16 *)(r7 - 512) = 42
r7 = *(u32 *)(r3 - 8)
*(u32 *)(r7 - 8) = r3
*(u32 *)(r7 - 8) = -1
r7 = *(u64 *)(r3 + 0)
*(u64 *)(r7 + 0) = r3
*(u64 *)(r7 + 0) = 0x7fffffff
r4 = *(u8 *)(r5 - 512)
*(u8 *)(r4 - 512) = r5
*(u8 *)(r4 - 512) = 42
r4 = *(u16 *)(r5 - 8)
*(u16 *)(r4 - 8) = r5
*(u16 *)(r4 - 8) = -1
r4 = *(u32 *)(r5 + 0)
*(u32 *)(r4 + 0) = r5
*(u32 *)(r4 + 0) = 0x7fffffff
r4 = *(u64 *)(r5 + 32767)
*(u64 *)(r4 + 32767) = r5
*(u64 *)(r4 + 32767) = -2147483648
r1 = *(u64 *)(r10 - 8)
*(u64 *)(r10 - 16) = r9
*(u32 *)(r10 - 4) = -1
w3 = *(u32 *)(r4 - 12)
*(u16 *)(r5 + 2) = w6
r6 = 0x1122334455667788 ll
r7 = -1 ll
r8 = -2 ll
r9 = 0x8000000000000000 ll
r1 = 0x7fffffffffffffff ll
r2 = -9223372036854775808 ll
r3 = 0 ll
r4 = 4294967296 ll
r5 = -4294967297 ll
r6 = 0xffffffff ll
if r1 == r2 goto -1
if r2 == -1 goto +0
if r9 != r8 goto +2
if r8 != 0x7fffffff goto -7
if r3 > r7 goto -3
if r7 > -2147483648 goto +14
if r6 >= r1 goto +4
if r1 >= 3 goto -21
if r2 < r9 goto -5
if r9 < -100 goto +28
if r8 <= r4 goto +6
if r4 <= 0x10 goto -35
if r5 s> r6 goto -7
if r6 s> 255 goto +42
if r7 s>= r3 goto +8
if r3 s>= -7 goto -49
if r4 s< r5 goto -9
if r5 s< 42 goto +56
if r1 s<= r2 goto +10
if r2 s<= -1 goto -63
if r9 & r8 goto -11
if r8 & 0x7fffffff goto +70
if w1 == w2 goto -1
if w2 == -1 goto +0
if w9 != w8 goto +2
if w8 != 0x7fffffff goto -7
if w3 > w7 goto -3
if w7 > -2147483648 goto +14
if w6 >= w1 goto +4
if w1 >= 3 goto -21
if w2 < w9 goto -5
if w9 < -100 goto +28
if w8 <= w4 goto +6
if w4 <= 0x10 goto -35
if w5 s> w6 goto -7
if w6 s> 255 goto +42
if w7 s>= w3 goto +8
if w3 s>= -7 goto -49
if w4 s< w5 goto -9
if w5 s< 42 goto +56
if w1 s<= w2 goto +10
if w2 s<= -1 goto -63
if w9 & w8 goto -11
if w8 & 0x7fffffff goto +70
goto +0
goto -1
goto +32767
goto -32768
if r1 == r2 goto +32767
if w9 s< -5 goto -32768
call 1
call 2
call 3
call 4
call 5
call 6
call 14
call 15
call 16
call 25
call 35
call 45
call 80
call 112
call 113
call 158
exit
lock *(u64 *)(r1 - 8) += r2
lock *(u32 *)(r2 - 8) += w1
r2 = atomic_fetch_add((u64 *)(r1 - 8), r2)
w1 = atomic_fetch_add((u32 *)(r2 - 8), w1)
lock *(u64 *)(r9 + 0) |= r8
lock *(u32 *)(r8 + 0) |= w9
r8 = atomic_fetch_or((u64 *)(r9 + 0), r8)
w9 = atomic_fetch_or((u32 *)(r8 + 0), w9)
lock *(u64 *)(r3 + 32767) &= r7
lock *(u32 *)(r7 + 32767) &= w3
r7 = atomic_fetch_and((u64 *)(r3 + 32767), r7)
w3 = atomic_fetch_and((u32 *)(r7 + 32767), w3)
lock *(u64 *)(r6 - 32768) ^= r1
lock *(u32 *)(r1 - 32768) ^= w6
r1 = atomic_fetch_xor((u64 *)(r6 - 32768), r1)
w6 = atomic_fetch_xor((u32 *)(r1 - 32768), w6)
r3 = xchg_64(r4 - 8, r3)
w9 = xchg32_32(r1 + 16, w9)
r0 = cmpxchg_64(r5 - 32, r0, r6)
w0 = cmpxchg32_32(r7 + 0, w0, w8)
# ISA v4
r1 s/= r2
r3 s%= r4
w5 s/= w6
w7 s%= w8
r9 s/= -3
w1 s%= 7
r1 = (s8)r2
r3 = (s16)r4
r5 = (s32)r6
w7 = (s8)w8
w9 = (s16)w1
r1 = *(s8 *)(r2 - 8)
r3 = *(s16 *)(r4 + 6)
r5 = *(s32 *)(r6 - 100)
r2 = bswap16 r2
r4 = bswap32 r4
r6 = bswap64 r6
gotol +7000
gotol -1
