//! Yield-point maps: every place a Luau frame of a proto can be suspended.
//!
//! A suspended frame is persisted as (proto, yield-point index), never as a raw PC: on load the
//! freshly compiled bytecode's map turns the index back into a PC, and the map's signature tells
//! whether that bytecode still has the same suspension points with the same register shapes.
//!
//! The kinds, from `VM_INTERRUPT` and the call paths of `lvmexecute.cpp`:
//! - [`YieldKind::Interrupt`]: the top frame of a pre-empted thread. The interrupt fires before
//!   CALL, CALLFB, RETURN, FORNLOOP, FORGLOOP, JUMPBACK and JUMPX execute, and the VM rewinds
//!   `savedpc` to the instruction itself, so the saved PC is the instruction's own.
//!   FASTPCALL fires after decoding its word (saved PC one past it).
//! - [`YieldKind::CallReturn`]: a frame that called another frame which is suspended. CALL saves
//!   the PC after its word, CALLFB after its AUX word.
//! - [`YieldKind::IteratorReturn`]: a frame whose generic-for iterator call yielded. FORGLOOP
//!   saves the PC of its AUX word (and the frame is flagged OPYIELD; `luau_finishop` completes it).

use super::{Opcode, Proto};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum YieldKind {
    Interrupt,
    CallReturn,
    IteratorReturn,
}

impl YieldKind {
    pub fn name(self) -> &'static str {
        match self {
            YieldKind::Interrupt => "interrupt",
            YieldKind::CallReturn => "call-return",
            YieldKind::IteratorReturn => "iterator-return",
        }
    }

    fn code(self) -> u8 {
        match self {
            YieldKind::Interrupt => 0,
            YieldKind::CallReturn => 1,
            YieldKind::IteratorReturn => 2,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct YieldPoint {
    /// The saved PC of a frame suspended here (an index into `Proto::code`).
    pub saved_pc: u32,
    pub kind: YieldKind,
    /// The instruction this point belongs to (the CALL for a call return, the FORGLOOP for an
    /// iterator return) and its operands: the register shape a frame suspended here relies on.
    pub op: Opcode,
    pub instruction_pc: u32,
    pub a: u8,
    pub b: u8,
    pub c: u8,
    pub aux: Option<u32>,
}

/// A 64-bit digest of a proto's yield points: their count, kinds and register shapes, plus the
/// frame shape (parameters, vararg, stack size). PCs are left out: a compiler that moves code
/// but keeps every suspension point's shape keeps the signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct YieldSignature(pub u64);

impl std::fmt::Display for YieldSignature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct YieldPointMap {
    /// Ordered by saved PC, then kind; the position in this list is the yield-point index.
    pub points: Vec<YieldPoint>,
    pub signature: YieldSignature,
}

impl YieldPointMap {
    pub fn of(proto: &Proto) -> YieldPointMap {
        let mut points = Vec::new();
        for insn in &proto.instructions {
            let point = |saved_pc: u32, kind: YieldKind| YieldPoint {
                saved_pc,
                kind,
                op: insn.op,
                instruction_pc: insn.pc,
                a: insn.a,
                b: insn.b,
                c: insn.c,
                aux: insn.aux,
            };
            match insn.op {
                Opcode::CALL | Opcode::CALLFB => {
                    points.push(point(insn.pc, YieldKind::Interrupt));
                    points.push(point(insn.pc + insn.length(), YieldKind::CallReturn));
                }
                Opcode::FORGLOOP => {
                    points.push(point(insn.pc, YieldKind::Interrupt));
                    points.push(point(insn.pc + 1, YieldKind::IteratorReturn));
                }
                Opcode::RETURN | Opcode::FORNLOOP | Opcode::JUMPBACK | Opcode::JUMPX => {
                    points.push(point(insn.pc, YieldKind::Interrupt));
                }
                Opcode::FASTPCALL => points.push(point(insn.pc + 1, YieldKind::Interrupt)),
                _ => {}
            }
        }
        points.sort_by_key(|p| (p.saved_pc, p.kind));

        let mut h = Sha256::new();
        h.update([proto.num_params, u8::from(proto.is_vararg), proto.max_stack_size, proto.num_upvalues]);
        h.update((points.len() as u32).to_le_bytes());
        for p in &points {
            h.update([p.kind.code(), p.op as u8, p.a, p.b, p.c]);
            // The AUX word carries shape for FORGLOOP (variable count); other AUX words hold
            // constant indices or feedback slots that do not shape registers.
            let shape_aux = if p.op == Opcode::FORGLOOP { p.aux.unwrap_or(0) } else { 0 };
            h.update(shape_aux.to_le_bytes());
        }
        let digest = h.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        YieldPointMap { points, signature: YieldSignature(u64::from_le_bytes(first)) }
    }

    pub fn len(&self) -> usize {
        self.points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// The index of the point a frame with this saved PC and role is suspended at.
    pub fn find(&self, saved_pc: u32, kind: YieldKind) -> Option<u32> {
        self.points.iter().position(|p| p.saved_pc == saved_pc && p.kind == kind).map(|i| i as u32)
    }

    pub fn get(&self, index: u32) -> Option<&YieldPoint> {
        self.points.get(index as usize)
    }
}
