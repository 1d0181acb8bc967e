//! Structured snapshot mutation for fuzzing: a committed capture, one of its targeted mutants
//! ([`super::mutations`]), then a short sequence of field-level edits of the model, all chosen by
//! the fuzzer's bytes. The result is re-encoded canonically, so it reaches the semantic checks
//! (byte mutation alone rarely gets past the format checks).

use super::mutations;
use super::seeds::SEEDS;
use amber_validator::snapshot::*;
use amber_validator::validate::Verified;
use amber_validator::{Limits, ScriptCatalog, encode, validate};
use arbitrary::{Arbitrary, Result, Unstructured};

/// One field-level edit; every index is taken modulo what exists, so any input applies.
#[derive(Debug, Clone, Arbitrary)]
pub enum Edit {
    /// A stack slot of a thread.
    StackSlot {
        thread: u16,
        slot: u32,
        value: Pick,
    },
    /// A Luau frame's yield point or extra-argument count, or a frame's kind.
    Frame {
        thread: u16,
        frame: u16,
        yield_point: u16,
        varargs: u8,
        c: bool,
    },
    FrameCount {
        thread: u16,
        keep: u16,
    },
    Status {
        thread: u16,
        status: u8,
    },
    StackLength {
        thread: u16,
        delta: i8,
    },
    ClosureProto {
        closure: u16,
        proto: u16,
    },
    ClosureUpvalue {
        closure: u16,
        index: u8,
        to: u16,
    },
    CClosureUpvalue {
        closure: u16,
        index: u8,
        value: Pick,
    },
    OpenUpvalue {
        upvalue: u16,
        thread: u16,
        slot: u32,
    },
    TableArray {
        table: u16,
        slot: u16,
        value: Pick,
    },
    Readonly {
        table: u16,
    },
    Compiler {
        optimization: u8,
        debug: u8,
    },
    MainThread {
        thread: u16,
    },
}

/// A replacement value: a primitive, a generic-for position, or an existing object or
/// permanent by index (modulo their counts).
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum Pick {
    Nil,
    Boolean(bool),
    Number(f64),
    Position(u32),
    Object(u16),
    Permanent(u8),
}

/// What the structured target mutates.
#[derive(Debug, Clone, Arbitrary)]
pub struct Structured {
    /// Which committed capture (modulo their number).
    pub seed: u16,
    /// Which targeted mutation attempt to start from (none past the last).
    pub mutation: u16,
    pub edits: Vec<Edit>,
}

fn pick(s: &Snapshot, p: Pick) -> Value {
    match p {
        Pick::Nil => Value::Nil,
        Pick::Boolean(b) => Value::Boolean(b),
        Pick::Number(n) => Value::Number(n),
        Pick::Position(p) => Value::IterPosition(p),
        Pick::Object(i) if !s.objects.is_empty() => Value::Object(u32::from(i) % s.objects.len() as u32),
        Pick::Permanent(i) if !s.permanents.is_empty() => Value::Permanent(u32::from(i) % s.permanents.len() as u32),
        _ => Value::Nil,
    }
}

/// The index of the `n`-th object (modulo their number) that `is` accepts.
fn nth(s: &Snapshot, n: u16, is: impl Fn(&Object) -> bool) -> Option<usize> {
    let all: Vec<usize> = s.objects.iter().enumerate().filter(|(_, o)| is(o)).map(|(i, _)| i).collect();
    if all.is_empty() { None } else { Some(all[usize::from(n) % all.len()]) }
}

fn thread_mut(s: &mut Snapshot, n: u16) -> Option<&mut Thread> {
    let i = nth(s, n, |o| matches!(o, Object::Thread(_)))?;
    match &mut s.objects[i] {
        Object::Thread(t) => Some(t),
        _ => None,
    }
}

impl Edit {
    pub fn apply(&self, s: &mut Snapshot) {
        match *self {
            Edit::StackSlot { thread, slot, value } => {
                let v = pick(s, value);
                if let Some(t) = thread_mut(s, thread)
                    && !t.stack.is_empty()
                {
                    let n = t.stack.len();
                    t.stack[slot as usize % n] = v;
                }
            }
            Edit::Frame { thread, frame, yield_point, varargs, c } => {
                if let Some(t) = thread_mut(s, thread)
                    && !t.frames.is_empty()
                {
                    let n = t.frames.len();
                    t.frames[usize::from(frame) % n] = if c {
                        Frame::C
                    } else {
                        Frame::Lua { yield_point: u32::from(yield_point), varargs: u32::from(varargs) }
                    };
                }
            }
            Edit::FrameCount { thread, keep } => {
                if let Some(t) = thread_mut(s, thread) {
                    let n = t.frames.len() + 1;
                    t.frames.truncate(usize::from(keep) % n);
                }
            }
            Edit::Status { thread, status } => {
                if let Some(t) = thread_mut(s, thread) {
                    t.status = match status % 5 {
                        0 => ThreadStatus::NotStarted,
                        1 => ThreadStatus::Yielded,
                        2 => ThreadStatus::Preempted,
                        3 => ThreadStatus::Dead,
                        _ => ThreadStatus::Errored,
                    };
                }
            }
            Edit::StackLength { thread, delta } => {
                if let Some(t) = thread_mut(s, thread) {
                    let len = (t.stack.len() as i64 + i64::from(delta)).clamp(0, 1 << 16) as usize;
                    t.stack.resize(len, Value::Nil);
                }
            }
            Edit::ClosureProto { closure, proto } => {
                if let Some(i) = nth(s, closure, |o| matches!(o, Object::LuaClosure(_)))
                    && let Object::LuaClosure(c) = &mut s.objects[i]
                {
                    c.proto = u32::from(proto) % 64;
                }
            }
            Edit::ClosureUpvalue { closure, index, to } => {
                let upvalue = nth(s, to, |o| matches!(o, Object::Upvalue(_)));
                if let (Some(i), Some(u)) = (nth(s, closure, |o| matches!(o, Object::LuaClosure(_))), upvalue)
                    && let Object::LuaClosure(c) = &mut s.objects[i]
                    && !c.upvalues.is_empty()
                {
                    let n = c.upvalues.len();
                    c.upvalues[usize::from(index) % n] = u as u32;
                }
            }
            Edit::CClosureUpvalue { closure, index, value } => {
                let v = pick(s, value);
                if let Some(i) = nth(s, closure, |o| matches!(o, Object::CClosure(_)))
                    && let Object::CClosure(c) = &mut s.objects[i]
                    && !c.upvalues.is_empty()
                {
                    let n = c.upvalues.len();
                    c.upvalues[usize::from(index) % n] = v;
                }
            }
            Edit::OpenUpvalue { upvalue, thread, slot } => {
                let t = nth(s, thread, |o| matches!(o, Object::Thread(_)));
                if let (Some(u), Some(t)) = (nth(s, upvalue, |o| matches!(o, Object::Upvalue(Upvalue::Open { .. }))), t)
                {
                    s.objects[u] = Object::Upvalue(Upvalue::Open { thread: t as u32, slot: slot % (1 << 16) });
                }
            }
            Edit::TableArray { table, slot, value } => {
                let v = pick(s, value);
                if let Some(i) = nth(s, table, |o| matches!(o, Object::Table(_)))
                    && let Object::Table(t) = &mut s.objects[i]
                    && !t.array.is_empty()
                {
                    let n = t.array.len();
                    t.array[usize::from(slot) % n] = v;
                }
            }
            Edit::Readonly { table } => {
                if let Some(i) = nth(s, table, |o| matches!(o, Object::Table(_)))
                    && let Object::Table(t) = &mut s.objects[i]
                {
                    t.readonly = !t.readonly;
                }
            }
            Edit::Compiler { optimization, debug } => {
                s.header.compiler = CompilerSettings { optimization_level: optimization % 3, debug_level: debug % 3 };
            }
            Edit::MainThread { thread } => {
                if let Some(i) = nth(s, thread, |o| matches!(o, Object::Thread(_))) {
                    s.roots.main_thread = i as u32;
                }
            }
        }
    }
}

thread_local! {
    static VERIFIED: std::cell::RefCell<std::collections::HashMap<usize, Option<Verified<Snapshot>>>> =
        Default::default();
}

/// At most this many edits are applied (longer inputs repeat the same shapes).
const MAX_EDITS: usize = 8;

impl Structured {
    /// Parses fuzzer bytes.
    pub fn from_bytes(data: &[u8]) -> Result<Structured> {
        Structured::arbitrary(&mut Unstructured::new(data))
    }

    /// The mutated snapshot's bytes, or `None` when there are no seeds or the seed is no
    /// longer a valid capture (a stale corpus: `scripts/gen-corpus.sh` regenerates it).
    pub fn bytes(&self, limits: &Limits, catalog: &dyn ScriptCatalog) -> Option<Vec<u8>> {
        if SEEDS.is_empty() {
            return None;
        }
        let index = usize::from(self.seed) % SEEDS.len();
        // A seed is validated once per thread (the fuzzer runs millions of inputs over them).
        let verified = VERIFIED.with(|cache| {
            cache.borrow_mut().entry(index).or_insert_with(|| validate(SEEDS[index].1, limits, catalog).ok()).clone()
        })?;
        let mut s = match mutations::nth_attempt(&verified, usize::from(self.mutation)) {
            Some(m) => m.snapshot,
            None => verified.to_model(),
        };
        for e in self.edits.iter().take(MAX_EDITS) {
            e.apply(&mut s);
        }
        Some(encode(&s))
    }
}
