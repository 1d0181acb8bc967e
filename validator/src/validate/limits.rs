//! Limits: totals a snapshot's objects could still exceed. Counts and sizes of the encoding were
//! bounded while decoding, before anything was allocated; what a restore would build is summed
//! here, object by object.

use super::{Context, obj};
use crate::diagnostics::{Code, ObjectPath, Sink};
use crate::snapshot::ObjectRef;

/// The family as the validator's pass over the objects goes: sizes per object, memory summed.
pub(crate) struct Totals {
    memory: usize,
}

impl Totals {
    pub(crate) fn new(ctx: &Context<'_>, sink: &mut Sink) -> Totals {
        let (count, max) = (ctx.s.object_count(), ctx.limits.max_objects);
        if count > max {
            sink.error(Code::TooManyObjects, ObjectPath::new(), format!("{count} objects exceed the limit of {max}"));
        }
        Totals { memory: 0 }
    }

    /// Object `i`.
    pub(crate) fn object(&mut self, ctx: &Context<'_>, sink: &mut Sink, i: u32, o: &ObjectRef<'_>) {
        let limits = ctx.limits;
        if let Some(sizes) = &limits.object_sizes {
            self.memory = self.memory.saturating_add(crate::limits::object_memory(o, sizes));
        }
        let (code, size, limit) = match o {
            ObjectRef::String(b) => (Code::StringTooLong, b.len(), limits.max_string_bytes),
            ObjectRef::Buffer(b) => (Code::BufferTooLarge, b.len(), limits.max_buffer_bytes),
            ObjectRef::Table(t) => (Code::TableTooLarge, t.array_len() + t.hash_len(), limits.max_table_entries),
            ObjectRef::Thread(t) if t.frames.len() > limits.max_frames => {
                (Code::TooManyFrames, t.frames.len(), limits.max_frames)
            }
            ObjectRef::Thread(t) => (Code::StackTooLarge, t.stack.len(), limits.max_stack_slots),
            _ => return,
        };
        if size > limit {
            sink.error(code, obj(o.kind(), i), format!("size {size} exceeds the limit of {limit}"));
        }
    }

    pub(crate) fn finish(self, ctx: &Context<'_>, sink: &mut Sink) {
        if let (Some(max), Some(_)) = (ctx.limits.max_memory, &ctx.limits.object_sizes)
            && self.memory > max
        {
            sink.error(
                Code::StateTooLarge,
                ObjectPath::new(),
                format!("the restored state needs about {} bytes; the memory limit is {max}", self.memory),
            );
        }
    }
}
