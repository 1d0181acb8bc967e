//! Scripts and protos: every script's source is available and hashes to its identity, compiles
//! (through the host's catalog) to bytecode the reader accepts, and every closure names a proto
//! that exists with its number of upvalues.

use super::{Context, PreparedScript, ScriptCatalog, VerifiedScript, obj};
use crate::diagnostics::{Code, ObjectPath, Segment, Sink};
use crate::snapshot::*;
use std::collections::HashMap;

/// The header against the runtime the host named: the scripts would compile, and values would
/// mean, something else under another flag set. The Luau release and the base image are not
/// compared here: signatures (Y003) and permanents by name (X001, R003) decide those.
fn runtime(ctx: &Context<'_>, sink: &mut Sink) {
    let Some(want) = &ctx.limits.runtime else { return };
    let h = &ctx.s.header;
    if h.enabled_flags != want.enabled_flags {
        let list = |f: &[String]| if f.is_empty() { "none".to_string() } else { f.join(", ") };
        let enabled = list(&h.enabled_flags);
        sink.error(
            Code::OtherRuntime,
            ObjectPath::new().with(Segment::Section("header")).with(Segment::Field("feature flags")),
            format!(
                "taken with other Luau feature flags on (there: {enabled}; this runtime, Luau {}: {})",
                want.luau_version,
                list(&want.enabled_flags)
            ),
        );
    }
}

pub(crate) fn check(ctx: &Context<'_>, catalog: &dyn ScriptCatalog, sink: &mut Sink) -> Vec<Option<VerifiedScript>> {
    runtime(ctx, sink);
    Scripts { ctx, sink }.run(catalog)
}

struct Scripts<'c, 'a> {
    ctx: &'c Context<'a>,
    sink: &'c mut Sink,
}

impl Scripts<'_, '_> {
    fn run(&mut self, catalog: &dyn ScriptCatalog) -> Vec<Option<VerifiedScript>> {
        let s = self.ctx.s;
        let mut seen: HashMap<ScriptHash, usize> = HashMap::new();
        let mut out = Vec::with_capacity(s.scripts.len());
        for (i, entry) in s.scripts.iter().enumerate() {
            let here = || ObjectPath::new().with(Segment::Script(i as u32));
            if let Some(first) = seen.insert(entry.hash, i) {
                self.sink.error(Code::DuplicateScript, here(), format!("same source hash as script#{first}"));
            }
            if let Some(src) = &entry.source
                && ScriptHash::of(src) != entry.hash
            {
                self.sink.error(
                    Code::HashMismatch,
                    here().with(Segment::Field("source")),
                    format!(
                        "embedded source of {} hashes to {}, not the recorded {}",
                        entry.chunk_name,
                        ScriptHash::of(src),
                        entry.hash
                    ),
                );
                out.push(None);
                continue;
            }
            if let Some(prepared) = catalog.prepared(&entry.hash, s.header.compiler) {
                out.push(Some(prepared));
                continue;
            }
            let found = match catalog.lookup(&entry.hash, &entry.chunk_name, entry.source.as_deref(), s.header.compiler)
            {
                Ok(found) => found,
                Err(why) => {
                    self.sink.error(
                        Code::SourceMissing,
                        here(),
                        format!("source of {} ({}) is unavailable: {why}", entry.chunk_name, entry.hash),
                    );
                    out.push(None);
                    continue;
                }
            };
            if ScriptHash::of(&found.source) != entry.hash {
                self.sink.error(
                    Code::HashMismatch,
                    here(),
                    format!("the supplied source of {} does not hash to the recorded {}", entry.chunk_name, entry.hash),
                );
                out.push(None);
                continue;
            }
            match PreparedScript::prepare(found.source, entry.hash, found.bytecode) {
                Ok(prepared) => {
                    let prepared: VerifiedScript = std::sync::Arc::new(prepared);
                    catalog.remember(&entry.hash, s.header.compiler, &prepared);
                    out.push(Some(prepared));
                }
                Err(e) => {
                    self.sink.error(Code::BytecodeRefused, here(), format!("{}: {e}", entry.chunk_name));
                    out.push(None);
                }
            }
        }
        out
    }
}

/// Luau closure object `i` (`c`): its proto exists in its script and has its upvalue count.
pub(crate) fn closure(scripts: &[Option<VerifiedScript>], sink: &mut Sink, i: u32, c: &LuaClosure) {
    let Some(Some(script)) = scripts.get(c.script as usize) else {
        return;
    };
    let here = || obj(ObjectKind::LuaClosure, i);
    match script.module.proto(c.proto) {
        None => sink.error(
            Code::ProtoOutOfRange,
            here().with(Segment::Field("proto")),
            format!("proto {} does not exist; script#{} has {} protos", c.proto, c.script, script.module.protos.len()),
        ),
        Some(p) if usize::from(p.num_upvalues) != c.upvalues.len() => sink.error(
            Code::UpvalueCountMismatch,
            here().with(Segment::Field("upvalues")),
            format!(
                "{} upvalues, but proto {} ({}) has {}",
                c.upvalues.len(),
                c.proto,
                script.module.proto_name(c.proto),
                p.num_upvalues
            ),
        ),
        Some(_) => {}
    }
}
