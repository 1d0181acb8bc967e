//! Limits: totals a model built in memory could still exceed. Counts and sizes of a decoded
//! snapshot were bounded while decoding, before anything was allocated.

use super::{Context, obj};
use crate::diagnostics::{Code, ObjectPath, Sink};
use crate::snapshot::Object;

pub(crate) fn check(ctx: &Context<'_>, sink: &mut Sink) {
    let s = ctx.s;
    let limits = ctx.limits;
    if s.objects.len() > limits.max_objects {
        sink.error(
            Code::TooManyObjects,
            ObjectPath::new(),
            format!("{} objects exceed the limit of {}", s.objects.len(), limits.max_objects),
        );
    }
    for (i, o) in s.objects.iter().enumerate() {
        let i = i as u32;
        let (code, size, limit) = match o {
            Object::String(b) => (Code::StringTooLong, b.len(), limits.max_string_bytes),
            Object::Buffer(b) => (Code::BufferTooLarge, b.len(), limits.max_buffer_bytes),
            Object::Table(t) => (Code::TableTooLarge, t.array.len() + t.hash.len(), limits.max_table_entries),
            Object::Thread(t) if t.frames.len() > limits.max_frames => {
                (Code::TooManyFrames, t.frames.len(), limits.max_frames)
            }
            Object::Thread(t) => (Code::StackTooLarge, t.stack.len(), limits.max_stack_slots),
            _ => continue,
        };
        if size > limit {
            sink.error(code, obj(o.kind(), i), format!("size {size} exceeds the limit of {limit}"));
        }
    }
    if let (Some(max), Some(sizes)) = (limits.max_memory, &limits.object_sizes) {
        let needed = crate::limits::estimate_memory(s, sizes);
        if needed > max {
            sink.error(
                Code::StateTooLarge,
                ObjectPath::new(),
                format!("the restored state needs about {needed} bytes; the memory limit is {max}"),
            );
        }
    }
}
