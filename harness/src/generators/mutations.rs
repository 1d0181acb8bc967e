//! Hostile mutations: one targeted change to one field of a real capture's model, re-encoded
//! canonically so the mutant gets past the format checks and reaches the semantic ones.
//!
//! Each mutation has a stable name (`frame.yield-point`, `register`, ...) and a detail naming
//! the field it changed, so a finding can be reproduced with `amber mutate`. Where the mutation
//! class itself says which rule it breaks, it carries the diagnostic code the validator must
//! answer with; the expectation comes from the class and from facts read off the bytecode
//! (which registers a numeric-for loop brackets), never from the validator's own verdict.

use amber_validator::bytecode::{Opcode, Proto, YieldKind};
use amber_validator::contract;
use amber_validator::diagnostics::Code;
use amber_validator::snapshot::*;
use amber_validator::validate::{CallFrameKind, ThreadLayout, Verified};

/// One mutant of a snapshot.
#[derive(Debug, Clone)]
pub struct Mutant {
    /// The mutation class (see [`CLASSES`]).
    pub class: &'static str,
    /// Which field, and what it became: `thread#0 frame 2 yield point 7 -> 12`.
    pub detail: String,
    /// The code the validator must refuse it with, when the class determines one.
    pub expect: Option<Code>,
    pub snapshot: Snapshot,
}

/// Every mutation class, with what it does.
pub const CLASSES: &[(&str, &str)] = &[
    ("thread.status", "a thread's status set to each other status"),
    ("frames.clear", "a suspended thread's frames removed"),
    ("frames.drop-top", "the top frame removed"),
    ("frames.drop-bottom", "the outermost frame removed"),
    ("frames.duplicate-top", "the top frame repeated"),
    ("frames.swap", "the top two frames swapped"),
    ("frames.push-c", "a C frame pushed on top"),
    ("frame.kind", "a Luau frame recorded as C, or a C frame as Luau"),
    (
        "frame.yield-point",
        "a frame's yield point moved: out of the map, to a point of another kind, or to another site",
    ),
    ("frame.varargs", "a frame's extra-argument count changed"),
    ("stack.length", "a thread's stack cut short or extended"),
    ("stack.base-slot", "slot 0 (the base frame's function slot) set"),
    ("frame.function", "a frame's function slot replaced by another function or a non-function"),
    ("register", "a register of a suspended Luau frame replaced by a value of another type"),
    ("closure.proto", "a closure pointed at another proto of its script"),
    ("closure.script", "a closure pointed at a script that does not exist"),
    ("cclosure.upvalue", "an upvalue of a run-time C closure retyped or moved out of range"),
    ("cclosure.function", "a run-time C closure's function replaced by another C function"),
    ("upvalue.slot", "an open upvalue moved to another stack slot"),
    ("upvalue.thread", "an open upvalue moved to another thread"),
    ("header.compiler", "the compiler settings the scripts are compiled with changed"),
    ("signature", "a proto's recorded yield-point signature changed or dropped"),
    ("header.runtime", "the Luau release, feature-flag digest or base-image digest changed (only the flags gate)"),
    ("permanent.duplicate", "a permanent name repeated"),
    ("permanent.rename", "a permanent renamed to another library function"),
    ("thread.namecall", "a pending NAMECALL method replaced by a non-string"),
    ("roots.main", "another thread made the main thread"),
    ("resume.child", "the thread a suspended coroutine.resume or wrapped coroutine resumes replaced"),
    ("position", "a live generic-for position moved out of its table's range"),
    ("closure.env", "a closure's environment replaced by the base globals, a library table or a string"),
    ("thread.globals", "a thread's globals replaced by the base globals or a non-table"),
    ("table.readonly", "a table frozen or thawed"),
    ("table.layout", "two hash nodes of a table swapped, or a hash key made an integer of the array's range"),
    ("matcher.state", "a word of a mid-match pattern-matching state set to a boundary value, or the state cut short"),
];

/// Tables per snapshot that get the `table.layout` mutations.
const LAYOUT_TABLES: usize = 8;

/// Calls `each` with every mutant of a verified snapshot (a valid capture: its layout tells
/// where frames are), one at a time (a deep stack has tens of thousands).
pub fn for_each_mutant(verified: &Verified<Snapshot>, each: &mut dyn FnMut(Mutant)) {
    let (model, layouts) = (verified.to_model(), verified.layouts());
    let mut m = Mutator { v: verified, s: &model, layouts: &layouts, each, target: None, attempts: 0 };
    m.run();
}

/// The mutant the `k`-th mutation attempt makes (every class, in order; `None` past the last
/// attempt or when that attempt changes nothing). Only that one is built: the fuzzer's pick.
pub fn nth_attempt(verified: &Verified<Snapshot>, k: usize) -> Option<Mutant> {
    let mut found = None;
    let mut keep = |m: Mutant| found = Some(m);
    let (model, layouts) = (verified.to_model(), verified.layouts());
    let mut m = Mutator { v: verified, s: &model, layouts: &layouts, each: &mut keep, target: Some(k), attempts: 0 };
    m.run();
    found
}

/// The mutants of one class, or all of them (`None`), in order.
pub fn mutants_of(verified: &Verified<Snapshot>, class: Option<&str>) -> Vec<Mutant> {
    let mut out = Vec::new();
    for_each_mutant(verified, &mut |m| {
        if class.is_none_or(|c| c == m.class) {
            out.push(m)
        }
    });
    out
}

struct Mutator<'a, 'e> {
    v: &'a Verified<Snapshot>,
    /// The snapshot decoded in full, and its threads' layouts (by object index, ascending).
    s: &'a Snapshot,
    layouts: &'a [(u32, ThreadLayout)],
    each: &'e mut dyn FnMut(Mutant),
    /// Build only the mutant of this attempt (`None`: all of them).
    target: Option<usize>,
    attempts: usize,
}

/// Whether frame `k` of `n` gets the per-frame mutations: the two outermost and three innermost
/// frames and four spread between (deep stacks repeat the same shapes).
fn sampled(k: usize, n: usize) -> bool {
    k < 2 || k + 3 >= n || (n > 8 && (k * 5) % n < 5)
}

/// Values a register or slot is replaced by, named for the mutant's detail.
#[derive(Clone, Copy)]
enum Replacement {
    Nil,
    Number,
    Boolean,
    Vector,
    String,
    Table,
    Globals,
    Closure,
    Thread,
    Position(u32),
}

const REPLACEMENTS: &[Replacement] = &[
    Replacement::Nil,
    Replacement::Number,
    Replacement::Boolean,
    Replacement::Vector,
    Replacement::String,
    Replacement::Table,
    Replacement::Globals,
    Replacement::Closure,
    Replacement::Thread,
    Replacement::Position(0),
    Replacement::Position(1 << 20),
];

/// Registers per frame the register class replaces (the rest repeat the same shapes).
const REGISTERS_PER_FRAME: u32 = 24;

impl<'a> Mutator<'a, '_> {
    fn push(
        &mut self,
        class: &'static str,
        detail: impl FnOnce() -> String,
        expect: Option<Code>,
        edit: impl FnOnce(&mut Snapshot),
    ) {
        let attempt = self.attempts;
        self.attempts += 1;
        if self.target.is_some_and(|t| t != attempt) {
            return;
        }
        let mut snapshot = self.s.clone();
        edit(&mut snapshot);
        // Tidy what an attacker would tidy, so the mutant reaches the rule it aims at: recompute
        // the signatures of the protos closures now run (from the real maps), and keep objects a
        // change orphaned reachable.
        if !matches!(class, "signature" | "header.compiler" | "closure.script") {
            self.fix_signatures(&mut snapshot);
        }
        keep_reachable(&mut snapshot);
        if snapshot != *self.s {
            (self.each)(Mutant { class, detail: detail(), expect, snapshot });
        }
    }

    fn fix_signatures(&self, s: &mut Snapshot) {
        let used = s.used_protos();
        for (si, entry) in s.scripts.iter_mut().enumerate() {
            let Some(script) = self.v.scripts().get(si) else { continue };
            entry.signatures = used
                .iter()
                .filter(|(us, _)| *us as usize == si)
                .filter_map(|&(_, proto)| {
                    let map = script.yield_maps.get(proto as usize)?;
                    Some(ProtoSignature { proto, signature: map.signature.0 })
                })
                .collect();
        }
    }

    fn first_object(&self, f: impl Fn(&Object) -> bool) -> Option<u32> {
        self.s.objects.iter().position(f).map(|i| i as u32)
    }

    fn replacement(&self, r: Replacement, thread: u32) -> Option<Value> {
        Some(match r {
            Replacement::Nil => Value::Nil,
            Replacement::Number => Value::Number(0.5),
            Replacement::Boolean => Value::Boolean(true),
            Replacement::Vector => Value::Vector([1.0, 2.0, 3.0]),
            Replacement::String => Value::Object(self.first_object(|o| matches!(o, Object::String(_)))?),
            Replacement::Table => Value::Object(self.first_object(|o| matches!(o, Object::Table(_)))?),
            Replacement::Globals => Value::Permanent(self.s.permanents.iter().position(|p| p == "@globals")? as u32),
            Replacement::Closure => Value::Object(self.first_object(|o| matches!(o, Object::LuaClosure(_)))?),
            Replacement::Thread => Value::Object(thread),
            Replacement::Position(p) => Value::IterPosition(p),
        })
    }

    fn layout(&self, thread: u32) -> Option<&'a ThreadLayout> {
        let at = self.layouts.binary_search_by_key(&thread, |(i, _)| *i).ok()?;
        Some(&self.layouts[at].1)
    }

    fn proto(&self, script: u32, proto: u32) -> Option<&'a Proto> {
        self.v.scripts().get(script as usize)?.module.proto(proto)
    }

    fn run(&mut self) {
        for (i, o) in self.s.objects.iter().enumerate() {
            let i = i as u32;
            match o {
                Object::Thread(t) => {
                    if let Some(layout) = self.layout(i) {
                        self.thread(i, t, layout);
                        self.matcher_states(i, t, layout);
                    }
                }
                Object::LuaClosure(c) => self.closure(i, c),
                Object::CClosure(c) => self.c_closure(i, c),
                Object::Upvalue(Upvalue::Open { thread, slot }) => self.open_upvalue(i, *thread, *slot),
                _ => {}
            }
        }
        self.header_and_tables();
    }

    /// The state buffers of pattern-matching frames suspended mid-match: every word set to
    /// values at the boundaries the state's rules draw (0 and 1, the chunk size, the frame cap,
    /// the subject's length and one past it, one more and one less than it was, the largest
    /// values), and the buffer cut short by a byte and by a frame.
    fn matcher_states(&mut self, ti: u32, t: &'a Thread, layout: &'a ThreadLayout) {
        let s = self.s;
        for f in &layout.frames {
            let CallFrameKind::C { role: contract::CRole::Matcher(op), .. } = f.kind else { continue };
            let slot = f.base
                + match op {
                    contract::MatcherOp::Find | contract::MatcherOp::Match => 2,
                    contract::MatcherOp::Gsub => 3,
                    contract::MatcherOp::GmatchIterator => 0,
                };
            let Some(Value::Object(b)) = t.stack.get(slot as usize) else { continue };
            let Some(Object::Buffer(state)) = s.objects.get(*b as usize) else { continue };
            let subject = match t.stack.get(f.base as usize) {
                Some(Value::Object(o)) => match s.objects.get(*o as usize) {
                    Some(Object::String(x)) => x.len() as u32,
                    _ => 0,
                },
                _ => 0,
            };
            let b = *b as usize;
            for w in 0..state.len() / 4 {
                let old = u32::from_le_bytes([state[4 * w], state[4 * w + 1], state[4 * w + 2], state[4 * w + 3]]);
                let values = [
                    0,
                    1,
                    2,
                    5,
                    contract::matcher::CHUNK,
                    contract::matcher::MAX_FRAMES as u32 + 1,
                    subject,
                    subject + 1,
                    old.wrapping_add(1),
                    old.wrapping_sub(1),
                    0x7fff_ffff,
                    u32::MAX,
                ];
                for v in values {
                    if v == old {
                        continue;
                    }
                    self.push(
                        "matcher.state",
                        || format!("thread#{ti} {} state (buffer#{b}) word {w}: {old} -> {v}", op.name()),
                        None,
                        |s| {
                            if let Object::Buffer(x) = &mut s.objects[b] {
                                x[4 * w..4 * w + 4].copy_from_slice(&v.to_le_bytes());
                            }
                        },
                    );
                }
            }
            for cut in [1usize, 4 * contract::matcher::FRAME_WORDS] {
                if cut <= state.len() {
                    self.push(
                        "matcher.state",
                        || format!("thread#{ti} {} state (buffer#{b}) cut by {cut} bytes", op.name()),
                        Some(Code::MatcherState),
                        |s| {
                            if let Object::Buffer(x) = &mut s.objects[b] {
                                x.truncate(x.len() - cut);
                            }
                        },
                    );
                }
            }
        }
    }

    fn thread(&mut self, ti: u32, t: &'a Thread, layout: &'a ThreadLayout) {
        fn at(s: &mut Snapshot, ti: u32) -> Option<&mut Thread> {
            match &mut s.objects[ti as usize] {
                Object::Thread(t) => Some(t),
                _ => None,
            }
        }
        let suspended = matches!(t.status, ThreadStatus::Yielded | ThreadStatus::Preempted);
        for status in [
            ThreadStatus::NotStarted,
            ThreadStatus::Yielded,
            ThreadStatus::Preempted,
            ThreadStatus::Dead,
            ThreadStatus::Errored,
        ] {
            if status == t.status {
                continue;
            }
            let expect = (suspended && status != ThreadStatus::Yielded && status != ThreadStatus::Preempted)
                .then_some(Code::StatusFrames);
            self.push(
                "thread.status",
                || format!("thread#{ti} status -> {}", status.name()),
                expect,
                |s| {
                    if let Some(t) = at(s, ti) {
                        t.status = status;
                        if status == ThreadStatus::Errored {
                            t.error = Some(Value::Nil);
                        }
                    }
                },
            );
        }
        let n = t.frames.len();
        if n == 0 {
            return;
        }
        self.push(
            "frames.clear",
            || format!("thread#{ti} frames cleared"),
            Some(Code::StatusFrames),
            |s| {
                if let Some(t) = at(s, ti) {
                    t.frames.clear();
                }
            },
        );
        if n >= 2 {
            self.push(
                "frames.drop-top",
                || format!("thread#{ti} top frame dropped"),
                None,
                |s| {
                    if let Some(t) = at(s, ti) {
                        t.frames.pop();
                    }
                },
            );
            self.push(
                "frames.drop-bottom",
                || format!("thread#{ti} outermost frame dropped"),
                None,
                |s| {
                    if let Some(t) = at(s, ti) {
                        t.frames.remove(0);
                    }
                },
            );
            self.push(
                "frames.swap",
                || format!("thread#{ti} top two frames swapped"),
                None,
                |s| {
                    if let Some(t) = at(s, ti) {
                        t.frames.swap(n - 1, n - 2);
                    }
                },
            );
        }
        self.push(
            "frames.duplicate-top",
            || format!("thread#{ti} top frame repeated"),
            None,
            |s| {
                if let Some(t) = at(s, ti) {
                    let top = t.frames[n - 1];
                    t.frames.push(top);
                }
            },
        );
        self.push(
            "frames.push-c",
            || format!("thread#{ti} C frame pushed"),
            None,
            |s| {
                if let Some(t) = at(s, ti) {
                    t.frames.push(Frame::C);
                }
            },
        );
        self.push(
            "stack.base-slot",
            || format!("thread#{ti} slot 0 -> 1"),
            Some(Code::StatusFrames),
            |s| {
                if let Some(t) = at(s, ti) {
                    t.stack[0] = Value::Number(1.0);
                }
            },
        );
        self.stack_length(ti, t, layout);
        self.resume_child(ti, t, layout);
        let n = layout.frames.len();
        for (k, f) in layout.frames.iter().enumerate() {
            if sampled(k, n) {
                self.frame(ti, t, k, layout);
                self.function_slot(ti, t, k, f.func);
            }
        }
        self.namecall(ti, t);
        // A thread's globals are a value in the model: a number can stand in as well.
        let environments = self.environments(ti).into_iter().map(|(what, e, expect)| (what, e.value(), expect));
        let globals: Vec<_> =
            [("a number", Value::Number(1.0), Some(Code::WrongType))].into_iter().chain(environments).collect();
        for (what, v, expect) in globals {
            self.push(
                "thread.globals",
                || format!("thread#{ti} globals -> {what}"),
                expect,
                move |s| {
                    if let Object::Thread(t) = &mut s.objects[ti as usize] {
                        t.globals = v;
                    }
                },
            );
        }
    }

    /// Replacement environments: the base globals and a library table (permanents, read-only),
    /// and a string. Environments to try, with the code each must be refused with (`None`: a table, which
    /// may be accepted). A model can only name an object or a permanent; other values (a
    /// number, nil) are refused by the decoder, which the byte-level fuzzers reach.
    fn environments(&self, _of: u32) -> Vec<(&'static str, EnvRef, Option<Code>)> {
        let mut out = Vec::new();
        if let Some(i) = self.first_object(|o| matches!(o, Object::String(_))) {
            out.push(("a string", EnvRef::Object(i), Some(Code::WrongType)));
        }
        for name in ["@globals", "string"] {
            if let Some(p) = self.s.permanents.iter().position(|n| n == name) {
                out.push((
                    if name == "@globals" { "the base globals" } else { "the string library" },
                    EnvRef::Permanent(p as u32),
                    None,
                ));
            }
        }
        out
    }

    fn stack_length(&mut self, ti: u32, t: &'a Thread, layout: &'a ThreadLayout) {
        let Some(top) = layout.frames.last() else { return };
        // A frame whose top is fixed: a pre-empted Luau frame not at a CALL or RETURN that takes
        // values up to the top, or coroutine.resume and wrapped coroutines.
        let fixed = match top.kind {
            CallFrameKind::Lua { script, proto, yield_point, .. } => self
                .v
                .scripts()
                .get(script as usize)
                .and_then(|s| s.yield_maps.get(proto as usize))
                .and_then(|m| m.get(yield_point))
                .is_some_and(|p| p.b != 0 || !matches!(p.op, Opcode::CALL | Opcode::CALLFB | Opcode::RETURN)),
            CallFrameKind::C { role, .. } => role != contract::CRole::Yield,
        };
        let len = t.stack.len();
        let cut = |to: usize| {
            move |s: &mut Snapshot| {
                if let Object::Thread(t) = &mut s.objects[ti as usize] {
                    t.stack.truncate(to);
                }
            }
        };
        // Cutting a C top frame's one slot may cut its function slot too (another rule answers).
        let lua_top = matches!(top.kind, CallFrameKind::Lua { .. });
        self.push(
            "stack.length",
            || format!("thread#{ti} stack cut to {}", len - 1),
            (fixed && lua_top).then_some(Code::ThreadTop),
            cut(len - 1),
        );
        self.push(
            "stack.length",
            || format!("thread#{ti} stack cut to {}", top.base + 1),
            None,
            cut(top.base as usize + 1),
        );
        self.push("stack.length", || format!("thread#{ti} stack cut to 2"), None, cut(2));
        self.push(
            "stack.length",
            || format!("thread#{ti} stack extended by one"),
            fixed.then_some(Code::ThreadTop),
            |s| {
                if let Object::Thread(t) = &mut s.objects[ti as usize] {
                    t.stack.push(Value::Nil);
                }
            },
        );
    }

    fn frame(&mut self, ti: u32, t: &'a Thread, k: usize, layout: &'a ThreadLayout) {
        let f = layout.frames[k];
        let set = move |s: &mut Snapshot, frame: Frame| {
            if let Object::Thread(t) = &mut s.objects[ti as usize] {
                t.frames[k] = frame;
            }
        };
        let Frame::Lua { yield_point, varargs } = t.frames[k] else {
            self.push(
                "frame.kind",
                || format!("thread#{ti} frame {k} C -> Luau"),
                Some(Code::FrameFunction),
                move |s| set(s, Frame::Lua { yield_point: 0, varargs: 0 }),
            );
            return;
        };
        self.push(
            "frame.kind",
            || format!("thread#{ti} frame {k} Luau -> C"),
            Some(Code::FrameFunction),
            move |s| set(s, Frame::C),
        );
        let CallFrameKind::Lua { script, proto, .. } = f.kind else { return };
        let Some(map) = self.v.scripts().get(script as usize).and_then(|s| s.yield_maps.get(proto as usize)) else {
            return;
        };
        let Some(p) = self.proto(script, proto) else { return };
        let here = map.points[yield_point as usize];
        let top_of_preempted = k + 1 == layout.frames.len() && t.status == ThreadStatus::Preempted;
        for to in [map.len() as u32, u32::MAX] {
            self.push(
                "frame.yield-point",
                || format!("thread#{ti} frame {k} yield point {yield_point} -> {to} (out of the map)"),
                Some(Code::YieldPointOutOfRange),
                move |s| set(s, Frame::Lua { yield_point: to, varargs }),
            );
        }
        // The first point of each other kind, and the neighbouring points of the same kind.
        for kind in [YieldKind::Interrupt, YieldKind::CallReturn, YieldKind::IteratorReturn] {
            if kind == here.kind {
                continue;
            }
            if let Some(to) = map.points.iter().position(|q| q.kind == kind) {
                let to = to as u32;
                // The top frame of a pre-empted thread is at an interrupt, any other frame at a
                // call-return or iterator-return point (either: both call the frame above).
                let wrong = top_of_preempted != (kind == YieldKind::Interrupt);
                self.push(
                    "frame.yield-point",
                    || format!("thread#{ti} frame {k} yield point {yield_point} -> {to} ({})", kind.name()),
                    wrong.then_some(Code::YieldPointKind),
                    move |s| set(s, Frame::Lua { yield_point: to, varargs }),
                );
            }
        }
        for to in [yield_point.wrapping_sub(1), yield_point + 1] {
            if map.get(to).is_some_and(|q| q.kind == here.kind) {
                self.push(
                    "frame.yield-point",
                    || format!("thread#{ti} frame {k} yield point {yield_point} -> {to} (same kind)"),
                    None,
                    move |s| set(s, Frame::Lua { yield_point: to, varargs }),
                );
            }
        }
        if p.is_vararg {
            for to in [varargs + 1, varargs.saturating_sub(1)] {
                self.push(
                    "frame.varargs",
                    || format!("thread#{ti} frame {k} varargs {varargs} -> {to}"),
                    None,
                    move |s| set(s, Frame::Lua { yield_point, varargs: to }),
                );
            }
        } else {
            self.push(
                "frame.varargs",
                || format!("thread#{ti} frame {k} varargs 0 -> 1 (not a vararg function)"),
                Some(Code::FrameGeometry),
                move |s| set(s, Frame::Lua { yield_point, varargs: 1 }),
            );
        }
        self.push(
            "frame.varargs",
            || format!("thread#{ti} frame {k} varargs -> {}", u32::MAX),
            Some(Code::FrameGeometry),
            move |s| set(s, Frame::Lua { yield_point, varargs: u32::MAX }),
        );
        self.registers(ti, t, k, layout, p, here.saved_pc);
    }

    /// Registers of frame `k` replaced by values of every other type.
    fn registers(&mut self, ti: u32, t: &'a Thread, k: usize, layout: &'a ThreadLayout, p: &Proto, saved_pc: u32) {
        let f = layout.frames[k];
        let end = layout.frames.get(k + 1).map_or(f.top, |callee| callee.func.min(f.top)).min(t.stack.len() as u32);
        let control = numeric_for_controls(p, saved_pc);
        let has_generic_for = p.instructions.iter().any(|i| i.op == Opcode::FORGLOOP);
        for r in 0..end.saturating_sub(f.base).min(REGISTERS_PER_FRAME) {
            let slot = (f.base + r) as usize;
            for &rep in REPLACEMENTS {
                let Some(v) = self.replacement(rep, ti) else { continue };
                let expect = if control.contains(&r) && !matches!(v, Value::Number(_)) {
                    Some(Code::RegisterType)
                } else if matches!(v, Value::IterPosition(_)) && !has_generic_for {
                    Some(Code::MisplacedPosition)
                } else {
                    None
                };
                self.push(
                    "register",
                    || format!("thread#{ti} frame {k} register {r} (slot {slot}) -> {}", describe(&v)),
                    expect,
                    move |s| {
                        if let Object::Thread(t) = &mut s.objects[ti as usize] {
                            t.stack[slot] = v;
                        }
                    },
                );
            }
        }
    }

    fn permanent_index(s: &mut Snapshot, name: &str) -> u32 {
        match s.permanents.iter().position(|p| p == name) {
            Some(i) => i as u32,
            None => {
                s.permanents.push(name.to_string());
                s.permanents.len() as u32 - 1
            }
        }
    }

    fn function_slot(&mut self, ti: u32, t: &'a Thread, k: usize, func: u32) {
        let slot = func as usize;
        let is_c = matches!(t.frames[k], Frame::C);
        for name in ["print", contract::PCALL, contract::COROUTINE_YIELD, contract::COROUTINE_RESUME, "string.format"] {
            // A C function in a Luau frame's slot breaks the frame's kind; print and
            // string.format have no continuation, so in a C frame they break its role.
            let expect = if !is_c {
                Some(Code::FrameFunction)
            } else if matches!(name, "print" | "string.format") {
                Some(Code::CFrameRole)
            } else {
                None
            };
            self.push(
                "frame.function",
                || format!("thread#{ti} frame {k} function slot {slot} -> {name}"),
                expect,
                |s| {
                    let p = Self::permanent_index(s, name);
                    if let Object::Thread(t) = &mut s.objects[ti as usize] {
                        t.stack[slot] = Value::Permanent(p);
                    }
                },
            );
        }
        for (what, v) in [
            ("nil", Some(Value::Nil)),
            ("a number", Some(Value::Number(7.0))),
            ("a table", self.replacement(Replacement::Table, ti)),
        ] {
            let Some(v) = v else { continue };
            self.push(
                "frame.function",
                || format!("thread#{ti} frame {k} function slot {slot} -> {what}"),
                Some(Code::FrameFunction),
                move |s| {
                    if let Object::Thread(t) = &mut s.objects[ti as usize] {
                        t.stack[slot] = v;
                    }
                },
            );
        }
        let closures: Vec<u32> = self
            .s
            .objects
            .iter()
            .enumerate()
            .filter(|(_, o)| matches!(o, Object::LuaClosure(_) | Object::CClosure(_)))
            .map(|(i, _)| i as u32)
            .filter(|&c| t.stack.get(slot) != Some(&Value::Object(c)))
            .take(3)
            .collect();
        for c in closures {
            self.push(
                "frame.function",
                || format!("thread#{ti} frame {k} function slot {slot} -> object #{c}"),
                None,
                |s| {
                    if let Object::Thread(t) = &mut s.objects[ti as usize] {
                        t.stack[slot] = Value::Object(c);
                    }
                },
            );
        }
    }

    fn resume_child(&mut self, ti: u32, t: &'a Thread, layout: &'a ThreadLayout) {
        let Some(top) = layout.frames.last() else { return };
        let CallFrameKind::C { role, .. } = top.kind else { return };
        let place = match role {
            contract::CRole::Resume => ResumeSlot::Stack(top.base as usize),
            contract::CRole::WrappedResume => match t.stack.get(top.func as usize) {
                Some(Value::Object(c)) => ResumeSlot::Upvalue(*c),
                _ => return,
            },
            _ => return,
        };
        let set = move |s: &mut Snapshot, v: Value| match place {
            ResumeSlot::Stack(slot) => {
                if let Object::Thread(t) = &mut s.objects[ti as usize] {
                    t.stack[slot] = v;
                }
            }
            ResumeSlot::Upvalue(c) => {
                if let Object::CClosure(cc) = &mut s.objects[c as usize] {
                    cc.upvalues[0] = v;
                }
            }
        };
        let not_a_thread =
            if matches!(place, ResumeSlot::Stack(_)) { Code::ResumeStatus } else { Code::CClosureUpvalues };
        self.push(
            "resume.child",
            || format!("thread#{ti} resumes a number"),
            Some(not_a_thread),
            move |s| set(s, Value::Number(1.0)),
        );
        self.push(
            "resume.child",
            || format!("thread#{ti} resumes itself"),
            Some(Code::ResumeCycle),
            move |s| set(s, Value::Object(ti)),
        );
        let main = self.s.roots.main_thread;
        if main != ti {
            self.push(
                "resume.child",
                || format!("thread#{ti} resumes the main thread"),
                None,
                move |s| set(s, Value::Object(main)),
            );
        }
    }

    fn namecall(&mut self, ti: u32, t: &'a Thread) {
        if t.namecall.is_none() {
            return;
        }
        let Some(table) = self.first_object(|o| matches!(o, Object::Table(_))) else { return };
        self.push(
            "thread.namecall",
            || format!("thread#{ti} namecall -> table#{table}"),
            Some(Code::WrongType),
            |s| {
                if let Object::Thread(t) = &mut s.objects[ti as usize] {
                    t.namecall = Some(table);
                }
            },
        );
    }

    fn closure(&mut self, i: u32, c: &'a LuaClosure) {
        let protos = self.v.scripts().get(c.script as usize).map_or(0, |s| s.module.protos.len() as u32);
        for p in (0..protos).filter(|&p| p != c.proto).take(8) {
            self.push(
                "closure.proto",
                || format!("closure#{i} proto {} -> {p}", c.proto),
                None,
                |s| {
                    if let Object::LuaClosure(c) = &mut s.objects[i as usize] {
                        c.proto = p;
                    }
                },
            );
        }
        self.push(
            "closure.script",
            || format!("closure#{i} script -> 99"),
            Some(Code::ScriptOutOfRange),
            |s| {
                if let Object::LuaClosure(c) = &mut s.objects[i as usize] {
                    c.script = 99;
                }
            },
        );
        for (what, v, expect) in self.environments(i) {
            self.push(
                "closure.env",
                || format!("closure#{i} environment -> {what}"),
                expect,
                move |s| {
                    if let Object::LuaClosure(c) = &mut s.objects[i as usize] {
                        c.env = v;
                    }
                },
            );
        }
    }

    fn c_closure(&mut self, i: u32, c: &'a CClosure) {
        let Some(name) = self.s.permanents.get(c.function as usize) else { return };
        let set = move |s: &mut Snapshot, n: usize, v: Value| {
            if let Object::CClosure(c) = &mut s.objects[i as usize] {
                c.upvalues[n] = v;
            }
        };
        let string = self.replacement(Replacement::String, i);
        match name.as_str() {
            contract::WRAPPED_RESUME => {
                for (what, v) in [("nil", Value::Nil), ("a number", Value::Number(3.0))] {
                    self.push(
                        "cclosure.upvalue",
                        || format!("cclosure#{i} thread -> {what}"),
                        Some(Code::CClosureUpvalues),
                        move |s| set(s, 0, v),
                    );
                }
            }
            contract::GMATCH_ITERATOR => {
                for p in [-1.0, 1e9, 0.5, f64::NAN] {
                    self.push(
                        "cclosure.upvalue",
                        || format!("cclosure#{i} position -> {p}"),
                        Some(Code::CClosureUpvalues),
                        move |s| set(s, 2, Value::Number(p)),
                    );
                }
                self.push(
                    "cclosure.upvalue",
                    || format!("cclosure#{i} subject -> a number"),
                    Some(Code::CClosureUpvalues),
                    move |s| set(s, 0, Value::Number(1.0)),
                );
                if let Some(v) = string {
                    self.push(
                        "cclosure.upvalue",
                        || format!("cclosure#{i} subject -> another string"),
                        None,
                        move |s| set(s, 0, v),
                    );
                }
            }
            _ => {}
        }
        for to in ["print", contract::PCALL, "string.format"] {
            self.push(
                "cclosure.function",
                || format!("cclosure#{i} function -> {to}"),
                Some(Code::CClosureUpvalues),
                |s| {
                    let p = Self::permanent_index(s, to);
                    if let Object::CClosure(c) = &mut s.objects[i as usize] {
                        c.function = p;
                    }
                },
            );
        }
    }

    fn open_upvalue(&mut self, u: u32, thread: u32, slot: u32) {
        let len = match self.s.objects.get(thread as usize) {
            Some(Object::Thread(t)) => t.stack.len() as u32,
            _ => return,
        };
        let set = move |s: &mut Snapshot, to: u32| {
            if let Object::Upvalue(Upvalue::Open { slot, .. }) = &mut s.objects[u as usize] {
                *slot = to;
            }
        };
        self.push(
            "upvalue.slot",
            || format!("upvalue#{u} slot {slot} -> 0"),
            Some(Code::OpenUpvalueRegister),
            move |s| set(s, 0),
        );
        self.push(
            "upvalue.slot",
            || format!("upvalue#{u} slot {slot} -> {}", len + 5),
            Some(Code::BadUpvalueSlot),
            move |s| set(s, len + 5),
        );
        for to in [slot.wrapping_sub(1), slot + 1, slot + 2, len - 1] {
            if to < len && to != slot {
                self.push("upvalue.slot", || format!("upvalue#{u} slot {slot} -> {to}"), None, move |s| set(s, to));
            }
        }
        // Onto the numeric-for counters of the frame whose register it is: a closure could then
        // overwrite a register FORNLOOP reads unchecked.
        if let Some(layout) = self.layout(thread)
            && let Some(k) = layout.register_owner(slot)
            && let CallFrameKind::Lua { script, proto, saved_pc, .. } = layout.frames[k].kind
            && let Some(p) = self.proto(script, proto)
        {
            let base = layout.frames[k].base;
            for r in numeric_for_controls(p, saved_pc) {
                let to = base + r;
                if to != slot {
                    self.push(
                        "upvalue.slot",
                        || format!("upvalue#{u} slot {slot} -> {to} (a numeric-for control register)"),
                        Some(Code::OpenUpvalueRegister),
                        move |s| set(s, to),
                    );
                }
            }
        }
        let other =
            self.s.objects.iter().enumerate().position(|(i, o)| i as u32 != thread && matches!(o, Object::Thread(_)));
        if let Some(other) = other {
            let other = other as u32;
            self.push(
                "upvalue.thread",
                || format!("upvalue#{u} thread#{thread} -> thread#{other}"),
                None,
                move |s| {
                    if let Object::Upvalue(Upvalue::Open { thread, .. }) = &mut s.objects[u as usize] {
                        *thread = other;
                    }
                },
            );
        }
    }

    fn header_and_tables(&mut self) {
        let c = self.s.header.compiler;
        for (o, d) in [(0, c.debug_level), (2, c.debug_level), (c.optimization_level, 0), (c.optimization_level, 2)] {
            self.push(
                "header.compiler",
                || format!("compiler -O{o} -g{d}"),
                None,
                |s| {
                    s.header.compiler = CompilerSettings { optimization_level: o, debug_level: d };
                },
            );
        }
        // The release and the base image's digest are information (signatures and permanents
        // by name decide); such mutants must resume exactly as the capture does.
        self.push(
            "header.runtime",
            || "Luau version -> 0.999".into(),
            None,
            |s| {
                s.header.luau_version = "0.999".into();
            },
        );
        self.push(
            "header.runtime",
            || "a feature flag turned on".into(),
            Some(Code::OtherRuntime),
            |s| {
                s.header.enabled_flags.push("LuauIntegerType".into());
            },
        );
        self.push(
            "header.runtime",
            || "permanents digest bit flipped".into(),
            None,
            |s| {
                s.header.permanents_digest[31] ^= 0x80;
            },
        );
        for (si, script) in self.s.scripts.iter().enumerate() {
            if script.signatures.is_empty() {
                continue;
            }
            let proto = script.signatures[0].proto;
            self.push(
                "signature",
                || format!("script#{si} proto {proto} signature bit flipped"),
                Some(Code::SignatureMismatch),
                |s| {
                    s.scripts[si].signatures[0].signature ^= 1 << 17;
                },
            );
            self.push(
                "signature",
                || format!("script#{si} proto {proto} signature dropped"),
                Some(Code::SignatureMismatch),
                |s| {
                    s.scripts[si].signatures.remove(0);
                },
            );
        }
        if let Some(first) = self.s.permanents.first().cloned() {
            let detail = format!("permanent `{first}` repeated");
            self.push(
                "permanent.duplicate",
                || detail,
                Some(Code::DuplicatePermanent),
                |s| {
                    s.permanents.push(first);
                },
            );
        }
        for (pi, name) in self.s.permanents.iter().enumerate() {
            let to = if contract::c_role(name).is_some() {
                "print"
            } else if name == "print" {
                contract::PCALL
            } else {
                continue;
            };
            if self.s.permanents.iter().any(|p| p == to) {
                continue;
            }
            self.push(
                "permanent.rename",
                || format!("permanent#{pi} `{name}` -> `{to}`"),
                None,
                |s| {
                    s.permanents[pi] = to.to_string();
                },
            );
        }
        for (i, o) in self.s.objects.iter().enumerate() {
            if let Object::Table(t) = o {
                let to = !t.readonly;
                self.push(
                    "table.readonly",
                    || format!("table#{i} read-only -> {to}"),
                    None,
                    |s| {
                        if let Object::Table(t) = &mut s.objects[i] {
                            t.readonly = to;
                        }
                    },
                );
            }
        }
        let hashed = self.s.objects.iter().enumerate().filter_map(|(i, o)| match o {
            Object::Table(t) if t.hash.iter().flatten().count() >= 1 => Some((i, t)),
            _ => None,
        });
        for (i, t) in hashed.take(LAYOUT_TABLES) {
            let occupied: Vec<usize> = t.hash.iter().enumerate().filter(|(_, n)| n.is_some()).map(|(p, _)| p).collect();
            if let [a, b, ..] = occupied[..] {
                // Two keys trade nodes: refused when either now sits in the other's chain head
                // (R014), the same table when they share a main position.
                self.push(
                    "table.layout",
                    || format!("table#{i} hash positions {a} and {b} swapped"),
                    None,
                    |s| {
                        if let Object::Table(t) = &mut s.objects[i] {
                            t.hash.swap(a, b);
                        }
                    },
                );
            }
            if !t.array.is_empty() {
                let p = occupied[0];
                self.push(
                    "table.layout",
                    || format!("table#{i} hash position {p} key -> 1 (inside the {}-slot array)", t.array.len()),
                    Some(Code::HashLayout),
                    |s| {
                        if let Object::Table(t) = &mut s.objects[i]
                            && let Some(Some((k, _))) = t.hash.get_mut(p)
                        {
                            *k = Value::Number(1.0);
                        }
                    },
                );
            }
        }
        for (i, o) in self.s.objects.iter().enumerate() {
            if i as u32 != self.s.roots.main_thread && matches!(o, Object::Thread(_)) {
                self.push(
                    "roots.main",
                    || format!("main thread -> thread#{i}"),
                    None,
                    |s| s.roots.main_thread = i as u32,
                );
                break;
            }
        }
        // Live positions (the capture kept only those) moved out of their table's range.
        for (ti, o) in self.s.objects.iter().enumerate() {
            let Object::Thread(t) = o else { continue };
            for (slot, v) in t.stack.iter().enumerate() {
                if let Value::IterPosition(p) = v {
                    let to = p + (1 << 24);
                    let into_object = matches!(
                        t.stack.get(slot.wrapping_sub(1)),
                        Some(Value::Object(tbl)) if matches!(self.s.objects.get(*tbl as usize), Some(Object::Table(_)))
                    );
                    self.push(
                        "position",
                        || format!("thread#{ti} slot {slot} position {p} -> {to}"),
                        into_object.then_some(Code::IterPositionOutOfRange),
                        |s| {
                            if let Object::Thread(t) = &mut s.objects[ti] {
                                t.stack[slot] = Value::IterPosition(to);
                            }
                        },
                    );
                }
            }
        }
    }
}

/// The control registers (limit, step, index) of the numeric-for loops whose body holds
/// `saved_pc`, read off the code: FORNPREP A .. FORNLOOP A.
fn numeric_for_controls(p: &Proto, saved_pc: u32) -> Vec<u32> {
    let mut control = Vec::new();
    for prep in p.instructions.iter().filter(|i| i.op == Opcode::FORNPREP) {
        let exit = i64::from(prep.pc) + 1 + i64::from(prep.d());
        let looped = p
            .instructions
            .iter()
            .find(|i| i.op == Opcode::FORNLOOP && i.a == prep.a && i64::from(i.pc) < exit && i.pc > prep.pc);
        if let Some(l) = looped
            && prep.pc < saved_pc
            && saved_pc <= l.pc
        {
            control.extend(u32::from(prep.a)..u32::from(prep.a) + 3);
        }
    }
    control
}

/// Objects a mutation left unreachable are appended to the array part of the main thread's
/// globals table (an orphan would be refused for being one, before any deeper rule is tried).
fn keep_reachable(s: &mut Snapshot) {
    let n = s.objects.len();
    let main = s.roots.main_thread as usize;
    if main >= n {
        return;
    }
    let mut reached = vec![false; n];
    let mut queue = vec![main];
    reached[main] = true;
    while let Some(i) = queue.pop() {
        s.objects[i].for_each_reference(|r| {
            if (r as usize) < n && !reached[r as usize] {
                reached[r as usize] = true;
                queue.push(r as usize);
            }
        });
    }
    let orphans: Vec<u32> =
        (0..n).filter(|&i| !reached[i] && !matches!(s.objects[i], Object::Upvalue(_))).map(|i| i as u32).collect();
    if orphans.is_empty() {
        return;
    }
    let Object::Thread(t) = &s.objects[main] else { return };
    let Value::Object(g) = t.globals else { return };
    if let Some(Object::Table(globals)) = s.objects.get_mut(g as usize) {
        let at_boundary = globals.hash.is_empty() && globals.insert_hint == -(globals.array.len() as i32);
        globals.array.extend(orphans.into_iter().map(Value::Object));
        if at_boundary {
            globals.insert_hint = -(globals.array.len() as i32);
        }
    }
}

#[derive(Clone, Copy)]
enum ResumeSlot {
    Stack(usize),
    Upvalue(u32),
}

fn describe(v: &Value) -> String {
    match v {
        Value::Nil => "nil".into(),
        Value::Boolean(b) => b.to_string(),
        Value::Number(n) => format!("number {n}"),
        Value::Vector(_) => "a vector".into(),
        Value::IterPosition(p) => format!("generic-for position {p}"),
        Value::Object(i) => format!("object #{i}"),
        Value::Permanent(i) => format!("permanent #{i}"),
        Value::LightUserdata { .. } => "light userdata".into(),
    }
}
