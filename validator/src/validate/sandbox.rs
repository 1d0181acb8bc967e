//! Sandbox: only permanents the host allowlists, userdata only through codecs it registered.
//! (Raw light userdata is refused where values are read, by the references family.)

use super::{Context, obj};
use crate::diagnostics::{Code, ObjectPath, Segment, Sink};
use crate::snapshot::{ObjectKind, Userdata, UserdataKind};

pub(crate) fn check(ctx: &Context<'_>, sink: &mut Sink) {
    let s = ctx.s;
    if let Some(allow) = &ctx.limits.permanents {
        for (i, name) in s.permanents.iter().enumerate() {
            if !allow.contains_key(name) {
                sink.error(
                    Code::PermanentNotAllowed,
                    ObjectPath::new().with(Segment::Permanent(i as u32)),
                    format!("`{name}` is not a permanent this host allows"),
                );
            }
        }
    }
}

/// Userdata object `i` (`u`) goes through a registered codec.
pub(crate) fn userdata(ctx: &Context<'_>, sink: &mut Sink, i: u32, u: &Userdata) {
    if let UserdataKind::Codec { codec, tag, .. } = &u.kind
        && !ctx.limits.codecs.contains(codec)
    {
        sink.error(
            Code::UnknownCodec,
            obj(ObjectKind::Userdata, i),
            format!("userdata with tag {tag} uses codec `{codec}`, which this host has not registered"),
        );
    }
}
