//! `validate`: bytes in, `Verified<Snapshot>` or a [`Report`] out.
//!
//! One module per family of checks, run in data-flow order over the decoded model. Each family
//! is a `check` function that takes the shared, read-only [`Context`], the outputs of the
//! families before it, and the [`Sink`] findings go to:
//!
//! - [`limits`]: totals a model built in memory could exceed (decoding bounded the rest);
//! - [`references`]: every reference in range and of the type its slot requires (one pass over
//!   the objects, with the string-equality classes);
//! - [`scripts`]: sources, bytecode and protos, through the host's [`ScriptCatalog`];
//! - [`yield_points`]: every used proto's recorded signature matches the compiled bytecode;
//! - [`frames`]: every thread's call-info, derived from its yield points (the layout restore
//!   writes);
//! - [`registers`]: at each suspended frame, registers hold what the VM reads unchecked;
//!   generic-for positions only in live loops; open upvalues only on registers that get closed;
//! - [`matcher`]: pattern matching suspended mid-match: its state buffer against its subject
//!   and pattern;
//! - [`graph`]: reachability, open-upvalue ownership, resume chains;
//! - [`sandbox`]: allowlisted permanents and codecs.
//!
//! Independent findings are all reported, up to [`Limits::max_diagnostics`].

mod frames;
mod graph;
mod limits;
mod matcher;
mod references;
mod registers;
mod sandbox;
mod scripts;
pub(crate) mod table_layout;
mod yield_points;

pub use frames::{CallFrame, CallFrameKind, ThreadLayout};

/// The derived layout of every thread, by object index (ascending); `None` for a thread whose
/// frames were refused.
pub(crate) type Layouts = Vec<(u32, Option<ThreadLayout>)>;

fn layout_of(layouts: &Layouts, index: u32) -> Option<&ThreadLayout> {
    let at = layouts.binary_search_by_key(&index, |(i, _)| *i).ok()?;
    layouts[at].1.as_ref()
}

use crate::bytecode::{Module, YieldPointMap};
use crate::diagnostics::{ObjectPath, Report, Segment, Sink};
use crate::limits::{Limits, PermanentKind};
use crate::snapshot::format::decode;
use crate::snapshot::*;

/// Where the validator gets a script's bytecode. The runtime implements it by compiling the
/// source with the snapshot's compiler settings (bytecode never comes from a snapshot); tests
/// may hand out precompiled bytes.
pub trait ScriptCatalog {
    /// Source and bytecode of the script `hash`. `embedded` is the snapshot's own copy of the
    /// source, when it carries one (its hash has been checked already). An `Err` explains why
    /// the script is unavailable.
    fn lookup(
        &self,
        hash: &ScriptHash,
        chunk_name: &str,
        embedded: Option<&[u8]>,
        settings: CompilerSettings,
    ) -> Result<CatalogEntry, String>;

    /// A script this catalog prepared before (compiled and analysed by [`PreparedScript::prepare`]),
    /// so that validating many snapshots of one script compiles and analyses it once.
    fn prepared(&self, _hash: &ScriptHash, _settings: CompilerSettings) -> Option<VerifiedScript> {
        None
    }

    /// Offers a script the validator just prepared, for [`ScriptCatalog::prepared`] to return.
    fn remember(&self, _hash: &ScriptHash, _settings: CompilerSettings, _script: &VerifiedScript) {}
}

#[derive(Debug, Clone)]
pub struct CatalogEntry {
    /// The source that was compiled (its SHA-256 must be the script's hash).
    pub source: Vec<u8>,
    pub bytecode: Vec<u8>,
}

/// A script compiled from its source and analysed: its bytecode parsed, every proto's
/// yield-point map and register dataflow computed. Derived only from the source and the
/// compiler, so one analysis serves every snapshot of the script (shared, immutable).
#[derive(Debug)]
pub struct PreparedScript {
    pub source: Vec<u8>,
    /// SHA-256 of `source`.
    pub hash: ScriptHash,
    pub bytecode: Vec<u8>,
    pub module: Module,
    pub yield_maps: Vec<YieldPointMap>,
}

impl PreparedScript {
    /// Parses `bytecode` (what the runtime's compiler made of `source`, whose hash is `hash`)
    /// and builds its yield-point maps.
    pub fn prepare(
        source: Vec<u8>,
        hash: ScriptHash,
        bytecode: Vec<u8>,
    ) -> Result<PreparedScript, crate::bytecode::BytecodeError> {
        let (module, yield_maps) = crate::bytecode::parse_with_maps(&bytecode)?;
        Ok(PreparedScript { source, hash, bytecode, module, yield_maps })
    }
}

/// A script of a verified snapshot (shared with every other snapshot of the same script).
pub type VerifiedScript = std::sync::Arc<PreparedScript>;

/// A value the validator has checked. Only this crate can make one, so an API that takes a
/// `Verified<Snapshot>` cannot be handed an unchecked model.
#[derive(Debug, Clone)]
pub struct Verified<T> {
    value: T,
    scripts: Vec<VerifiedScript>,
    /// The derived layout of each thread.
    layouts: Layouts,
    warnings: Vec<crate::Diagnostic>,
}

impl Verified<Snapshot> {
    pub fn snapshot(&self) -> &Snapshot {
        &self.value
    }

    /// The scripts, in the order of the snapshot's script table.
    pub fn scripts(&self) -> &[VerifiedScript] {
        &self.scripts
    }

    /// The derived call-info of thread object `index`: what restore writes into the VM.
    pub fn layout(&self, index: u32) -> Option<&ThreadLayout> {
        layout_of(&self.layouts, index)
    }

    /// Findings that did not refuse the snapshot (severity warning).
    pub fn warnings(&self) -> &[crate::Diagnostic] {
        &self.warnings
    }

    /// Test-only: corrupts a verified snapshot by hand, to show that restore's own checks hold
    /// when the validator misses something. Exists only with the `tamper` feature.
    #[cfg(feature = "tamper")]
    pub fn tamper(&mut self) -> &mut Snapshot {
        &mut self.value
    }

    /// Test-only, like [`Verified::tamper`]: corrupts a thread's derived layout.
    #[cfg(feature = "tamper")]
    pub fn tamper_layout(&mut self, index: u32) -> Option<&mut ThreadLayout> {
        let at = self.layouts.binary_search_by_key(&index, |(i, _)| *i).ok()?;
        self.layouts[at].1.as_mut()
    }
}

/// Decodes and validates a snapshot.
pub fn validate(bytes: &[u8], limits: &Limits, catalog: &dyn ScriptCatalog) -> Result<Verified<Snapshot>, Report> {
    let snapshot = decode(bytes, limits).map_err(|d| Report { diagnostics: vec![*d], omitted: 0 })?;
    validate_model(snapshot, limits, catalog)
}

/// Validates a model that did not come from bytes (a capture in the same process still goes
/// through every check before it may be restored).
pub fn validate_model(
    snapshot: Snapshot,
    limits: &Limits,
    catalog: &dyn ScriptCatalog,
) -> Result<Verified<Snapshot>, Report> {
    let ctx = Context::new(&snapshot, limits);
    let mut sink = Sink::new(limits.max_diagnostics);
    limits::check(&ctx, &mut sink);
    references::check(&ctx, &mut sink);
    let scripts = scripts::check(&ctx, catalog, &mut sink);
    yield_points::check(&ctx, &scripts, &mut sink);
    let layouts = frames::check(&ctx, &scripts, &mut sink);
    registers::check(&ctx, &scripts, &layouts, &mut sink);
    matcher::check(&ctx, &layouts, &mut sink);
    graph::check(&ctx, &layouts, &mut sink);
    sandbox::check(&ctx, &mut sink);
    let report = sink.report;
    if report.has_errors() {
        return Err(report);
    }
    // Every script verified (a missing one is an error), so the list lines up with the table.
    let scripts = scripts.into_iter().flatten().collect();
    Ok(Verified { value: snapshot, scripts, layouts, warnings: report.diagnostics })
}

/// What every family may read: the model, the intake policy, and facts looked up once.
pub(crate) struct Context<'a> {
    pub s: &'a Snapshot,
    pub limits: &'a Limits,
    /// Each object's kind, one byte apiece: reference checks look kinds up at random, and this
    /// keeps those lookups in cache instead of touching every referenced object.
    pub kinds: Vec<ObjectKind>,
    /// Each permanent's kind per the host's allowlist (`None`: unknown), looked up once.
    pub permanent_kinds: Vec<Option<PermanentKind>>,
    /// Object indices of the threads, ascending (the families about frames visit only these).
    pub threads: Vec<u32>,
}

impl<'a> Context<'a> {
    fn new(s: &'a Snapshot, limits: &'a Limits) -> Context<'a> {
        let kinds: Vec<ObjectKind> = s.objects.iter().map(Object::kind).collect();
        let threads =
            kinds.iter().enumerate().filter(|(_, k)| **k == ObjectKind::Thread).map(|(i, _)| i as u32).collect();
        Context {
            s,
            limits,
            kinds,
            threads,
            permanent_kinds: s
                .permanents
                .iter()
                .map(|name| limits.permanents.as_ref().and_then(|allow| allow.get(name).copied()))
                .collect(),
        }
    }

    pub fn object_kind(&self, i: u32) -> Option<ObjectKind> {
        self.kinds.get(i as usize).copied()
    }

    pub fn thread(&self, i: u32) -> Option<&'a Thread> {
        match self.s.objects.get(i as usize) {
            Some(Object::Thread(t)) => Some(t),
            _ => None,
        }
    }

    pub fn layout<'l>(&self, layouts: &'l Layouts, i: u32) -> Option<&'l ThreadLayout> {
        layout_of(layouts, i)
    }

    pub fn permanent_kind(&self, i: u32) -> Option<Option<PermanentKind>> {
        self.permanent_kinds.get(i as usize).copied()
    }
}

pub(crate) fn obj(kind: ObjectKind, index: u32) -> ObjectPath {
    ObjectPath::new().with(Segment::Object { kind: kind.name(), index })
}

pub(crate) fn value_text(v: &Value) -> String {
    match v {
        Value::Nil => "nil".into(),
        Value::Boolean(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Vector(v) => format!("vector({}, {}, {})", v[0], v[1], v[2]),
        Value::IterPosition(p) => format!("iterator position {p}"),
        Value::Object(i) => format!("object #{i}"),
        Value::Permanent(i) => format!("permanent #{i}"),
        Value::LightUserdata { tag, .. } => format!("light userdata (tag {tag})"),
    }
}
