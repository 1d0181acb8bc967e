//! The bytecode reader on hand-assembled modules (expectations derived by hand from Bytecode.h)
//! and on hostile input.

use amber_validator::bytecode::{self, BytecodeErrorKind, Opcode, YieldKind};
use proptest::prelude::*;

/// Assembles a version-3 module (no type information, no proto sizes): the simplest layout
/// `luau_load` accepts, written field by field from lvmload.cpp's reading order.
struct ProtoSpec {
    max_stack: u8,
    params: u8,
    upvalues: u8,
    vararg: bool,
    code: Vec<u32>,
    /// Already-encoded constants (tag + payload each) and their count.
    constants: (u32, Vec<u8>),
    children: Vec<u32>,
}

fn varint(out: &mut Vec<u8>, mut v: u32) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn module(strings: &[&str], protos: &[ProtoSpec], main: u32) -> Vec<u8> {
    let mut out = vec![3u8];
    varint(&mut out, strings.len() as u32);
    for s in strings {
        varint(&mut out, s.len() as u32);
        out.extend_from_slice(s.as_bytes());
    }
    varint(&mut out, protos.len() as u32);
    for p in protos {
        out.extend_from_slice(&[p.max_stack, p.params, p.upvalues, u8::from(p.vararg)]);
        varint(&mut out, p.code.len() as u32);
        for w in &p.code {
            out.extend_from_slice(&w.to_le_bytes());
        }
        varint(&mut out, p.constants.0);
        out.extend_from_slice(&p.constants.1);
        varint(&mut out, p.children.len() as u32);
        for c in &p.children {
            varint(&mut out, *c);
        }
        varint(&mut out, 0); // linedefined
        varint(&mut out, 0); // no debug name
        out.push(0); // no line info
        out.push(0); // no debug info
    }
    varint(&mut out, main);
    out
}

fn abc(op: Opcode, a: u8, b: u8, c: u8) -> u32 {
    op as u32 | u32::from(a) << 8 | u32::from(b) << 16 | u32::from(c) << 24
}
fn ad(op: Opcode, a: u8, d: i16) -> u32 {
    op as u32 | u32::from(a) << 8 | (d as u16 as u32) << 16
}
fn e(op: Opcode, e: i32) -> u32 {
    op as u32 | ((e as u32) << 8)
}

fn spec(code: Vec<u32>) -> ProtoSpec {
    ProtoSpec { max_stack: 8, params: 0, upvalues: 0, vararg: false, code, constants: (0, vec![]), children: vec![] }
}

/// One instruction of every interrupt-bearing kind. Expected points, derived from Bytecode.h and
/// the VM's call paths (see yield_points.rs): CALL interrupts at its own pc and returns to pc+1;
/// CALLFB (with AUX) returns to pc+2; FORGLOOP's iterator returns to its AUX word; JUMPBACK,
/// JUMPX, FORNLOOP and RETURN only interrupt.
fn every_kind() -> Vec<u32> {
    vec![
        ad(Opcode::LOADN, 0, 3),      // 0
        abc(Opcode::CALL, 1, 1, 1),   // 1
        abc(Opcode::CALLFB, 1, 1, 1), // 2
        0,                            // 3: AUX (feedback slot)
        ad(Opcode::FORGLOOP, 2, -4),  // 4: jumps to 4+1-4 = 1
        2,                            // 5: AUX (two variables)
        ad(Opcode::JUMPBACK, 0, -6),  // 6: to 1
        e(Opcode::JUMPX, -7),         // 7: to 1
        ad(Opcode::FORNLOOP, 2, -8),  // 8: to 1
        abc(Opcode::RETURN, 0, 1, 0), // 9
    ]
}

#[test]
fn yield_point_map_of_every_kind_matches_hand_derivation() {
    let bytes = module(&[], &[spec(every_kind())], 0);
    let m = bytecode::parse(&bytes).expect("valid module");
    let map = m.protos[0].yield_points().unwrap();
    let got: Vec<(u32, YieldKind, Opcode)> = map.points.iter().map(|p| (p.saved_pc, p.kind, p.op)).collect();
    use YieldKind::*;
    let want = vec![
        (1, Interrupt, Opcode::CALL),
        (2, Interrupt, Opcode::CALLFB),
        (2, CallReturn, Opcode::CALL),
        (4, Interrupt, Opcode::FORGLOOP),
        (4, CallReturn, Opcode::CALLFB),
        (5, IteratorReturn, Opcode::FORGLOOP),
        (6, Interrupt, Opcode::JUMPBACK),
        (7, Interrupt, Opcode::JUMPX),
        (8, Interrupt, Opcode::FORNLOOP),
        (9, Interrupt, Opcode::RETURN),
    ];
    assert_eq!(got, want);
    assert_eq!(map.find(2, CallReturn), Some(2));
    assert_eq!(map.find(2, Interrupt), Some(1));
    assert_eq!(map.find(3, Interrupt), None, "an AUX word is never a yield point");
    assert_eq!(map.get(5).map(|p| p.instruction_pc), Some(4));
}

#[test]
fn signature_ignores_pcs_but_not_shapes() {
    let base = every_kind();
    let sig = |code: Vec<u32>| {
        bytecode::parse(&module(&[], &[spec(code)], 0)).unwrap().protos[0].yield_points().unwrap().signature
    };
    // A NOP inserted at the front moves every pc; jumps are relative, so they still land.
    let mut shifted = vec![abc(Opcode::NOP, 0, 0, 0)];
    shifted.extend(base.iter().copied());
    assert_eq!(sig(base.clone()), sig(shifted));
    // A CALL expecting two results instead of none has another register shape.
    let mut other = base.clone();
    other[1] = abc(Opcode::CALL, 1, 1, 3);
    assert_ne!(sig(base.clone()), sig(other));
    // A generic for with three variables instead of two.
    let mut vars = base;
    vars[5] = 3;
    assert_ne!(sig(every_kind()), sig(vars));
}

fn error_of(bytes: &[u8]) -> BytecodeErrorKind {
    bytecode::parse(bytes).expect_err("must be refused").kind
}

#[test]
fn hostile_modules_are_refused_with_their_reason() {
    // Unknown opcode.
    let k = error_of(&module(&[], &[spec(vec![200])], 0));
    assert!(matches!(k, BytecodeErrorKind::BadOpcode { op: 200, .. }), "{k:?}");
    // AUX word missing at the end.
    let k = error_of(&module(&[], &[spec(vec![abc(Opcode::GETGLOBAL, 0, 0, 0)])], 0));
    assert!(matches!(k, BytecodeErrorKind::MissingAux { .. }), "{k:?}");
    // Jump into an AUX word and out of the code.
    let k = error_of(&module(
        &[],
        &[spec(vec![ad(Opcode::JUMP, 0, 1), abc(Opcode::GETGLOBAL, 0, 0, 0), 0, abc(Opcode::RETURN, 0, 1, 0)])],
        0,
    ));
    assert!(matches!(k, BytecodeErrorKind::BadJump { target: 2, .. }), "{k:?}");
    let k = error_of(&module(&[], &[spec(vec![ad(Opcode::JUMP, 0, 100)])], 0));
    assert!(matches!(k, BytecodeErrorKind::BadJump { .. }), "{k:?}");
    // Register past the frame.
    let k = error_of(&module(&[], &[spec(vec![ad(Opcode::LOADN, 9, 0)])], 0));
    assert!(matches!(k, BytecodeErrorKind::RegisterOutOfRange { register: 9, .. }), "{k:?}");
    // A numeric for whose control registers leave the frame.
    let k = error_of(&module(&[], &[spec(vec![ad(Opcode::FORNPREP, 6, 0), abc(Opcode::RETURN, 0, 1, 0)])], 0));
    assert!(matches!(k, BytecodeErrorKind::RegisterOutOfRange { register: 8, .. }), "{k:?}");
    // Constant index out of range.
    let k = error_of(&module(&[], &[spec(vec![ad(Opcode::LOADK, 0, 5)])], 0));
    assert!(matches!(k, BytecodeErrorKind::OperandOutOfRange { what: "constant", .. }), "{k:?}");
    // NEWCLOSURE of a child that does not exist.
    let k = error_of(&module(&[], &[spec(vec![ad(Opcode::NEWCLOSURE, 0, 0)])], 0));
    assert!(matches!(k, BytecodeErrorKind::OperandOutOfRange { what: "child proto", .. }), "{k:?}");
    // A child defined after its parent (or itself): protos must form a tree in definition order.
    let mut p = spec(vec![]);
    p.children = vec![0];
    let k = error_of(&module(&[], &[p], 0));
    assert!(matches!(k, BytecodeErrorKind::ProtoOrder { .. }), "{k:?}");
    // Main proto index out of range.
    let k = error_of(&module(&[], &[spec(vec![])], 1));
    assert!(matches!(k, BytecodeErrorKind::IndexOutOfRange { what: "main proto", .. }), "{k:?}");
    // Unknown constant tag.
    let mut p = spec(vec![]);
    p.constants = (1, vec![42]);
    let k = error_of(&module(&[], &[p], 0));
    assert!(matches!(k, BytecodeErrorKind::BadConstantTag { tag: 42, .. }), "{k:?}");
    // String constant naming a string that does not exist.
    let mut p = spec(vec![]);
    p.constants = (1, vec![3, 2]);
    let k = error_of(&module(&["only"], &[p], 0));
    assert!(matches!(k, BytecodeErrorKind::IndexOutOfRange { what: "string", .. }), "{k:?}");
    // Class instructions are refused while classes are out of scope.
    let k = error_of(&module(&[], &[spec(vec![abc(Opcode::NEWCLASS, 0, 0, 0), 0])], 0));
    assert!(matches!(k, BytecodeErrorKind::RefusedOpcode { .. }), "{k:?}");
    // Versions.
    assert!(matches!(error_of(&[2]), BytecodeErrorKind::UnsupportedVersion(2)));
    assert!(matches!(error_of(&[100]), BytecodeErrorKind::UnsupportedVersion(100)));
    assert!(matches!(error_of(&[]), BytecodeErrorKind::Read { .. }));
    // A count far beyond the input is refused before allocating.
    let k = error_of(&[3, 0xff, 0xff, 0xff, 0xff, 0x0f]);
    assert!(matches!(k, BytecodeErrorKind::Read { what: "string count", .. }), "{k:?}");
    // Trailing bytes.
    let mut bytes = module(&[], &[spec(vec![abc(Opcode::RETURN, 0, 1, 0)])], 0);
    bytes.push(0);
    assert!(matches!(error_of(&bytes), BytecodeErrorKind::TrailingBytes(1)));
}

#[test]
fn compile_errors_are_reported_as_such() {
    let k = error_of(b"\0:3: Expected 'end'");
    assert_eq!(k, BytecodeErrorKind::CompileError(":3: Expected 'end'".into()));
}

#[test]
fn every_truncation_and_byte_flip_of_a_valid_module_is_an_error_or_ok() {
    let bytes = module(&["a", "bc"], &[spec(every_kind())], 0);
    assert!(bytecode::parse(&bytes).is_ok());
    for len in 0..bytes.len() {
        assert!(bytecode::parse(&bytes[..len]).is_err(), "truncation to {len} bytes accepted");
    }
    for i in 0..bytes.len() {
        for v in 0..=255u8 {
            let mut m = bytes.clone();
            m[i] = v;
            let _ = bytecode::parse(&m);
        }
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = bytecode::parse(&bytes);
    }

    #[test]
    fn arbitrary_bytes_after_a_valid_header_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..512), version in 3u8..=14) {
        let mut bytes = vec![version, 3];
        bytes.extend(tail);
        let _ = bytecode::parse(&bytes);
    }
}
