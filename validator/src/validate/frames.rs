//! Frames: the call-info of every thread, derived, never read.
//!
//! A snapshot stores per frame only what cannot be derived: a Luau frame's yield point and, for a
//! vararg function, how many extra arguments it holds. Everything else is computed here, frame
//! by frame from the bottom, exactly as the VM lays frames out (`luau_precall`, the CALL opcode,
//! `luaD_performcally`, `lua_pcallyieldable`):
//!
//! - the first frame's function is in slot 1 (slot 0 is the thread's base frame);
//! - a callee's function slot and result count come from its caller: the CALL at the caller's
//!   call-return point (register A, operand C), the FORGLOOP at an iterator-return point
//!   (register A + 3, AUX variable count), pcall (its first slot) or xpcall (its second);
//! - a frame's base is its function slot plus one, above the extra arguments of a vararg
//!   function; a Luau frame's top is its base plus its proto's stack size;
//! - flags follow from roles: RETURN on a Luau frame not called by a CALL, OPYIELD on a frame at
//!   an iterator-return point, HANDLE on pcall and xpcall;
//! - what the function slot holds decides a frame's kind and, for a C frame, its role.
//!
//! The result, [`ThreadLayout`], is what restore writes into the VM and what the graph checks
//! and the register checks read: one derivation for all three.

use super::{Context, VerifiedScript, obj};
use crate::bytecode::{YieldKind, YieldPoint};
use crate::contract::{self, CRole, MatcherOp, vm};
use crate::diagnostics::{Code, ObjectPath, Segment, Sink};
use crate::snapshot::*;

/// A call frame as the VM will hold it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallFrame {
    /// Stack slot of the frame's function.
    pub func: u32,
    /// First register.
    pub base: u32,
    /// Frame top (the VM's `ci->top`).
    pub top: u32,
    /// Results the caller expects (-1: all).
    pub nresults: i32,
    /// `LUA_CALLINFO_*` flags.
    pub flags: u8,
    pub kind: CallFrameKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallFrameKind {
    Lua {
        script: u32,
        proto: u32,
        yield_point: u32,
        /// The yield point's saved PC in the freshly compiled code.
        saved_pc: u32,
    },
    C {
        role: CRole,
        /// The error function's slot relative to the base, plus one (0: none), as `ci->errfunc`.
        errfunc: u32,
    },
}

/// A thread's derived layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadLayout {
    pub frames: Vec<CallFrame>,
    /// The thread's base (`L->base`) and top (`L->top`).
    pub base: u32,
    pub top: u32,
}

impl ThreadLayout {
    /// The frame a stack slot belongs to as a register of a Luau frame: the topmost Luau frame
    /// whose registers `[base, end)` hold it, where a frame's registers end at its callee's
    /// function slot or at its own top.
    pub fn register_owner(&self, slot: u32) -> Option<usize> {
        (0..self.frames.len()).rev().find(|&k| {
            let f = &self.frames[k];
            let end = self.frames.get(k + 1).map_or(f.top, |callee| callee.func.min(f.top));
            matches!(f.kind, CallFrameKind::Lua { .. }) && f.base <= slot && slot < end
        })
    }
}

/// What a function slot holds.
enum Callee<'a> {
    Lua { script: u32, proto: u32 },
    C { role: Option<CRole>, name: &'a str },
    NotAFunction(String),
}

fn classify<'a>(ctx: &Context<'a>, v: Option<&Value>) -> Callee<'a> {
    let s = ctx.s;
    let name_of = |p: u32| s.permanents.get(p as usize).map(String::as_str);
    match v {
        Some(Value::Object(i)) => match ctx.object_kind(*i) {
            Some(ObjectKind::LuaClosure | ObjectKind::CClosure) => match s.function(*i) {
                Some(Function::Lua { script, proto }) => Callee::Lua { script, proto },
                Some(Function::C { function }) => match name_of(function) {
                    Some(name) => Callee::C { role: contract::c_role(name), name },
                    None => Callee::NotAFunction(format!("C closure#{i} with an out-of-range function")),
                },
                None => Callee::NotAFunction(format!("object #{i}")),
            },
            Some(k) => Callee::NotAFunction(format!("{}#{i}", k.name())),
            None => Callee::NotAFunction(format!("object #{i}")),
        },
        Some(Value::Permanent(p)) => match name_of(*p) {
            Some(name) if contract::is_identity(name) => Callee::NotAFunction(format!("`{name}`")),
            Some(name) => match ctx.permanent_kind(*p) {
                Some(Some(k)) if k != crate::PermanentKind::Function => {
                    Callee::NotAFunction(format!("permanent `{name}` ({})", k.name()))
                }
                _ => Callee::C { role: contract::c_role(name), name },
            },
            None => Callee::NotAFunction(format!("permanent #{p}")),
        },
        Some(other) => Callee::NotAFunction(super::value_text(other)),
        None => Callee::NotAFunction("nothing (the slot is past the stack)".into()),
    }
}

/// What a suspended thread's top must be, by its top frame: written out only for a refusal.
enum TopRule {
    OpenResults { m: u32, op: &'static str },
    FrameTop,
    ResumeKeepsThread,
    WrappedKeepsNothing,
    Matcher { want: u32, op: &'static str },
    YieldBase,
}

impl TopRule {
    fn text(&self, top: &CallFrame) -> String {
        match *self {
            TopRule::OpenResults { m, op } => {
                format!("at least {} (the open results of {op} start at register {m})", top.base + m)
            }
            TopRule::FrameTop => format!("{} (the frame's top)", top.top),
            TopRule::ResumeKeepsThread => format!("{} (coroutine.resume keeps its thread)", top.base + 1),
            TopRule::WrappedKeepsNothing => format!("{} (a wrapped coroutine keeps nothing)", top.base),
            TopRule::Matcher { want, op } => format!("{want} ({op} keeps its matching state)"),
            TopRule::YieldBase => format!("at least {} (the yield's base)", top.base),
        }
    }
}

/// Whether a value is a function a coroutine could start with.
fn is_function(ctx: &Context<'_>, v: Option<&Value>) -> bool {
    !matches!(classify(ctx, v), Callee::NotAFunction(_))
}

/// Derives thread object `thread`'s layout (`t` is that thread); `None` when its frames are
/// refused (the findings say why).
pub(crate) fn derive(
    ctx: &Context<'_>,
    scripts: &[Option<VerifiedScript>],
    thread: u32,
    t: &Thread,
    sink: &mut Sink,
) -> Option<ThreadLayout> {
    Deriver { ctx, scripts, sink, thread, t }.run()
}

/// The callee slot and result count a frame leaves for the frame above it.
struct Call {
    func: u32,
    nresults: i32,
    /// The caller is a CALL (the callee gets no RETURN flag).
    from_call_opcode: bool,
}

struct Deriver<'c, 'a> {
    ctx: &'c Context<'a>,
    scripts: &'c [Option<VerifiedScript>],
    sink: &'c mut Sink,
    thread: u32,
    t: &'c Thread,
}

impl<'c> Deriver<'c, '_> {
    fn here(&self) -> ObjectPath {
        obj(ObjectKind::Thread, self.thread)
    }

    fn frame_path(&self, k: usize) -> ObjectPath {
        self.here().with(Segment::Index("frame", k as u64))
    }

    fn refuse<T>(&mut self, code: Code, path: ObjectPath, message: impl Into<String>) -> Option<T> {
        self.sink.error(code, path, message);
        None
    }

    fn run(&mut self) -> Option<ThreadLayout> {
        let t = self.t;
        let n = t.frames.len();
        let status_path = || self.here().with(Segment::Field("status"));
        match t.status {
            ThreadStatus::Errored => {
                // Kept as its error value: restore builds [nil, error] with no frames.
                if n > 0 || !t.stack.is_empty() {
                    return self.refuse(
                        Code::StatusFrames,
                        status_path(),
                        "an errored thread is kept as its error value only (no stack, no frames)",
                    );
                }
                return Some(ThreadLayout { frames: vec![], base: 1, top: 2 });
            }
            ThreadStatus::NotStarted | ThreadStatus::Dead => {
                let (len, what) = if t.status == ThreadStatus::NotStarted {
                    (2, "its base slot (nil) and the function it will start")
                } else {
                    (1, "its base slot (nil)")
                };
                if n > 0 || t.stack.len() != len || t.stack[0] != Value::Nil {
                    return self.refuse(
                        Code::StatusFrames,
                        status_path(),
                        format!(
                            "a {} thread has no frames and a stack of exactly {what}; this one has {n} frames and {} slots",
                            t.status.name(),
                            t.stack.len()
                        ),
                    );
                }
                if t.status == ThreadStatus::NotStarted && !is_function(self.ctx, t.stack.get(1)) {
                    return self.refuse(
                        Code::StatusFrames,
                        self.here().with(Segment::Index("stack slot", 1)),
                        "a thread that has not started holds the function it will start in slot 1",
                    );
                }
                return Some(ThreadLayout { frames: vec![], base: 1, top: len as u32 });
            }
            ThreadStatus::Yielded | ThreadStatus::Preempted => {}
        }
        if n == 0 {
            return self.refuse(
                Code::StatusFrames,
                status_path(),
                format!("a {} thread is suspended in at least one frame; this one has none", t.status.name()),
            );
        }
        if n >= vm::MAX_CALLS {
            return self.refuse(
                Code::TooManyFrames,
                self.here().with(Segment::Field("frames")),
                format!("{n} frames; the VM allows fewer than {}", vm::MAX_CALLS),
            );
        }
        if t.stack.first() != Some(&Value::Nil) {
            return self.refuse(
                Code::StatusFrames,
                self.here().with(Segment::Index("stack slot", 0)),
                "slot 0 is the thread's base frame's function slot and holds nil",
            );
        }

        let mut frames: Vec<CallFrame> = Vec::with_capacity(n);
        let mut call = Call { func: 1, nresults: -1, from_call_opcode: false };
        let mut top_point: Option<&YieldPoint> = None;
        for k in 0..n {
            let is_top = k + 1 == n;
            let (frame, next) = self.frame(k, is_top, &call, &mut top_point)?;
            frames.push(frame);
            if let Some(next) = next {
                call = next;
            }
        }
        // C frame tops reach LUA_MINSTACK past what is above them (their callee, or the stack
        // top for the top frame): room for the pushes of their continuations.
        let thread_top = t.stack.len() as u32;
        // Except gsub waiting for its replacement value: `luaD_callint` leaves a yieldable C
        // function that called with `lua_call` a top of exactly its callee's results, which the
        // callee's RETURN then makes the stack top.
        for k in 0..n {
            if let CallFrameKind::C { role, .. } = frames[k].kind {
                frames[k].top = match (role, frames.get(k + 1)) {
                    (CRole::Matcher(MatcherOp::Gsub), Some(callee)) => callee.func + 1,
                    (_, above) => above.map_or(thread_top, |f| f.func).max(frames[k].base) + vm::MIN_STACK,
                };
            }
        }
        let top = *frames.last()?;
        let (base, top_ok, want) = match (top.kind, top_point) {
            (CallFrameKind::Lua { .. }, Some(p)) => match p.open_top_from() {
                Some(m) => (top.base, thread_top >= top.base + m, TopRule::OpenResults { m, op: p.op.name() }),
                None => (top.base, thread_top == top.top, TopRule::FrameTop),
            },
            (CallFrameKind::C { role: CRole::Resume, .. }, _) => {
                (top.base, thread_top == top.base + 1, TopRule::ResumeKeepsThread)
            }
            (CallFrameKind::C { role: CRole::WrappedResume, .. }, _) => {
                (top.base, thread_top == top.base, TopRule::WrappedKeepsNothing)
            }
            // Mid-match: the function's own slots (subject, pattern, state, ...), nothing more.
            (CallFrameKind::C { role: CRole::Matcher(op), .. }, _) => {
                let want = top.base + contract::matcher::slots(op);
                (top.base, thread_top == want, TopRule::Matcher { want, op: op.name() })
            }
            // Yielded: what lies above the base are the values not yet handed to the resumer.
            (CallFrameKind::C { .. }, _) => (top.base, thread_top >= top.base, TopRule::YieldBase),
            (CallFrameKind::Lua { .. }, None) => return None,
        };
        if !top_ok {
            let want = want.text(&top);
            return self.refuse(
                Code::ThreadTop,
                self.here().with(Segment::Field("stack")),
                format!("the stack has {thread_top} slots; suspended as it is, its top must be {want}"),
            );
        }
        let highest = frames.iter().map(|f| u64::from(f.top)).max().unwrap_or(0).max(u64::from(thread_top));
        let cap = (self.ctx.limits.max_stack_slots as u64).min(vm::MAX_STACK_SLOTS);
        if highest > cap {
            return self.refuse(
                Code::StackTooLarge,
                self.here().with(Segment::Field("frames")),
                format!("the frames reach stack slot {highest}, past the limit of {cap}"),
            );
        }
        Some(ThreadLayout { frames, base, top: thread_top })
    }

    /// Derives frame `k` from the call that made it; returns the call it makes in turn.
    fn frame(
        &mut self,
        k: usize,
        is_top: bool,
        call: &Call,
        top_point: &mut Option<&'c YieldPoint>,
    ) -> Option<(CallFrame, Option<Call>)> {
        let t = self.t;
        let ctx = self.ctx;
        let record = t.frames[k];
        let func = call.func;
        let callee = classify(ctx, t.stack.get(func as usize));
        match (record, callee) {
            (Frame::Lua { yield_point, varargs }, Callee::Lua { script, proto }) => {
                // Scripts and protos were checked by their family; an unusable one was reported.
                let vs = self.scripts.get(script as usize)?.as_ref()?;
                let p = vs.module.protos.get(proto as usize)?;
                let map = vs.yield_maps.get(proto as usize)?;
                let Some(point) = map.get(yield_point) else {
                    return self.refuse(
                        Code::YieldPointOutOfRange,
                        self.frame_path(k).with(Segment::Field("yield point")),
                        format!(
                            "yield point {yield_point} does not exist: proto {proto} ({}) has {}",
                            vs.module.proto_name(proto),
                            map.len()
                        ),
                    );
                };
                let fits = matches!(
                    (is_top, t.status, point.kind),
                    (true, ThreadStatus::Preempted, YieldKind::Interrupt)
                        | (false, _, YieldKind::CallReturn | YieldKind::IteratorReturn)
                );
                if !fits {
                    let role = if !is_top {
                        "a frame below the top is suspended where it called the frame above it (call-return or iterator-return)"
                    } else if t.status == ThreadStatus::Preempted {
                        "the top frame of a pre-empted thread is suspended at an interrupt site"
                    } else {
                        "a yielded thread's top frame is coroutine.yield, not a Luau frame"
                    };
                    return self
                        .refuse(
                            Code::YieldPointKind,
                            self.frame_path(k).with(Segment::Field("yield point")),
                            format!(
                                "yield point {yield_point} of proto {proto} is {} {} point ({} at pc {}); {role}",
                                if point.kind == YieldKind::Interrupt { "an" } else { "a" },
                                point.kind.name(),
                                point.op.name(),
                                point.instruction_pc
                            ),
                        );
                }
                if varargs > 0 && !p.is_vararg {
                    return self
                        .refuse(
                            Code::FrameGeometry,
                            self.frame_path(k).with(Segment::Field("varargs")),
                            format!("{varargs} extra arguments for proto {proto}, which is not a vararg function"),
                        );
                }
                let fixed = if p.is_vararg { u64::from(p.num_params) } else { 0 };
                let base = u64::from(func) + 1 + fixed + u64::from(varargs);
                let top = base + u64::from(p.max_stack_size);
                if top > u64::from(u32::MAX) / 2 {
                    return self
                        .refuse(
                            Code::FrameGeometry,
                            self.frame_path(k).with(Segment::Field("varargs")),
                            format!("{varargs} extra arguments put the frame's base past any stack"),
                        );
                }
                let (base, top) = (base as u32, top as u32);
                let mut flags = 0;
                if !call.from_call_opcode {
                    flags |= vm::CALLINFO_RETURN;
                }
                let next = match point.kind {
                    YieldKind::CallReturn => Some(Call {
                        func: base + u32::from(point.a),
                        nresults: i32::from(point.c) - 1,
                        from_call_opcode: true,
                    }),
                    YieldKind::IteratorReturn => {
                        flags |= vm::CALLINFO_OPYIELD;
                        Some(Call {
                            func: base + u32::from(point.a) + 3,
                            nresults: (point.aux.unwrap_or(0) & 0xff) as i32,
                            from_call_opcode: false,
                        })
                    }
                    YieldKind::Interrupt => None,
                };
                if is_top {
                    *top_point = Some(point);
                }
                let frame = CallFrame {
                    func,
                    base,
                    top,
                    nresults: call.nresults,
                    flags,
                    kind: CallFrameKind::Lua { script, proto, yield_point, saved_pc: point.saved_pc },
                };
                Some((frame, next))
            }
            (Frame::C, Callee::C { role, name }) => {
                let allowed = match (is_top, t.status, role) {
                    (false, _, Some(r)) => r.calls_in_thread(),
                    (true, ThreadStatus::Yielded, Some(CRole::Yield)) => true,
                    (true, ThreadStatus::Preempted, Some(CRole::Resume | CRole::WrappedResume | CRole::Matcher(_))) => {
                        true
                    }
                    _ => false,
                };
                if !allowed {
                    let rule = if !is_top {
                        "below the top a thread can only be suspended in pcall, xpcall or string.gsub (C functions with continuations that call in the same thread)"
                    } else if t.status == ThreadStatus::Yielded {
                        "a yielded thread's top frame is coroutine.yield"
                    } else {
                        "a pre-empted thread's top C frame is coroutine.resume or a wrapped coroutine resuming a pre-empted child, or a pattern-matching function pre-empted mid-match"
                    };
                    return self
                        .refuse(
                            Code::CFrameRole,
                            self.frame_path(k),
                            format!("a C frame of `{name}` cannot be resumed here: {rule}"),
                        );
                }
                let role = role?;
                let base = func + 1;
                let (errfunc, flags, next) = match role {
                    CRole::Pcall => (0, vm::CALLINFO_HANDLE, Some(Call { func: base, nresults: -1, from_call_opcode: false })),
                    CRole::Xpcall => {
                        if !is_function(ctx, t.stack.get(base as usize)) {
                            return self
                                .refuse(
                                    Code::FrameFunction,
                                    self.here().with(Segment::Index("stack slot", u64::from(base))),
                                    "xpcall keeps its error handler in its first slot, and it must be a function",
                                );
                        }
                        (1, vm::CALLINFO_HANDLE, Some(Call { func: base + 1, nresults: -1, from_call_opcode: false }))
                    }
                    // The replacement function (or `__index` function) gsub called, above its
                    // own slots, for one value.
                    CRole::Matcher(op @ MatcherOp::Gsub) => (
                        0,
                        0,
                        Some(Call { func: base + contract::matcher::slots(op), nresults: 1, from_call_opcode: false }),
                    ),
                    _ => (0, 0, None),
                };
                let frame =
                    CallFrame { func, base, top: base, nresults: call.nresults, flags, kind: CallFrameKind::C { role, errfunc } };
                Some((frame, next))
            }
            (record, Callee::NotAFunction(what)) => self
                .refuse(
                    Code::FrameFunction,
                    self.frame_path(k).with(Segment::Field("function slot")),
                    format!(
                        "the {} frame's function is in stack slot {func} (where its caller put it), which holds {what}, not a function",
                        if matches!(record, Frame::C) { "C" } else { "Luau" },
                    ),
                ),
            (record, _) => self
                .refuse(
                    Code::FrameFunction,
                    self.frame_path(k).with(Segment::Field("kind")),
                    format!(
                        "recorded as a {} frame, but stack slot {func} holds a {} function",
                        if matches!(record, Frame::C) { "C" } else { "Luau" },
                        if matches!(record, Frame::C) { "Luau" } else { "C" },
                    ),
                ),
        }
    }
}
