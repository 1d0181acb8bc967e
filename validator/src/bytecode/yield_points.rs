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

use super::registers::{self, Needs, RegSet};
use super::{BytecodeErrorKind, Opcode, Proto};
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
    /// What the frame's registers must hold for the VM to resume here (see
    /// [`registers`]): registers at and above a pending call's function slot are the
    /// callee's and carry no needs of this frame.
    pub needs: Needs,
    /// Every path from here to a RETURN closes the open upvalues at or above this register
    /// (256: none).
    pub closed_from: u16,
    /// Registers a closure may have captured by reference and not closed yet when a frame is
    /// suspended here: an open upvalue of such a frame may only point at one of these, at or
    /// above `closed_from`.
    pub open: RegSet,
    /// An iterator return: the generator register R(A) of the FORGLOOP, which must not be
    /// nil (the loop's next step would otherwise take the fast path with a position register
    /// the iterator call overwrote).
    pub generator: Option<u8>,
}

impl YieldPoint {
    /// For an interrupt at an instruction that consumes values up to the stack top (CALL or
    /// CALLFB with B = 0, RETURN with B = 0): the lowest register the top may be at. `None`:
    /// the thread's top is the frame's top.
    pub fn open_top_from(&self) -> Option<u32> {
        if self.kind != YieldKind::Interrupt || self.b != 0 {
            return None;
        }
        match self.op {
            Opcode::CALL | Opcode::CALLFB => Some(u32::from(self.a) + 1),
            Opcode::RETURN => Some(u32::from(self.a)),
            _ => None,
        }
    }
}

/// A 64-bit digest of a proto's yield points: their count, kinds, operands and the register
/// needs and open registers the dataflow gives at each, plus the frame shape (parameters,
/// vararg, stack size, upvalues). PCs are left out: a compiler that moves code
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
    /// Worklist steps of the register dataflow (for the benchmark).
    pub dataflow_steps: usize,
}

impl YieldPointMap {
    /// The map of one proto, with the register dataflow's needs at every point. Fails only
    /// when the dataflow exceeds its step budget (hostile bytecode).
    pub fn of(proto: &Proto) -> Result<YieldPointMap, BytecodeErrorKind> {
        let flow = registers::analyze(proto)?;
        let mut points = Vec::new();
        let mut succ = Vec::new();
        for (k, insn) in proto.instructions.iter().enumerate() {
            let point = |saved_pc: u32, kind: YieldKind, (needs, closed_from, open): (Needs, u16, RegSet)| YieldPoint {
                saved_pc,
                kind,
                op: insn.op,
                instruction_pc: insn.pc,
                a: insn.a,
                b: insn.b,
                c: insn.c,
                aux: insn.aux,
                needs,
                closed_from,
                open,
                generator: None,
            };
            let here = (flow.needs[k], flow.closed_from[k], flow.open[k]);
            let a = u32::from(insn.a);
            match insn.op {
                Opcode::CALL | Opcode::CALLFB => {
                    points.push(point(insn.pc, YieldKind::Interrupt, here));
                    // Resumes at the next instruction once the callee at R(A) returns.
                    let after = match flow.needs.get(k + 1) {
                        Some(n) => (n.below(a), flow.closed_from[k + 1], flow.open[k + 1].below(a)),
                        None => (Needs::default(), 256, RegSet::EMPTY),
                    };
                    points.push(point(insn.pc + insn.length(), YieldKind::CallReturn, after));
                }
                Opcode::FORGLOOP => {
                    points.push(point(insn.pc, YieldKind::Interrupt, here));
                    // luau_finishop copies R(A+3) to R(A+2), then goes to the body or out.
                    registers::successors(proto, k, &mut succ);
                    let mut needs = Needs::default();
                    let mut closed = 0u16;
                    let mut open = RegSet::EMPTY;
                    for &s in &succ {
                        needs = needs.union(flow.needs[s]);
                        closed = closed.max(flow.closed_from[s]);
                        open = open.union(flow.open[s]);
                    }
                    if succ.is_empty() {
                        closed = 256;
                    }
                    let needs = needs.without(RegSet::range(a + 2, a + 3)).below(a + 3);
                    let after = (needs, closed, open.below(a + 3));
                    let mut p = point(insn.pc + 1, YieldKind::IteratorReturn, after);
                    p.generator = Some(insn.a);
                    points.push(p);
                }
                Opcode::RETURN | Opcode::FORNLOOP | Opcode::JUMPBACK | Opcode::JUMPX => {
                    points.push(point(insn.pc, YieldKind::Interrupt, here));
                }
                Opcode::FASTPCALL => points.push(point(insn.pc + 1, YieldKind::Interrupt, here)),
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
            for set in [p.needs.numbers, p.needs.tables, p.needs.loops, p.open] {
                h.update(set.0.map(u64::to_le_bytes).concat());
            }
            h.update(p.closed_from.to_le_bytes());
            h.update([u8::from(p.generator.is_some()), p.generator.unwrap_or(0)]);
        }
        let digest = h.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        Ok(YieldPointMap { points, signature: YieldSignature(u64::from_le_bytes(first)), dataflow_steps: flow.steps })
    }

    pub fn len(&self) -> usize {
        self.points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// The index of the point a frame with this saved PC and role is suspended at.
    pub fn find(&self, saved_pc: u32, kind: YieldKind) -> Option<u32> {
        // Points are sorted by (saved PC, kind).
        self.points.binary_search_by_key(&(saved_pc, kind), |p| (p.saved_pc, p.kind)).ok().map(|i| i as u32)
    }

    pub fn get(&self, index: u32) -> Option<&YieldPoint> {
        self.points.get(index as usize)
    }
}
