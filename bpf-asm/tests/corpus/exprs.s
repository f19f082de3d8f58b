# .equ expressions, assembled by bpf-asm and llvm-mc-19 alike (llvm-mc reads constants in
# immediates): same precedence, same values.
.equ EV, 0x10
.equ EV_ERROR, 3
.equ CONN_EV_ERROR, EV + EV_ERROR
.equ LATER, EARLIER * 2
.equ EARLIER, (1 + 2) * 3
.equ PREC, 1 + 2 | 4 * 3
.equ LEFT, 10 - 2 - 3
.equ SHIFTS, 1 << 20 >> 4
.equ LOGICAL, -8 >> 60
.equ DIV, -7 / 2
.equ REM, -7 % 3
.equ BITS, (0xff00 & 0x0ff0) ^ 0x1
.equ NOT, ~0xf
.equ NEG, -(EV - 1)
.equ BIG, 0xffffffff << 16
.section .text
r1 = CONN_EV_ERROR
r1 = LATER
r1 = PREC
r1 = LEFT
r1 = SHIFTS
r1 = LOGICAL
r1 = DIV
r1 = REM
r1 = BITS
r1 = NOT
r1 = NEG
r1 = BIG ll
w1 = CONN_EV_ERROR
if r1 == PREC goto +0
*(u32 *)(r10 - 8) = NEG
exit
