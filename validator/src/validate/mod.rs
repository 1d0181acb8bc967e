//! `validate`: bytes in, `Verified<Snapshot>` or a [`Report`] out.
//!
//! The bytes are read once to locate every object ([`SnapshotView::decode`]), into a view that
//! keeps one offset and one kind per object. Then one pass over the objects, each decoded
//! strictly in place once (a malformed one refuses the snapshot, with the finding a full decode
//! would give first), hands every object to every family that looks at it;
//! a thread's frames are derived in that pass and read by the families about frames, then
//! dropped. Each family is a module whose functions take the shared, read-only [`Context`] and
//! the [`Sink`] findings go to:
//!
//! - [`limits`]: sizes per object and the memory a restore would build;
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
//! - [`graph`]: reachability (computed as the pass goes), open-upvalue ownership, resume chains;
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
mod strings;
pub(crate) mod table_layout;
mod yield_points;

pub use frames::{CallFrame, CallFrameKind, ThreadLayout};

use crate::bytecode::{Module, YieldPointMap};
use crate::diagnostics::{ObjectPath, Report, Segment, Sink};
use crate::limits::{Limits, PermanentKind};
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
/// `Verified<Snapshot>` cannot be handed an unchecked snapshot. It holds the snapshot as a
/// [`SnapshotView`] (its bytes, each object located), which restore reads in place.
#[derive(Debug, Clone)]
pub struct Verified<T> {
    view: SnapshotView<'static>,
    scripts: Vec<VerifiedScript>,
    /// What deriving a thread's layout reads of the limits it was checked under (restore derives
    /// the layouts again): the stack cap, and each permanent's allowlisted kind.
    derive_limits: Limits,
    permanent_kinds: Vec<Option<PermanentKind>>,
    warnings: Vec<crate::Diagnostic>,
    /// Layouts replaced by hand (the `tamper` feature's tests only).
    #[cfg(feature = "tamper")]
    tampered_layouts: Vec<(u32, ThreadLayout)>,
    _checked: std::marker::PhantomData<T>,
}

impl Verified<Snapshot> {
    /// The checked snapshot, objects read in place.
    pub fn view(&self) -> &SnapshotView<'static> {
        &self.view
    }

    /// The checked snapshot as a model (decoded in full; tools and tests).
    pub fn to_model(&self) -> Snapshot {
        self.view.to_model()
    }

    /// The scripts, in the order of the snapshot's script table.
    pub fn scripts(&self) -> &[VerifiedScript] {
        &self.scripts
    }

    /// The derived call-info of thread object `index`: what restore writes into the VM. Derived
    /// anew by the same code that checked it (it is not kept: a state of many threads would hold
    /// more layout than snapshot).
    pub fn layout(&self, index: u32) -> Option<ThreadLayout> {
        self.threads().find(|(i, _, _)| *i == index).and_then(|(_, _, l)| l)
    }

    /// Every thread's layout, by object index (ascending): [`Verified::layout`] for all threads
    /// at once.
    pub fn layouts(&self) -> Vec<(u32, ThreadLayout)> {
        self.threads().filter_map(|(i, _, l)| Some((i, l?))).collect()
    }

    /// Every thread object (index ascending), decoded, with its derived layout (`None` only if
    /// the verified snapshot was tampered with): one decoding and one derivation per thread.
    pub fn threads(&self) -> impl Iterator<Item = (u32, Box<Thread>, Option<ThreadLayout>)> + '_ {
        let ctx = Context::with_permanent_kinds(&self.view, &self.derive_limits, self.permanent_kinds.clone());
        let scripts: Vec<Option<VerifiedScript>> = self.scripts.iter().cloned().map(Some).collect();
        self.view.indices_of(ObjectKind::Thread).filter_map(move |i| {
            let t = ctx.thread(i)?;
            #[cfg(feature = "tamper")]
            if let Some((_, l)) = self.tampered_layouts.iter().find(|(at, _)| *at == i) {
                return Some((i, t, Some(l.clone())));
            }
            let layout = frames::derive(&ctx, &scripts, i, &t, &mut Sink::new(1));
            Some((i, t, layout))
        })
    }

    /// Findings that did not refuse the snapshot (severity warning).
    pub fn warnings(&self) -> &[crate::Diagnostic] {
        &self.warnings
    }

    /// Test-only: corrupts a verified snapshot by hand, to show that restore's own checks hold
    /// when the validator misses something. Exists only with the `tamper` feature.
    #[cfg(feature = "tamper")]
    pub fn tamper(&mut self, corrupt: impl FnOnce(&mut Snapshot)) {
        let mut model = self.view.to_model();
        corrupt(&mut model);
        let bytes = crate::snapshot::format::encode(&model);
        match SnapshotView::decode(&bytes, crate::snapshot::format::unbounded()) {
            Ok(v) => self.view = v.into_owned(),
            Err(e) => panic!("the tampered model does not decode: {e:?}"),
        }
    }

    /// Test-only, like [`Verified::tamper`]: replaces a thread's derived layout.
    #[cfg(feature = "tamper")]
    pub fn tamper_layout(&mut self, index: u32, corrupt: impl FnOnce(&mut ThreadLayout)) {
        if let Some(mut l) = self.layout(index) {
            corrupt(&mut l);
            self.tampered_layouts.retain(|(i, _)| *i != index);
            self.tampered_layouts.push((index, l));
        }
    }
}

/// Decodes and validates a snapshot.
pub fn validate(bytes: &[u8], limits: &Limits, catalog: &dyn ScriptCatalog) -> Result<Verified<Snapshot>, Report> {
    let view = SnapshotView::decode(bytes, limits).map_err(|d| Report { diagnostics: vec![*d], omitted: 0 })?;
    validate_view(view, limits, catalog)
}

/// Validates a model that did not come from bytes (a capture in the same process still goes
/// through every check before it may be restored): it is encoded, and the bytes validated.
pub fn validate_model(
    snapshot: Snapshot,
    limits: &Limits,
    catalog: &dyn ScriptCatalog,
) -> Result<Verified<Snapshot>, Report> {
    let bytes = crate::snapshot::format::encode(&snapshot);
    drop(snapshot);
    validate(&bytes, limits, catalog)
}

/// Validates a decoded snapshot ([`SnapshotView::decode`] under the same `limits`): [`validate`]
/// after its decoding step.
pub fn validate_view(
    view: SnapshotView,
    limits: &Limits,
    catalog: &dyn ScriptCatalog,
) -> Result<Verified<Snapshot>, Report> {
    let ctx = Context::new(&view, limits);
    let mut sink = Sink::new(limits.max_diagnostics);
    let sink = &mut sink;
    let mut totals = limits::Totals::new(&ctx, sink);
    let mut references = references::Walker::new(&ctx, sink);
    let scripts = scripts::check(&ctx, catalog, sink);
    let mut used_protos = std::collections::BTreeSet::new();
    let mut reach = graph::Reach::new(&ctx);
    let mut matches = matcher::Matches::new(&ctx);
    let mut chains = graph::Chains::new(&ctx);
    // One pass over the objects, each decoded strictly once (a malformed object refuses the
    // snapshot with that one finding, as decoding it in full would), every family seeing it in
    // turn; a thread's frames are derived here and read by the families about frames, then
    // dropped.
    for (i, at, end) in view.extents() {
        let o = view.checked_object(i, at, end, limits).map_err(|d| Report { diagnostics: vec![*d], omitted: 0 })?;
        totals.object(&ctx, sink, i, &o);
        references.object(sink, i, &o);
        reach.object(&ctx, i, &o);
        matches.references(&o);
        match &o {
            ObjectRef::LuaClosure(c) => {
                scripts::closure(&scripts, sink, i, c);
                used_protos.insert((c.script, c.proto));
            }
            ObjectRef::Userdata(u) => sandbox::userdata(&ctx, sink, i, u),
            ObjectRef::Thread(t) => {
                let layout = frames::derive(&ctx, &scripts, i, t, sink);
                if let Some(layout) = &layout {
                    registers::check(&ctx, &scripts, i, t, layout, sink);
                    matches.thread(&ctx, i, t, layout, sink);
                }
                chains.thread(&ctx, i, t, layout.as_ref(), sink);
            }
            _ => {}
        }
    }
    totals.finish(&ctx, sink);
    references.finish(sink);
    yield_points::check(&ctx, &scripts, &used_protos, sink);
    matches.finish(sink);
    graph::check(&ctx, reach, chains, sink);
    sandbox::check(&ctx, sink);
    let report = std::mem::take(&mut sink.report);
    if report.has_errors() {
        return Err(report);
    }
    let permanent_kinds = ctx.permanent_kinds;
    // Every script verified (a missing one is an error), so the list lines up with the table.
    let scripts = scripts.into_iter().flatten().collect();
    Ok(Verified {
        view: view.into_owned(),
        scripts,
        derive_limits: Limits { max_stack_slots: limits.max_stack_slots, ..Limits::default() },
        permanent_kinds,
        warnings: report.diagnostics,
        #[cfg(feature = "tamper")]
        tampered_layouts: Vec::new(),
        _checked: std::marker::PhantomData,
    })
}

/// What every family may read: the snapshot, the intake policy, and facts looked up once.
pub(crate) struct Context<'a> {
    pub s: &'a SnapshotView<'a>,
    pub limits: &'a Limits,
    /// Each permanent's kind per the host's allowlist (`None`: unknown), looked up once.
    pub permanent_kinds: Vec<Option<PermanentKind>>,
}

impl<'a> Context<'a> {
    fn new(s: &'a SnapshotView, limits: &'a Limits) -> Context<'a> {
        let permanent_kinds = s
            .permanents
            .iter()
            .map(|name| limits.permanents.as_ref().and_then(|allow| allow.get(name).copied()))
            .collect();
        Context::with_permanent_kinds(s, limits, permanent_kinds)
    }

    fn with_permanent_kinds(
        s: &'a SnapshotView,
        limits: &'a Limits,
        permanent_kinds: Vec<Option<PermanentKind>>,
    ) -> Context<'a> {
        Context { s, limits, permanent_kinds }
    }

    /// Object `i`'s kind (one byte apiece: reference checks look kinds up at random, and this
    /// keeps those lookups in cache instead of decoding every referenced object).
    pub fn object_kind(&self, i: u32) -> Option<ObjectKind> {
        self.s.kind(i)
    }

    pub fn object(&self, i: u32) -> Option<ObjectRef<'a>> {
        self.s.object(i)
    }

    pub fn thread(&self, i: u32) -> Option<Box<Thread>> {
        self.s.thread(i)
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
