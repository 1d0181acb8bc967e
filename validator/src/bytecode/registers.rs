//! Register dataflow: what a frame suspended at each instruction needs its registers to hold so
//! that the VM can resume it safely.
//!
//! The interpreter reads a few registers without checking their type, trusting the compiler's
//! invariants (see docs/VALIDATION.md for the list and where each read is):
//!
//! - FORNLOOP reads its limit, step and index registers as numbers (`nvalue`);
//! - FORGLOOP's fast path reads the position register as light userdata when the generator
//!   register is nil and the state register is a table;
//! - SETLIST reads its target register as a table (`hvalue`) before it checks it.
//!
//! A backward "may be read unchecked before written" analysis over the control-flow graph gives,
//! at every instruction, which registers must be numbers, which must be tables and which
//! generic-for loops are live (their FORGLOOP may run before their FORGPREP does). A backward
//! "must close" analysis gives the lowest register every path to a RETURN closes (CLOSEUPVALS)
//! first, and a forward "may be open" analysis the registers a closure may have captured by
//! reference and not closed yet: an open upvalue may only point at a register in both, which
//! holds a captured local (never, say, a numeric-for counter a closure could then overwrite).
//!
//! Both are monotone over finite lattices, so a worklist reaches the fixpoint; the worklist
//! still has a hard cap (hostile input never runs away), after which the proto is refused.

use super::{BytecodeErrorKind, Instruction, Opcode, Proto};

/// A set of registers 0..=255.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct RegSet(pub [u64; 4]);

impl RegSet {
    pub const EMPTY: RegSet = RegSet([0; 4]);

    pub fn insert(&mut self, r: u32) {
        if r < 256 {
            self.0[(r / 64) as usize] |= 1 << (r % 64);
        }
    }

    pub fn remove(&mut self, r: u32) {
        if r < 256 {
            self.0[(r / 64) as usize] &= !(1 << (r % 64));
        }
    }

    pub fn contains(&self, r: u32) -> bool {
        r < 256 && self.0[(r / 64) as usize] & (1 << (r % 64)) != 0
    }

    pub fn union(self, o: RegSet) -> RegSet {
        RegSet(std::array::from_fn(|i| self.0[i] | o.0[i]))
    }

    pub fn minus(self, o: RegSet) -> RegSet {
        RegSet(std::array::from_fn(|i| self.0[i] & !o.0[i]))
    }

    /// Registers `from..to` (clamped to 0..256).
    pub fn range(from: u32, to: u32) -> RegSet {
        RegSet::from_up(from).minus(RegSet::from_up(to))
    }

    /// Registers `from..256`.
    fn from_up(from: u32) -> RegSet {
        RegSet(std::array::from_fn(|w| {
            let lo = w as u32 * 64;
            if from <= lo {
                u64::MAX
            } else if from >= lo + 64 {
                0
            } else {
                u64::MAX << (from - lo)
            }
        }))
    }

    /// Only the registers below `limit`.
    pub fn below(self, limit: u32) -> RegSet {
        self.minus(RegSet::range(limit, 256))
    }

    pub fn is_empty(&self) -> bool {
        self.0 == [0; 4]
    }

    /// The registers in the set, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().enumerate().flat_map(|(w, &word)| {
            let mut bits = word;
            std::iter::from_fn(move || {
                if bits == 0 {
                    return None;
                }
                let b = bits.trailing_zeros();
                bits &= bits - 1;
                Some(w as u32 * 64 + b)
            })
        })
    }
}

/// What registers must hold when a frame resumes at one instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Needs {
    /// Registers read as numbers without a check (numeric-for control registers).
    pub numbers: RegSet,
    /// Registers read as tables without a check (a pending SETLIST's target).
    pub tables: RegSet,
    /// Base registers A of generic-for loops whose FORGLOOP may run before their FORGPREP: if
    /// R(A) is nil, R(A+1) must be a table and R(A+2) a generic-for position.
    pub loops: RegSet,
}

impl Needs {
    pub fn union(self, o: Needs) -> Needs {
        Needs {
            numbers: self.numbers.union(o.numbers),
            tables: self.tables.union(o.tables),
            loops: self.loops.union(o.loops),
        }
    }

    /// The needs on registers below `limit` only (registers at and above a pending call's
    /// function slot belong to the callee's frame).
    pub fn below(self, limit: u32) -> Needs {
        Needs { numbers: self.numbers.below(limit), tables: self.tables.below(limit), loops: self.loops.below(limit) }
    }

    /// Drops needs on registers the VM writes before reading them.
    pub fn without(self, written: RegSet) -> Needs {
        Needs { numbers: self.numbers.minus(written), tables: self.tables.minus(written), loops: self.loops }
    }
}

/// The per-instruction results of the analyses for one proto.
#[derive(Debug, Clone, PartialEq)]
pub struct RegisterFlow {
    /// Indexed like `Proto::instructions`: needs before the instruction executes.
    pub needs: Vec<Needs>,
    /// Indexed like `Proto::instructions`: every path from before this instruction to a RETURN
    /// closes every open upvalue at or above this register first (256: none is closed).
    pub closed_from: Vec<u16>,
    /// Indexed like `Proto::instructions`: registers a closure may have captured by reference
    /// (CAPTURE REF) and no CLOSEUPVALS closed yet on some path to this instruction.
    pub open: Vec<RegSet>,
    /// Worklist steps the analysis took (for the benchmark).
    pub steps: usize,
}

/// Worklist steps allowed per instruction before a proto is refused. Each instruction's state
/// can only grow (needs) or rise (closed_from) a bounded number of times, far fewer than this.
const STEPS_PER_INSTRUCTION: usize = 4096;

/// `LCT_REF` in Bytecode.h: CAPTURE by reference (the closure shares the register).
const CAPTURE_REF: u8 = 1;

/// Instruction indices (into `Proto::instructions`) control can go to after `i`.
pub(crate) fn successors(proto: &Proto, i: usize, out: &mut Vec<usize>) {
    use Opcode::*;
    out.clear();
    let insn = &proto.instructions[i];
    let pc = i64::from(insn.pc);
    let next = pc + i64::from(insn.length());
    let mut to = |target: i64| {
        if let Ok(t) = u32::try_from(target)
            && let Ok(k) = proto.instructions.binary_search_by_key(&t, |x| x.pc)
        {
            out.push(k);
        }
    };
    match insn.op {
        RETURN => {}
        JUMP | JUMPBACK | FORGPREP | FORGPREP_INEXT | FORGPREP_NEXT => to(pc + 1 + i64::from(insn.d())),
        JUMPX => to(pc + 1 + i64::from(insn.e())),
        JUMPIF | JUMPIFNOT | JUMPIFEQ | JUMPIFLE | JUMPIFLT | JUMPIFNOTEQ | JUMPIFNOTLE | JUMPIFNOTLT | FORNPREP
        | FORNLOOP | JUMPXEQKNIL | JUMPXEQKB | JUMPXEQKN | JUMPXEQKS | CMPPROTO => {
            to(next);
            to(pc + 1 + i64::from(insn.d()));
        }
        // Loop body, or past the AUX word out of the loop.
        FORGLOOP => {
            to(pc + 1 + i64::from(insn.d()));
            to(next);
        }
        LOADB => to(next + i64::from(insn.c)),
        // Falls through to the argument setup and the CALL, or on success skips past the CALL.
        FASTCALL | FASTCALL1 | FASTCALL2 | FASTCALL2K | FASTCALL3 | FASTPCALL => {
            to(next);
            // The reader checked that pc + 1 + C is the (one-word) CALL.
            to(pc + 1 + i64::from(insn.c) + 1);
        }
        _ => to(next),
    }
}

/// Registers the instruction writes on every execution that completes (results of a call with a
/// fixed count, targets of loads and arithmetic). A may-write is not listed: dropping a need
/// there would trust a write that might not happen.
fn must_write(insn: &Instruction) -> RegSet {
    use Opcode::*;
    let a = u32::from(insn.a);
    match insn.op {
        LOADNIL | LOADB | LOADN | LOADK | LOADKX | MOVE | GETGLOBAL | GETUPVAL | GETIMPORT | GETTABLE | GETTABLEKS
        | GETTABLEN | NEWCLOSURE | DUPCLOSURE | ADD | SUB | MUL | DIV | MOD | POW | IDIV | ADDK | SUBK | MULK
        | DIVK | MODK | POWK | IDIVK | SUBRK | DIVRK | AND | OR | ANDK | ORK | CONCAT | NOT | MINUS | LENGTH
        | NEWTABLE | DUPTABLE | GETUDATAKS => RegSet::range(a, a + 1),
        NAMECALL | NAMECALLUDATA => RegSet::range(a, a + 2),
        CALL | CALLFB if insn.c > 0 => RegSet::range(a, a + u32::from(insn.c) - 1),
        GETVARARGS if insn.b > 0 => RegSet::range(a, a + u32::from(insn.b) - 1),
        // Checks (and converts) its three control registers: afterwards they are numbers.
        FORNPREP => RegSet::range(a, a + 3),
        // Writes the next index, a number.
        FORNLOOP => RegSet::range(a + 2, a + 3),
        _ => RegSet::EMPTY,
    }
}

/// Needs the instruction itself adds: the unchecked reads it makes.
fn reads_unchecked(insn: &Instruction) -> Needs {
    use Opcode::*;
    let a = u32::from(insn.a);
    let mut n = Needs::default();
    match insn.op {
        FORNLOOP => n.numbers = RegSet::range(a, a + 3),
        FORGLOOP => n.loops.insert(a),
        SETLIST => n.tables.insert(a),
        _ => {}
    }
    n
}

/// Runs both analyses over one proto.
pub fn analyze(proto: &Proto) -> Result<RegisterFlow, BytecodeErrorKind> {
    let n = proto.instructions.len();
    let cap = n.saturating_mul(STEPS_PER_INSTRUCTION).max(STEPS_PER_INSTRUCTION);
    let refuse = |what: &str| BytecodeErrorKind::Malformed { proto: proto.id, what: what.into() };

    // Successor and predecessor lists, built once, flat (at most two successors each).
    let mut succ: Vec<[u32; 2]> = Vec::with_capacity(n);
    let mut succ_len: Vec<u8> = Vec::with_capacity(n);
    let mut buf = Vec::new();
    let mut pred_count = vec![0u32; n + 1];
    for i in 0..n {
        successors(proto, i, &mut buf);
        let mut pair = [0u32; 2];
        for (k, &t) in buf.iter().take(2).enumerate() {
            pair[k] = t as u32;
            pred_count[t] += 1;
        }
        succ.push(pair);
        succ_len.push(buf.len().min(2) as u8);
    }
    // Prefix sums give each instruction its slice of the predecessor array.
    let mut pred_start = vec![0u32; n + 1];
    for i in 0..n {
        pred_start[i + 1] = pred_start[i] + pred_count[i];
    }
    let mut pred_fill = pred_start.clone();
    let mut pred_flat = vec![0u32; pred_start[n] as usize];
    for i in 0..n {
        for &t in &succ[i][..succ_len[i] as usize] {
            pred_flat[pred_fill[t as usize] as usize] = i as u32;
            pred_fill[t as usize] += 1;
        }
    }
    let succ_of = |i: usize| succ[i][..succ_len[i] as usize].iter().map(|&t| t as usize);
    let preds_of = |i: usize| pred_flat[pred_start[i] as usize..pred_start[i + 1] as usize].iter().map(|&p| p as usize);

    let mut steps = 0usize;

    // May-analysis: needs grow from empty.
    let mut needs = vec![Needs::default(); n];
    let mut queued = vec![true; n];
    let mut work: Vec<usize> = (0..n).rev().collect();
    while let Some(i) = work.pop() {
        queued[i] = false;
        steps += 1;
        if steps > cap {
            return Err(refuse("register dataflow did not settle within its step budget"));
        }
        let insn = &proto.instructions[i];
        let mut after = Needs::default();
        for s in succ_of(i) {
            after = after.union(needs[s]);
        }
        let mut new = after.without(must_write(insn)).union(reads_unchecked(insn));
        if matches!(insn.op, Opcode::FORGPREP | Opcode::FORGPREP_NEXT | Opcode::FORGPREP_INEXT) {
            // FORGPREP checks the iterable and sets up [generator, state, position] itself.
            new.loops.remove(u32::from(insn.a));
        }
        if new != needs[i] {
            needs[i] = new;
            for p in preds_of(i) {
                if !queued[p] {
                    queued[p] = true;
                    work.push(p);
                }
            }
        }
    }

    // Must-analysis: closed_from starts at 0 (everything closed, the top of the lattice) and
    // only rises; a RETURN closes nothing itself.
    let mut closed_from = vec![0u16; n];
    let mut queued = vec![true; n];
    let mut work: Vec<usize> = (0..n).rev().collect();
    while let Some(i) = work.pop() {
        queued[i] = false;
        steps += 1;
        if steps > cap.saturating_mul(2) {
            return Err(refuse("upvalue-closing dataflow did not settle within its step budget"));
        }
        let insn = &proto.instructions[i];
        let after = succ_of(i).map(|s| closed_from[s]).max().unwrap_or(256);
        let new = if insn.op == Opcode::CLOSEUPVALS { after.min(u16::from(insn.a)) } else { after };
        if new != closed_from[i] {
            closed_from[i] = new;
            for p in preds_of(i) {
                if !queued[p] {
                    queued[p] = true;
                    work.push(p);
                }
            }
        }
    }

    // May-analysis, forwards: open sets grow from empty; the entry has none open.
    let mut open = vec![RegSet::EMPTY; n];
    let mut queued = vec![true; n];
    let mut work: Vec<usize> = (0..n).rev().collect();
    while let Some(i) = work.pop() {
        queued[i] = false;
        steps += 1;
        if steps > cap.saturating_mul(3) {
            return Err(refuse("open-upvalue dataflow did not settle within its step budget"));
        }
        let insn = &proto.instructions[i];
        let mut after = open[i];
        match insn.op {
            Opcode::CAPTURE if insn.a == CAPTURE_REF => after.insert(u32::from(insn.b)),
            Opcode::CLOSEUPVALS => after = after.below(u32::from(insn.a)),
            _ => {}
        }
        for t in succ_of(i) {
            let joined = open[t].union(after);
            if joined != open[t] {
                open[t] = joined;
                if !queued[t] {
                    queued[t] = true;
                    work.push(t);
                }
            }
        }
    }
    Ok(RegisterFlow { needs, closed_from, open, steps })
}
