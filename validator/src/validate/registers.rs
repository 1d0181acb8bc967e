//! Register types: at every suspended Luau frame, the registers hold what the VM will read
//! without checking when the frame resumes ([`crate::bytecode::registers`] derives the needs of
//! each yield point from the compiled bytecode), generic-for positions appear only where a live
//! loop keeps one, and every open upvalue points at a captured register its frame closes before
//! it returns.

use super::frames::{CallFrameKind, ThreadLayout};
use super::{Context, VerifiedScript, obj};
use crate::diagnostics::{Code, ObjectPath, Segment, Sink};
use crate::limits::PermanentKind;
use crate::snapshot::*;
use std::collections::HashSet;

/// Thread object `thread` (`t`), whose frames derived to `layout`.
pub(crate) fn check(
    ctx: &Context<'_>,
    scripts: &[Option<VerifiedScript>],
    thread: u32,
    t: &Thread,
    layout: &ThreadLayout,
    sink: &mut Sink,
) {
    Frames { ctx, scripts, sink, thread, t, layout }.run();
}

struct Frames<'c, 'a> {
    ctx: &'c Context<'a>,
    scripts: &'c [Option<VerifiedScript>],
    sink: &'c mut Sink,
    thread: u32,
    t: &'c Thread,
    layout: &'c ThreadLayout,
}

impl Frames<'_, '_> {
    fn slot_path(&self, slot: u32) -> ObjectPath {
        obj(ObjectKind::Thread, self.thread).with(Segment::Index("stack slot", u64::from(slot)))
    }

    /// A register's value: slots past the stack's end are nil once restored.
    fn value(&self, slot: u32) -> Value {
        self.t.stack.get(slot as usize).copied().unwrap_or(Value::Nil)
    }

    fn is_table(&self, v: Value) -> bool {
        match v {
            Value::Object(i) => self.ctx.object_kind(i) == Some(ObjectKind::Table),
            Value::Permanent(p) => matches!(self.ctx.permanent_kind(p), Some(Some(PermanentKind::Table) | None)),
            _ => false,
        }
    }

    fn wrong(&mut self, slot: u32, k: usize, message: String) {
        let path = self.slot_path(slot);
        self.sink.error(Code::RegisterType, path, format!("frame {k}: {message}"));
    }

    fn run(&mut self) {
        // Stack slots where a live generic-for loop keeps its position.
        let mut positions: HashSet<u32> = HashSet::new();
        for (k, f) in self.layout.frames.iter().enumerate() {
            let CallFrameKind::Lua { script, proto, yield_point, .. } = f.kind else { continue };
            let Some(point) = self
                .scripts
                .get(script as usize)
                .and_then(Option::as_ref)
                .and_then(|s| s.yield_maps.get(proto as usize))
                .and_then(|m| m.get(yield_point))
            else {
                continue;
            };
            let at =
                || format!("suspended at {} of {} (pc {})", point.kind.name(), point.op.name(), point.instruction_pc);
            let base = f.base;
            for r in point.needs.numbers.iter() {
                let v = self.value(base + r);
                if !matches!(v, Value::Number(_)) {
                    self.wrong(
                        base + r,
                        k,
                        format!("register {r} is a numeric-for control register here ({}), which FORNLOOP reads as a number unchecked; it holds {}", at(), super::value_text(&v)),
                    );
                }
            }
            for r in point.needs.tables.iter() {
                let v = self.value(base + r);
                let fresh = match v {
                    Value::Object(i) if self.ctx.object_kind(i) == Some(ObjectKind::Table) => {
                        matches!(self.ctx.object(i), Some(ObjectRef::Table(t)) if !t.readonly)
                    }
                    _ => false,
                };
                if !fresh {
                    self.wrong(
                        base + r,
                        k,
                        format!("register {r} is the target of a pending SETLIST ({}), which writes into it as a table unchecked; it must be a table of the snapshot that is not read-only, and holds {}", at(), super::value_text(&v)),
                    );
                }
            }
            for a in point.needs.loops.iter() {
                let generator = self.value(base + a);
                if generator != Value::Nil {
                    continue; // the loop calls its generator, which checks what it is given
                }
                let state = self.value(base + a + 1);
                if !self.is_table(state) {
                    self.wrong(
                        base + a + 1,
                        k,
                        format!("register {} is the state of a generic-for loop whose generator is nil ({}), so FORGLOOP iterates it as a table; it holds {}", a + 1, at(), super::value_text(&state)),
                    );
                    continue;
                }
                match self.value(base + a + 2) {
                    Value::IterPosition(p) => {
                        positions.insert(base + a + 2);
                        self.position_in_range(base + a + 2, k, state, p);
                    }
                    other => self.wrong(
                        base + a + 2,
                        k,
                        format!("register {} is the position of a generic-for loop over a table ({}), which FORGLOOP reads as a position unchecked; it holds {}", a + 2, at(), super::value_text(&other)),
                    ),
                }
            }
            if let Some(a) = point.generator {
                let a = u32::from(a);
                if self.value(base + a) == Value::Nil {
                    self.wrong(
                        base + a,
                        k,
                        format!("register {a} is the generator of a generic-for loop whose iterator call is suspended ({}); it cannot be nil (the loop would read the overwritten position register as a table position)", at()),
                    );
                }
            }
        }
        for (slot, v) in self.t.stack.iter().enumerate() {
            let slot = slot as u32;
            if let Value::IterPosition(p) = v
                && !positions.contains(&slot)
            {
                let path = self.slot_path(slot);
                self.sink.error(
                    Code::MisplacedPosition,
                    path,
                    format!("generic-for position {p} where no live loop over a table keeps its position"),
                );
            }
        }
        self.open_upvalues();
    }

    /// A live position names a slot of the table's array-then-hash range, end included (an empty
    /// hash part is Luau's single dummy node, which the loop still steps over). Out of range the
    /// VM only ends the loop early (it bounds-checks), so this rule keeps loops from skipping
    /// keys; positions into permanent tables are the VM's to bound.
    fn position_in_range(&mut self, slot: u32, k: usize, state: Value, p: u32) {
        let Value::Object(ti) = state else { return };
        if self.ctx.object_kind(ti) != Some(ObjectKind::Table) {
            return;
        }
        let Some(ObjectRef::Table(table)) = self.ctx.object(ti) else { return };
        let range = table.array_len() + table.hash_len().max(1);
        if p as usize > range {
            let path = self.slot_path(slot);
            self.sink.error(
                Code::IterPositionOutOfRange,
                path,
                format!("frame {k}: generic-for position {p} is past table#{ti}'s {range} array and hash slots"),
            );
        }
    }

    fn open_upvalues(&mut self) {
        for &u in &self.t.open_upvalues {
            if self.ctx.object_kind(u) != Some(ObjectKind::Upvalue) {
                continue; // the references family reports these
            }
            let Some(ObjectRef::Upvalue(Upvalue::Open { slot, .. })) = self.ctx.object(u) else {
                continue; // the graph family reports these
            };
            let path = obj(ObjectKind::Upvalue, u).with(Segment::Field("slot"));
            let Some(k) = self.layout.register_owner(slot) else {
                self.sink.error(
                    Code::OpenUpvalueRegister,
                    path,
                    format!("open upvalue at stack slot {slot}, which is no register of a suspended Luau frame: nothing would ever close it"),
                );
                continue;
            };
            let f = self.layout.frames[k];
            let CallFrameKind::Lua { script, proto, yield_point, .. } = f.kind else { continue };
            let Some(map) = self
                .scripts
                .get(script as usize)
                .and_then(Option::as_ref)
                .and_then(|s| s.yield_maps.get(proto as usize))
            else {
                continue;
            };
            let Some(point) = map.get(yield_point) else { continue };
            let r = slot - f.base;
            if !point.open.contains(r) {
                self.sink.error(
                    Code::OpenUpvalueRegister,
                    path,
                    format!(
                        "open upvalue at register {r} of frame {k}, which no closure of proto {proto} can have captured and left open where the frame is suspended ({} of {} at pc {})",
                        point.kind.name(),
                        point.op.name(),
                        point.instruction_pc
                    ),
                );
            } else if r < u32::from(point.closed_from) {
                self.sink.error(
                    Code::OpenUpvalueRegister,
                    path,
                    format!(
                        "open upvalue at register {r} of frame {k}: from its yield point the frame can return without closing it (it closes registers from {} up)",
                        point.closed_from
                    ),
                );
            }
        }
    }
}
