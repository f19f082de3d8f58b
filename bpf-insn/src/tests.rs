extern crate std;

use crate::*;
use std::collections::BTreeSet;
use std::string::ToString;
use std::vec::Vec;

const SIZES: [Size; 4] = [Size::B, Size::H, Size::W, Size::DW];
const SOURCES: [Source; 2] = [Source::Imm, Source::Reg];

/// Every opcode of the model, built with its constructors: the set the assembler emits.
fn every_opcode() -> Vec<OpCode> {
    let mut all = Vec::new();
    for width in [AluWidth::W32, AluWidth::W64] {
        for op in AluOp::ALL {
            for source in SOURCES {
                all.push(OpCode::Alu { width, op, source });
            }
        }
        all.push(OpCode::Neg(width));
    }
    for swap in [ByteSwap::Le, ByteSwap::Be, ByteSwap::Bswap] {
        all.push(OpCode::ByteSwap(swap));
    }
    for width in [JumpWidth::W32, JumpWidth::W64] {
        for cond in Condition::ALL {
            for source in SOURCES {
                all.push(OpCode::Jump {
                    width,
                    cond,
                    source,
                });
            }
        }
    }
    all.extend([OpCode::Goto, OpCode::Gotol, OpCode::Call, OpCode::Exit]);
    all.push(OpCode::LoadImm64);
    for size in SIZES {
        all.push(OpCode::Load(size));
        for source in SOURCES {
            all.push(OpCode::Store { source, size });
        }
    }
    all.extend([SignedSize::B, SignedSize::H, SignedSize::W].map(OpCode::LoadSx));
    all.extend([AtomicSize::W, AtomicSize::DW].map(OpCode::Atomic));
    all
}

#[test]
fn every_opcode_round_trips_through_its_byte() {
    let all = every_opcode();
    // 2 widths x (12 ops x 2 sources + neg) + 3 swaps + 2 x 11 x 2 jumps + 4 + lddw + 4 loads
    // + 8 stores + 3 sign-extending loads + 2 atomics.
    assert_eq!(all.len(), 50 + 3 + 44 + 4 + 1 + 4 + 8 + 3 + 2);
    let bytes: BTreeSet<u8> = all.iter().map(|op| op.byte()).collect();
    assert_eq!(bytes.len(), all.len(), "two opcodes share a byte");
    for op in all {
        assert_eq!(OpCode::from_byte(op.byte()), Ok(op), "{:#04x}", op.byte());
        assert_eq!(OpCode::try_from(u8::from(op)), Ok(op));
    }
}

#[test]
fn every_byte_decodes_to_its_opcode_or_is_refused() {
    let valid: BTreeSet<u8> = every_opcode().iter().map(|op| op.byte()).collect();
    for byte in 0..=u8::MAX {
        match OpCode::from_byte(byte) {
            Ok(op) => assert_eq!(op.byte(), byte),
            Err(e) => {
                assert_eq!(e, InvalidOpcode(byte));
                assert!(!valid.contains(&byte), "{byte:#04x} refused");
            }
        }
    }
    let accepted = (0..=u8::MAX)
        .filter(|&b| OpCode::from_byte(b).is_ok())
        .count();
    assert_eq!(accepted, valid.len());
}

#[test]
fn refuses_bytes_that_are_no_instruction() {
    for byte in [
        0x00, // an lddw's second slot, LD | IMM | W
        0x10, // LD | IMM | B
        0x20, // LD | ABS | W: legacy packet access, not modelled
        0x40, // LD | IND | W
        0x8c, // ALU | NEG | X
        0x8f, // ALU64 | NEG | X
        0xdf, // ALU64 | END | X
        0xe4, // ALU op 0xe0
        0xf7, // ALU64 op 0xf0
        0x0d, // JMP | JA | X
        0x8d, // JMP | CALL | X
        0x9d, // JMP | EXIT | X
        0x86, // JMP32 | CALL
        0x96, // JMP32 | EXIT
        0x0e, // JMP32 | JA | X
        0xe5, // JMP op 0xe0
        0xf6, // JMP32 op 0xf0
        0x99, // LDX | MEMSX | DW: no 64-bit sign extension
        0x21, // LDX | ABS
        0xc1, // LDX | ATOMIC
        0x82, // ST | MEMSX
        0xc2, // ST | ATOMIC
        0xcb, // STX | ATOMIC | H
        0xd3, // STX | ATOMIC | B
        0x83, // STX | MEMSX
    ] {
        assert_eq!(
            OpCode::from_byte(byte),
            Err(InvalidOpcode(byte)),
            "{byte:#04x}"
        );
    }
    assert_eq!(
        InvalidOpcode(0x8c).to_string(),
        "opcode 0x8c is not a BPF instruction"
    );
}

#[test]
fn constructors_spell_the_kernel_opcodes() {
    let cases = [
        (
            OpCode::Alu {
                width: AluWidth::W64,
                op: AluOp::Add,
                source: Source::Reg,
            },
            0x0f,
        ),
        (
            OpCode::Alu {
                width: AluWidth::W32,
                op: AluOp::Add,
                source: Source::Imm,
            },
            0x04,
        ),
        (
            OpCode::Alu {
                width: AluWidth::W64,
                op: AluOp::Mov,
                source: Source::Imm,
            },
            0xb7,
        ),
        (
            OpCode::Alu {
                width: AluWidth::W64,
                op: AluOp::Mov,
                source: Source::Reg,
            },
            0xbf,
        ),
        (
            OpCode::Alu {
                width: AluWidth::W32,
                op: AluOp::Arsh,
                source: Source::Reg,
            },
            0xcc,
        ),
        (
            OpCode::Alu {
                width: AluWidth::W64,
                op: AluOp::Mod,
                source: Source::Imm,
            },
            0x97,
        ),
        (OpCode::Neg(AluWidth::W32), 0x84),
        (OpCode::Neg(AluWidth::W64), 0x87),
        (OpCode::ByteSwap(ByteSwap::Le), 0xd4),
        (OpCode::ByteSwap(ByteSwap::Be), 0xdc),
        (OpCode::ByteSwap(ByteSwap::Bswap), 0xd7),
        (
            OpCode::Jump {
                width: JumpWidth::W32,
                cond: Condition::Slt,
                source: Source::Imm,
            },
            0xc6,
        ),
        (
            OpCode::Jump {
                width: JumpWidth::W64,
                cond: Condition::Eq,
                source: Source::Imm,
            },
            0x15,
        ),
        (
            OpCode::Jump {
                width: JumpWidth::W64,
                cond: Condition::Set,
                source: Source::Reg,
            },
            0x4d,
        ),
        (
            OpCode::Jump {
                width: JumpWidth::W32,
                cond: Condition::Sle,
                source: Source::Reg,
            },
            0xde,
        ),
        (OpCode::Goto, 0x05),
        (OpCode::Gotol, 0x06),
        (OpCode::Call, 0x85),
        (OpCode::Exit, 0x95),
        (OpCode::LoadImm64, 0x18),
        (OpCode::Load(Size::W), 0x61),
        (OpCode::Load(Size::H), 0x69),
        (OpCode::Load(Size::B), 0x71),
        (OpCode::Load(Size::DW), 0x79),
        (OpCode::LoadSx(SignedSize::W), 0x81),
        (OpCode::LoadSx(SignedSize::H), 0x89),
        (OpCode::LoadSx(SignedSize::B), 0x91),
        (
            OpCode::Store {
                source: Source::Imm,
                size: Size::DW,
            },
            0x7a,
        ),
        (
            OpCode::Store {
                source: Source::Imm,
                size: Size::H,
            },
            0x6a,
        ),
        (
            OpCode::Store {
                source: Source::Reg,
                size: Size::W,
            },
            0x63,
        ),
        (
            OpCode::Store {
                source: Source::Reg,
                size: Size::B,
            },
            0x73,
        ),
        (OpCode::Atomic(AtomicSize::W), 0xc3),
        (OpCode::Atomic(AtomicSize::DW), 0xdb),
    ];
    for (op, byte) in cases {
        assert_eq!(op.byte(), byte, "{op:?}");
    }
}

#[test]
fn narrow_sizes_exist_only_where_the_isa_has_them() {
    assert_eq!(SignedSize::new(Size::DW), None);
    assert_eq!(
        SignedSize::new(Size::H).map(SignedSize::size),
        Some(Size::H)
    );
    assert_eq!(AtomicSize::new(Size::B), None);
    assert_eq!(AtomicSize::new(Size::H), None);
    assert_eq!(
        AtomicSize::new(Size::W).map(AtomicSize::size),
        Some(Size::W)
    );
    assert_eq!(Reg::new(10), Some(Reg::R10));
    assert_eq!(Reg::new(11), None);
    assert_eq!(Reg::R7.number(), 7);
}

#[test]
fn access_sizes_are_those_of_loads_stores_and_atomics() {
    assert_eq!(OpCode::Load(Size::H).access_size(), Some(Size::H));
    assert_eq!(OpCode::LoadSx(SignedSize::B).access_size(), Some(Size::B));
    assert_eq!(
        OpCode::Store {
            source: Source::Imm,
            size: Size::DW
        }
        .access_size(),
        Some(Size::DW)
    );
    assert_eq!(OpCode::Atomic(AtomicSize::W).access_size(), Some(Size::W));
    assert_eq!(OpCode::LoadImm64.access_size(), None);
    assert_eq!(OpCode::Exit.access_size(), None);
    assert_eq!(OpCode::Neg(AluWidth::W64).access_size(), None);
}

#[test]
fn instructions_round_trip_with_every_field() {
    for opcode in every_opcode() {
        let imm = if opcode == OpCode::LoadImm64 {
            -0x1234_5678_9abc_def0
        } else {
            -0x1234_5678
        };
        let insn = Instruction {
            opcode,
            dst: Reg::R10,
            src: Reg::R9,
            off: -0x7bad,
            imm,
        };
        let encoded = insn.to_bytes();
        assert_eq!(encoded.len(), insn.slots() * 8);
        assert_eq!(Instruction::decode(&encoded), Ok(insn), "{opcode:?}");
        let words: Vec<u64> = encoded.words().collect();
        assert_eq!(words.len(), insn.slots());
        assert_eq!(Instruction::decode_words(&words), Ok(insn), "{opcode:?}");
        assert_eq!(raw::opcode(words[0]), opcode.byte());
        assert_eq!(raw::dst_reg(words[0]), 10);
        assert_eq!(raw::src_reg(words[0]), 9);
        assert_eq!(raw::off(words[0]), -0x7bad);
    }
}

#[test]
fn lddw_splits_negative_constants_into_two_slots() {
    let insn = Instruction {
        dst: Reg::R1,
        imm: -2,
        ..Instruction::new(OpCode::LoadImm64)
    };
    assert_eq!(
        insn.to_bytes().as_bytes(),
        [0x18, 0x01, 0, 0, 0xfe, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]
    );
    assert_eq!(Instruction::decode(&insn.to_bytes()), Ok(insn));
    assert_eq!(insn.to_string(), "r1 = -0x2 ll");
}

#[test]
fn lddw_second_slot_is_validated() {
    let first = 0x18 | (1 << 8) | (7 << 32); // r1 = 7 ll
    let high = 0x5u64 << 32; // only the upper half of the constant: fine
    let insn = Instruction::decode_words(&[first, high]).unwrap();
    assert_eq!((insn.dst, insn.imm), (Reg::R1, 0x5_0000_0007));

    for second in [
        0x95u64,            // an opcode (exit)
        0x01 << 8,          // dst_reg 1
        0x02 << 12,         // src_reg 2
        0x0008 << 16,       // off 8
        0x95 | (0x5 << 32), // opcode with an upper half
    ] {
        assert_eq!(
            Instruction::decode_words(&[first, second]),
            Err(DecodeError::BadSecondSlot { word: second }),
            "{second:#x}"
        );
    }
    assert_eq!(
        DecodeError::BadSecondSlot { word: 0x0008_0295 }.to_string(),
        "the second slot of an lddw holds opcode 0x95, registers 0x02 and offset 8 where all must be 0"
    );

    // Missing altogether: at the end of the words, or of the bytes.
    assert_eq!(
        Instruction::decode_words(&[first]),
        Err(DecodeError::MissingSecondSlot)
    );
    assert_eq!(
        Instruction::decode(&first.to_le_bytes()),
        Err(DecodeError::MissingSecondSlot)
    );
    assert_eq!(
        Instruction::decode(&[0x18, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        Err(DecodeError::MissingSecondSlot)
    );
}

#[test]
fn decoding_reports_what_is_wrong() {
    assert_eq!(
        Instruction::decode(&[0x95, 0, 0]),
        Err(DecodeError::Truncated)
    );
    assert_eq!(Instruction::decode_words(&[]), Err(DecodeError::Truncated));
    assert_eq!(
        Instruction::decode_words(&[0x8c]),
        Err(DecodeError::Opcode(InvalidOpcode(0x8c)))
    );
    assert_eq!(
        Instruction::decode_words(&[0xb7 | (0x0b << 8)]),
        Err(DecodeError::Register {
            field: RegField::Dst,
            number: 11
        })
    );
    let e = Instruction::decode_words(&[0xbf | (0xf << 12)]).unwrap_err();
    assert_eq!(
        e,
        DecodeError::Register {
            field: RegField::Src,
            number: 15
        }
    );
    assert_eq!(e.to_string(), "src_reg 15 is not a register (r0 to r10)");
    assert_eq!(
        DecodeError::MissingSecondSlot.to_string(),
        "an lddw in the last slot: its second 8 bytes are missing"
    );
}

#[test]
fn a_program_decodes_slot_by_slot() {
    let lddw = 0x18 | (1 << 8);
    let program = [0xb7, lddw, 0, 0x95];
    let decoded: Vec<(usize, u8)> = decode_program(&program)
        .map(|r| r.map(|(slot, insn)| (slot, insn.opcode.byte())))
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(decoded, [(0, 0xb7), (1, 0x18), (3, 0x95)]);

    // An error ends the program: the slot is named, nothing after it is decoded.
    let broken = [0x95, lddw, 0x95, 0x95];
    let items: Vec<_> = decode_program(&broken).collect();
    assert_eq!(items.len(), 2);
    let error = items[1].unwrap_err();
    assert_eq!(
        error,
        ProgramError {
            slot: 1,
            error: DecodeError::BadSecondSlot { word: 0x95 }
        }
    );
    assert!(error
        .to_string()
        .starts_with("instruction slot 1: the second slot of an lddw"));
    assert_eq!(decode_program(&[]).count(), 0);
}

#[test]
fn raw_fields_read_and_write_one_slot() {
    // r2 = *(u16 *)(r1 + 0x7bad): ldxh, dst 2, src 1.
    let insn = 0x69u64 | (0x12 << 8) | (0x7bad << 16);
    assert_eq!(raw::opcode(insn), 0x69);
    assert_eq!(raw::dst_reg(insn), 2);
    assert_eq!(raw::src_reg(insn), 1);
    assert_eq!(raw::off(insn), 0x7bad);
    assert_eq!(raw::memory_access_size(insn), Some(2));
    let patched = raw::with_imm(raw::with_src_reg(raw::with_off(insn, -4), 3), -2);
    assert_eq!(
        (
            raw::opcode(patched),
            raw::dst_reg(patched),
            raw::src_reg(patched),
            raw::off(patched),
            raw::imm(patched)
        ),
        (0x69, 2, 3, -4, -2)
    );
    assert_eq!(raw::memory_access_size(0x18), None); // lddw
    assert_eq!(raw::memory_access_size(0x8c), None); // no opcode at all
    assert_eq!(raw::memory_access_size(0xdb), Some(8)); // atomic dw
}

#[test]
fn listing_matches_llvm_objdump() {
    let at = |opcode, dst, src, off, imm| {
        Instruction {
            opcode,
            dst,
            src,
            off,
            imm,
        }
        .to_string()
    };
    assert_eq!(
        at(OpCode::Load(Size::H), Reg::R2, Reg::R1, 12, 0),
        "w2 = *(u16 *)(r1 + 0xc)"
    );
    assert_eq!(
        at(
            OpCode::Store {
                source: Source::Reg,
                size: Size::DW
            },
            Reg::R10,
            Reg::R1,
            -8,
            0
        ),
        "*(u64 *)(r10 - 0x8) = r1"
    );
    assert_eq!(
        at(
            OpCode::Alu {
                width: AluWidth::W32,
                op: AluOp::Div,
                source: Source::Reg
            },
            Reg::R1,
            Reg::R2,
            1,
            0
        ),
        "w1 s/= w2"
    );
    assert_eq!(
        at(OpCode::Atomic(AtomicSize::DW), Reg::R1, Reg::R2, 0, 0x01),
        "r2 = atomic_fetch_add((u64 *)(r1 + 0x0), r2)"
    );
    assert_eq!(
        at(OpCode::Atomic(AtomicSize::W), Reg::R1, Reg::R2, 0, 0x33),
        "<unknown>"
    );
    assert_eq!(
        at(
            OpCode::Jump {
                width: JumpWidth::W32,
                cond: Condition::Sge,
                source: Source::Imm
            },
            Reg::R3,
            Reg::R0,
            -2,
            5
        ),
        "if w3 s>= 0x5 goto -0x2"
    );
}
