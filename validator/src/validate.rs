//! `validate`: bytes in, `Verified<Snapshot>` or a [`Report`] out.
//!
//! The families run in data-flow order over the decoded model: references (every edge in range
//! and of the type its slot requires, one pass over the objects, collecting the graph's edges),
//! scripts and protos (via the host's [`ScriptCatalog`]), the graph (reachability, open-upvalue
//! ownership, resume chains) and the sandbox. Independent findings are all reported, up to
//! [`Limits::max_diagnostics`]. Frames, yield points and register types are not checked yet:
//! see [`crate::diagnostics::UNCHECKED_FAMILIES`].

use crate::bytecode::{self, Module, YieldPointMap};
use crate::diagnostics::{Code, ObjectPath, Report, Segment, Sink};
use crate::limits::{Limits, PermanentKind};
use crate::snapshot::format::decode;
use crate::snapshot::*;
use petgraph::csr::Csr;
use petgraph::graph::{DiGraph, NodeIndex};
use std::collections::{HashMap, HashSet};

/// Permanent names the graph checks rely on: the C functions whose frames resume a coroutine.
pub const COROUTINE_RESUME: &str = "coroutine.resume";
pub const WRAPPED_COROUTINE: &str = "coroutine.wrap#resume";

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
}

#[derive(Debug, Clone)]
pub struct CatalogEntry {
    /// The source that was compiled (its SHA-256 must be the script's hash).
    pub source: Vec<u8>,
    pub bytecode: Vec<u8>,
}

/// A script of a verified snapshot: its source, parsed bytecode and yield-point maps.
#[derive(Debug, Clone)]
pub struct VerifiedScript {
    pub source: Vec<u8>,
    pub bytecode: Vec<u8>,
    pub module: Module,
    pub yield_maps: Vec<YieldPointMap>,
}

/// A value the validator has checked. Only this crate can make one, so an API that takes a
/// `Verified<Snapshot>` cannot be handed an unchecked model.
#[derive(Debug, Clone)]
pub struct Verified<T> {
    value: T,
    scripts: Vec<VerifiedScript>,
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
    let mut c = Checker {
        s: &snapshot,
        limits,
        sink: Sink::new(limits.max_diagnostics),
        edges: Vec::new(),
        string_canon: Vec::new(),
        kinds: snapshot.objects.iter().map(Object::kind).collect(),
        permanent_kinds: snapshot
            .permanents
            .iter()
            .map(|name| limits.permanents.as_ref().and_then(|allow| allow.get(name).copied()))
            .collect(),
    };
    c.check_limits();
    c.check_references();
    let scripts = c.check_scripts(catalog);
    c.check_graph();
    c.check_sandbox();
    let report = c.sink.report;
    if report.has_errors() {
        return Err(report);
    }
    Ok(Verified { value: snapshot, scripts: scripts.into_iter().flatten().collect(), warnings: report.diagnostics })
}

/// What a slot may hold.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Any value but a generic-for position.
    Any,
    /// Any value, generic-for positions included (thread stacks).
    StackSlot,
    /// A table (object or permanent).
    Table,
}

struct Checker<'a> {
    s: &'a Snapshot,
    limits: &'a Limits,
    sink: Sink,
    /// Object-to-object edges of valid references, for the graph family.
    edges: Vec<(u32, u32)>,
    /// For each object: the first string object with the same bytes (itself when unique or not
    /// a string). Luau interns strings, so equal bytes are one key.
    string_canon: Vec<u32>,
    /// Each object's kind, one byte apiece: reference checks look kinds up at random, and this
    /// keeps those lookups in cache instead of touching every referenced object.
    kinds: Vec<ObjectKind>,
    /// Each permanent's kind per the host's allowlist (`None`: unknown), looked up once.
    permanent_kinds: Vec<Option<PermanentKind>>,
}

fn obj(kind: ObjectKind, index: u32) -> ObjectPath {
    ObjectPath::new().with(Segment::Object { kind: kind.name(), index })
}

fn value_text(v: &Value) -> String {
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

impl<'a> Checker<'a> {
    fn object_kind(&self, i: u32) -> Option<ObjectKind> {
        self.kinds.get(i as usize).copied()
    }

    fn permanent_kind(&self, i: u32) -> Option<Option<PermanentKind>> {
        self.permanent_kinds.get(i as usize).copied()
    }

    fn key_text(s: &Snapshot, v: &Value) -> String {
        match v {
            Value::Object(i) => match s.objects.get(*i as usize) {
                Some(Object::String(bytes)) if bytes.len() <= 64 => format!("{:?}", String::from_utf8_lossy(bytes)),
                Some(o) => format!("{}#{i}", o.kind().name()),
                None => format!("object #{i}"),
            },
            other => value_text(other),
        }
    }

    /// Checks one value in a slot; records the edge when it names an object.
    fn value(&mut self, from: Option<u32>, v: &Value, expect: Expect, path: impl FnOnce() -> ObjectPath) {
        match *v {
            Value::Object(i) => match self.object_kind(i) {
                None => self.sink.error(
                    Code::ObjectOutOfRange,
                    path(),
                    format!("refers to object #{i}, but the snapshot has {} objects", self.s.objects.len()),
                ),
                Some(kind) => {
                    if expect == Expect::Table && kind != ObjectKind::Table {
                        self.sink.error(
                            Code::WrongType,
                            path(),
                            format!("must be a table, but object #{i} is a {}", kind.name()),
                        );
                    } else if kind == ObjectKind::Upvalue {
                        self.sink.error(
                            Code::WrongType,
                            path(),
                            format!("object #{i} is an upvalue, which is not a value"),
                        );
                    } else if let Some(from) = from {
                        self.edges.push((from, i));
                    }
                }
            },
            Value::Permanent(i) => match self.permanent_kind(i) {
                None => self.sink.error(
                    Code::PermanentOutOfRange,
                    path(),
                    format!("refers to permanent #{i}, but the snapshot has {} permanents", self.s.permanents.len()),
                ),
                Some(Some(kind)) if expect == Expect::Table && kind != PermanentKind::Table => self.sink.error(
                    Code::WrongType,
                    path(),
                    format!("must be a table, but permanent `{}` is a {}", self.s.permanents[i as usize], kind.name()),
                ),
                Some(Some(PermanentKind::CFunction)) => self.sink.error(
                    Code::WrongType,
                    path(),
                    format!("permanent `{}` is a bare C function, not a value", self.s.permanents[i as usize]),
                ),
                Some(_) => {}
            },
            Value::IterPosition(_) if expect != Expect::StackSlot => self.sink.error(
                Code::MisplacedIterPosition,
                path(),
                "a generic-for position (light userdata tag 128) outside a thread's stack",
            ),
            Value::LightUserdata { tag, .. } => self.sink.error(
                Code::RawLightUserdata,
                path(),
                format!("raw light userdata (tag {tag}) cannot be restored safely"),
            ),
            _ if expect == Expect::Table => {
                self.sink.error(Code::WrongType, path(), format!("must be a table, found {}", value_text(v)))
            }
            _ => {}
        }
    }

    fn check_limits(&mut self) {
        // Counts and sizes were bounded while decoding (before allocation); what remains are
        // totals a model built in memory could still exceed.
        let s = self.s;
        if s.objects.len() > self.limits.max_objects {
            self.sink.error(
                Code::TooManyObjects,
                ObjectPath::new(),
                format!("{} objects exceed the limit of {}", s.objects.len(), self.limits.max_objects),
            );
        }
        for (i, o) in s.objects.iter().enumerate() {
            let i = i as u32;
            let (code, size, limit) = match o {
                Object::String(b) => (Code::StringTooLong, b.len(), self.limits.max_string_bytes),
                Object::Buffer(b) => (Code::BufferTooLarge, b.len(), self.limits.max_buffer_bytes),
                Object::Table(t) => (Code::TableTooLarge, t.array.len() + t.hash.len(), self.limits.max_table_entries),
                Object::Thread(t) if t.frames.len() > self.limits.max_frames => {
                    (Code::TooManyFrames, t.frames.len(), self.limits.max_frames)
                }
                Object::Thread(t) => (Code::StackTooLarge, t.stack.len(), self.limits.max_stack_slots),
                _ => continue,
            };
            if size > limit {
                self.sink.error(code, obj(o.kind(), i), format!("size {size} exceeds the limit of {limit}"));
            }
        }
    }

    fn check_references(&mut self) {
        let s = self.s;
        // Equal strings found by sorting, not hashing: the bytes are the attacker's, and a
        // sort's cost cannot be inflated by crafted collisions.
        self.string_canon = (0..s.objects.len() as u32).collect();
        let mut strings: Vec<(&[u8], u32)> = s
            .objects
            .iter()
            .enumerate()
            .filter_map(|(i, o)| match o {
                Object::String(b) => Some((b.as_slice(), i as u32)),
                _ => None,
            })
            .collect();
        strings.sort_unstable();
        for pair in strings.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            if a.0 == b.0 {
                let canon = self.string_canon[a.1 as usize];
                self.string_canon[b.1 as usize] = canon;
                self.sink.error(
                    Code::DuplicateString,
                    obj(ObjectKind::String, b.1),
                    format!("same bytes as string#{canon}; Luau strings are interned, so a snapshot holds each once"),
                );
            }
        }
        for (i, o) in s.objects.iter().enumerate() {
            if self.sink.is_full() {
                return;
            }
            let i = i as u32;
            let here = || obj(o.kind(), i);
            match o {
                Object::String(_) | Object::Buffer(_) => {}
                Object::Table(t) => self.table(i, t),
                Object::LuaClosure(c) => {
                    if c.script as usize >= s.scripts.len() {
                        self.sink.error(
                            Code::ScriptOutOfRange,
                            here().with(Segment::Field("script")),
                            format!("names script #{}, but the snapshot has {} scripts", c.script, s.scripts.len()),
                        );
                    }
                    self.value(Some(i), &c.env, Expect::Table, || here().with(Segment::Field("environment")));
                    for (n, &u) in c.upvalues.iter().enumerate() {
                        self.upvalue_ref(i, u, || here().with(Segment::Index("upvalue", n as u64)));
                    }
                }
                Object::CClosure(c) => {
                    match self.permanent_kind(c.function) {
                        None => self.sink.error(
                            Code::PermanentOutOfRange,
                            here().with(Segment::Field("function")),
                            format!(
                                "names permanent #{}, but the snapshot has {} permanents",
                                c.function,
                                s.permanents.len()
                            ),
                        ),
                        Some(Some(kind)) if kind != PermanentKind::CFunction && kind != PermanentKind::Function => {
                            self.sink.error(
                                Code::WrongType,
                                here().with(Segment::Field("function")),
                                format!(
                                    "permanent `{}` is a {}, not a C function",
                                    s.permanents[c.function as usize],
                                    kind.name()
                                ),
                            )
                        }
                        _ => {}
                    }
                    self.value(Some(i), &c.env, Expect::Table, || here().with(Segment::Field("environment")));
                    for (n, v) in c.upvalues.iter().enumerate() {
                        self.value(Some(i), v, Expect::Any, || here().with(Segment::Index("upvalue", n as u64)));
                    }
                }
                Object::Upvalue(Upvalue::Closed(v)) => {
                    self.value(Some(i), v, Expect::Any, || here().with(Segment::Field("value")));
                }
                Object::Upvalue(Upvalue::Open { thread, slot }) => {
                    match s.objects.get(*thread as usize) {
                        Some(Object::Thread(t)) => {
                            self.edges.push((i, *thread));
                            if *slot as usize >= t.stack.len() {
                                self.sink.error(
                                Code::BadUpvalueSlot,
                                here().with(Segment::Field("slot")),
                                format!("open upvalue points at slot {slot} of thread#{thread}, whose stack has {} slots", t.stack.len()),
                            );
                            }
                        }
                        Some(other) => self.sink.error(
                            Code::BadUpvalueSlot,
                            here().with(Segment::Field("thread")),
                            format!("open upvalue names object #{thread}, a {}, not a thread", other.kind().name()),
                        ),
                        None => self.sink.error(
                            Code::ObjectOutOfRange,
                            here().with(Segment::Field("thread")),
                            format!(
                                "open upvalue names object #{thread}, but the snapshot has {} objects",
                                s.objects.len()
                            ),
                        ),
                    }
                }
                Object::Thread(t) => self.thread(i, t),
                Object::Userdata(u) => {
                    if let Some(m) = &u.metatable {
                        self.value(Some(i), m, Expect::Table, || here().with(Segment::Field("metatable")));
                    }
                }
            }
        }
        match s.objects.get(s.roots.main_thread as usize) {
            Some(Object::Thread(_)) => {}
            Some(other) => self.sink.error(
                Code::BadRoots,
                ObjectPath::new().with(Segment::Roots).with(Segment::Field("main thread")),
                format!("object #{} is a {}, not a thread", s.roots.main_thread, other.kind().name()),
            ),
            None => self.sink.error(
                Code::BadRoots,
                ObjectPath::new().with(Segment::Roots).with(Segment::Field("main thread")),
                format!("object #{} does not exist ({} objects)", s.roots.main_thread, s.objects.len()),
            ),
        }
    }

    fn upvalue_ref(&mut self, from: u32, u: u32, path: impl FnOnce() -> ObjectPath) {
        match self.object_kind(u) {
            Some(ObjectKind::Upvalue) => self.edges.push((from, u)),
            Some(kind) => self.sink.error(
                Code::WrongType,
                path(),
                format!("must be an upvalue, but object #{u} is a {}", kind.name()),
            ),
            None => self.sink.error(
                Code::ObjectOutOfRange,
                path(),
                format!("refers to object #{u}, but the snapshot has {} objects", self.s.objects.len()),
            ),
        }
    }

    fn table(&mut self, i: u32, t: &Table) {
        let here = || obj(ObjectKind::Table, i);
        if let Some(m) = &t.metatable {
            self.value(Some(i), m, Expect::Table, || here().with(Segment::Field("metatable")));
        }
        for (n, v) in t.array.iter().enumerate() {
            self.value(Some(i), v, Expect::Any, || here().with(Segment::Index("array slot", n as u64 + 1)));
        }
        if !t.hash.is_empty() && !t.hash.len().is_power_of_two() {
            self.sink.error(
                Code::BadTableShape,
                here().with(Segment::Field("hash part")),
                format!("hash part has {} nodes; Luau node counts are 0 or a power of two", t.hash.len()),
            );
        }
        let nodes = t.hash.len() as i64;
        let hint = i64::from(t.insert_hint);
        let hint_ok =
            if nodes > 0 { (0..=nodes).contains(&hint) } else { (-(t.array.len() as i64)..=0).contains(&hint) };
        if !hint_ok {
            self.sink.error(
                Code::BadTableShape,
                here().with(Segment::Field("insert hint")),
                format!(
                    "insert hint {} outside {}",
                    t.insert_hint,
                    if nodes > 0 {
                        format!("0..={nodes} (the hash part)")
                    } else {
                        format!("-{}..=0 (the array boundary)", t.array.len())
                    }
                ),
            );
        }
        if let Some(map) = &t.node_of {
            let n = t.hash.len();
            let mut used = vec![false; n];
            let mut bad = None;
            if map.len() != n {
                bad = Some(format!("node map has {} entries for {n} hash positions", map.len()));
            }
            for (p, (&node, entry)) in map.iter().zip(&t.hash).enumerate() {
                match (node, entry) {
                    (u32::MAX, None) => {}
                    (u32::MAX, Some(_)) => bad = Some(format!("position {p} holds a key but maps to no node")),
                    (_, None) => bad = Some(format!("empty position {p} maps to node {node}")),
                    (node, Some(_)) if node as usize >= n => {
                        bad = Some(format!("position {p} maps to node {node} of {n}"))
                    }
                    (node, Some(_)) if used[node as usize] => bad = Some(format!("node {node} is mapped twice")),
                    (node, Some(_)) => used[node as usize] = true,
                }
            }
            if let Some(why) = bad {
                self.sink.error(Code::BadTableShape, here().with(Segment::Field("node map")), why);
            }
        }
        // Small tables (the common case) compare keys pairwise instead of allocating a set.
        let mut seen_small: Vec<KeyId> = Vec::new();
        let mut seen: HashSet<KeyId> = HashSet::new();
        let small = t.hash.len() <= 16;
        for (n, node) in t.hash.iter().enumerate() {
            let Some((k, v)) = node else { continue };
            let snapshot = self.s;
            let key_path = || here().with(Segment::Key(Self::key_text(snapshot, k)));
            match k {
                Value::Nil => {
                    self.sink.error(Code::BadTableShape, here().with(Segment::Index("hash node", n as u64)), "nil key");
                    continue;
                }
                Value::Number(x) if x.is_nan() => {
                    self.sink.error(Code::BadTableShape, here().with(Segment::Index("hash node", n as u64)), "NaN key");
                    continue;
                }
                _ => {}
            }
            let id = KeyId::of(k, &self.string_canon);
            let fresh = if small {
                let fresh = !seen_small.contains(&id);
                seen_small.push(id);
                fresh
            } else {
                seen.insert(id)
            };
            if !fresh {
                self.sink.error(Code::BadTableShape, key_path(), "the key appears twice in the hash part");
            }
            self.value(Some(i), k, Expect::Any, key_path);
            self.value(Some(i), v, Expect::Any, || key_path().with(Segment::Field("value")));
        }
    }

    fn thread(&mut self, i: u32, t: &Thread) {
        let here = || obj(ObjectKind::Thread, i);
        self.value(Some(i), &t.globals, Expect::Table, || here().with(Segment::Field("globals")));
        if let Some(n) = t.namecall {
            match self.object_kind(n) {
                Some(ObjectKind::String) => self.edges.push((i, n)),
                Some(k) => self.sink.error(
                    Code::WrongType,
                    here().with(Segment::Field("namecall method")),
                    format!("must be a string, but object #{n} is a {}", k.name()),
                ),
                None => self.sink.error(
                    Code::ObjectOutOfRange,
                    here().with(Segment::Field("namecall method")),
                    format!("refers to object #{n}, but the snapshot has {} objects", self.s.objects.len()),
                ),
            }
        }
        match (&t.error, t.status) {
            (Some(e), ThreadStatus::Errored) => {
                self.value(Some(i), e, Expect::Any, || here().with(Segment::Field("error value")))
            }
            (None, ThreadStatus::Errored) => self.sink.error(
                Code::BadThreadShape,
                here().with(Segment::Field("error value")),
                "an errored thread has no error value",
            ),
            (Some(_), status) => self.sink.error(
                Code::BadThreadShape,
                here().with(Segment::Field("error value")),
                format!("a {} thread carries an error value", status.name()),
            ),
            (None, _) => {}
        }
        if t.status == ThreadStatus::Errored && (!t.frames.is_empty() || !t.stack.is_empty()) {
            self.sink.error(
                Code::BadThreadShape,
                here().with(Segment::Field("frames")),
                "an errored thread is kept as its error value only (no stack, no frames)",
            );
        }
        if t.yielded > 0 && (t.status != ThreadStatus::Yielded || t.yielded as usize > t.stack.len()) {
            self.sink.error(
                Code::BadThreadShape,
                here().with(Segment::Field("yielded values")),
                format!(
                    "{} undelivered values on a {} thread with {} stack slots",
                    t.yielded,
                    t.status.name(),
                    t.stack.len()
                ),
            );
        }
        for (n, v) in t.stack.iter().enumerate() {
            self.value(Some(i), v, Expect::StackSlot, || here().with(Segment::Index("stack slot", n as u64)));
            if let Value::IterPosition(p) = v {
                self.iter_position(i, t, n, *p);
            }
        }
        for (n, f) in t.frames.iter().enumerate() {
            if let FrameKind::C { function, .. } = f.kind
                && function as usize >= self.s.permanents.len()
            {
                self.sink.error(
                    Code::PermanentOutOfRange,
                    here().with(Segment::Index("frame", n as u64)).with(Segment::Field("function")),
                    format!("names permanent #{function}, but the snapshot has {} permanents", self.s.permanents.len()),
                );
            }
        }
        for (n, &u) in t.open_upvalues.iter().enumerate() {
            self.upvalue_ref(i, u, || here().with(Segment::Index("open upvalue", n as u64)));
        }
    }

    /// A live generic-for position sits after its table ([generator, table, position]) and names
    /// a slot of the table's array-then-hash range, end included. Out of range, the VM ends the
    /// loop early (it bounds-checks), so this is a correctness rule: no skipped keys. Whether a
    /// register is live is the register-type family's question (not checked yet): a stale
    /// position after a finished loop may follow anything, so only positions after a table are
    /// checked here.
    fn iter_position(&mut self, thread: u32, t: &Thread, slot: usize, p: u32) {
        let path = || obj(ObjectKind::Thread, thread).with(Segment::Index("stack slot", slot as u64));
        if let Some(Value::Object(ti)) = slot.checked_sub(1).and_then(|s| t.stack.get(s))
            && let Some(Object::Table(table)) = self.s.objects.get(*ti as usize)
        {
            // An empty hash part is Luau's single dummy node: the loop still steps over it.
            let range = table.array.len() + table.hash.len().max(1);
            if p as usize > range {
                // A warning: a register that is no longer live may hold a stale position of a
                // table that shrank since (which register is live is the register-type family's
                // question); a live one out of range ends its loop early, it reads nothing.
                self.sink.push(crate::diagnostics::Diagnostic {
                    code: Code::IterPositionOutOfRange,
                    severity: crate::diagnostics::Severity::Warning,
                    path: path(),
                    message: format!("generic-for position {p} is past table#{ti}'s {range} array and hash slots"),
                });
            }
        }
    }

    fn check_scripts(&mut self, catalog: &dyn ScriptCatalog) -> Vec<Option<VerifiedScript>> {
        let s = self.s;
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
            match bytecode::parse(&found.bytecode) {
                Ok(module) => {
                    let yield_maps = module.protos.iter().map(YieldPointMap::of).collect();
                    out.push(Some(VerifiedScript {
                        source: found.source,
                        bytecode: found.bytecode,
                        module,
                        yield_maps,
                    }));
                }
                Err(e) => {
                    self.sink.error(Code::BytecodeRefused, here(), format!("{}: {e}", entry.chunk_name));
                    out.push(None);
                }
            }
        }
        for (i, o) in s.objects.iter().enumerate() {
            let Object::LuaClosure(c) = o else { continue };
            let Some(Some(script)) = out.get(c.script as usize) else {
                continue;
            };
            let here = || obj(ObjectKind::LuaClosure, i as u32);
            match script.module.proto(c.proto) {
                None => self.sink.error(
                    Code::ProtoOutOfRange,
                    here().with(Segment::Field("proto")),
                    format!(
                        "proto {} does not exist; script#{} has {} protos",
                        c.proto,
                        c.script,
                        script.module.protos.len()
                    ),
                ),
                Some(p) if usize::from(p.num_upvalues) != c.upvalues.len() => self.sink.error(
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
        out
    }

    fn check_graph(&mut self) {
        let s = self.s;
        let n = s.objects.len();
        // Edges were collected object by object, so they are grouped by source already; a
        // compressed-sparse-row graph keeps reachability linear and cache-friendly.
        let mut edges = std::mem::take(&mut self.edges);
        edges.sort_unstable();
        edges.dedup();
        let graph: Csr<(), ()> = Csr::from_sorted_edges(&edges).unwrap_or_else(|_| Csr::new());
        if (s.roots.main_thread as usize) < n {
            let mut reached = vec![false; n];
            if (s.roots.main_thread as usize) < graph.node_count() {
                let mut bfs = petgraph::visit::Bfs::new(&graph, s.roots.main_thread);
                while let Some(node) = bfs.next(&graph) {
                    reached[node as usize] = true;
                }
            } else {
                reached[s.roots.main_thread as usize] = true;
            }
            for (i, r) in reached.iter().enumerate() {
                if !r {
                    self.sink.error(
                        Code::OrphanObject,
                        obj(s.objects[i].kind(), i as u32),
                        "not reachable from the main thread (a snapshot carries nothing the task cannot reach)",
                    );
                    if self.sink.is_full() {
                        break;
                    }
                }
            }
        }

        // Open upvalues: listed by exactly the thread they point into, once; one per slot.
        // Which thread lists each open upvalue (u32::MAX: none yet), indexed by object.
        let mut listed = vec![u32::MAX; s.objects.len()];
        for (ti, o) in s.objects.iter().enumerate() {
            let Object::Thread(t) = o else { continue };
            let ti = ti as u32;
            let mut slots: HashSet<u32> = HashSet::new();
            for &u in &t.open_upvalues {
                let here = || obj(ObjectKind::Thread, ti).with(Segment::Field("open upvalues"));
                match s.objects.get(u as usize) {
                    Some(Object::Upvalue(Upvalue::Open { thread, slot })) => {
                        if *thread != ti {
                            self.sink.error(
                                Code::UpvalueOwnership,
                                here(),
                                format!("lists upvalue#{u}, which points into thread#{thread}"),
                            );
                        }
                        if !slots.insert(*slot) {
                            self.sink.error(
                                Code::DuplicateOpenSlot,
                                here(),
                                format!("two open upvalues for stack slot {slot}"),
                            );
                        }
                    }
                    Some(Object::Upvalue(Upvalue::Closed(_))) => {
                        self.sink.error(Code::UpvalueOwnership, here(), format!("lists upvalue#{u}, which is closed"));
                    }
                    _ => continue, // reported by the references family
                }
                let prev = std::mem::replace(&mut listed[u as usize], ti);
                if prev != u32::MAX {
                    self.sink.error(
                        Code::UpvalueOwnership,
                        obj(ObjectKind::Upvalue, u),
                        format!("listed as open by thread#{prev} and again by thread#{ti}"),
                    );
                }
            }
        }
        for (ui, o) in s.objects.iter().enumerate() {
            if let Object::Upvalue(Upvalue::Open { thread, .. }) = o
                && listed[ui] == u32::MAX
                && matches!(s.objects.get(*thread as usize), Some(Object::Thread(_)))
            {
                self.sink.error(
                    Code::UpvalueOwnership,
                    obj(ObjectKind::Upvalue, ui as u32),
                    format!("open upvalue into thread#{thread} is not in that thread's open-upvalue list"),
                );
            }
        }

        self.check_resume_chains();
    }

    /// The thread a suspended thread is resuming: its top frame is `coroutine.resume` (child in
    /// its first argument) or a wrapped coroutine (child in the closure's first upvalue).
    fn resumed_child(&self, t: &Thread) -> Option<u32> {
        let top = t.frames.last()?;
        let FrameKind::C { function, .. } = top.kind else {
            return None;
        };
        let name = self.s.permanents.get(function as usize)?;
        let candidate = if name == COROUTINE_RESUME {
            t.stack.get(top.base as usize).copied()
        } else if name == WRAPPED_COROUTINE {
            match t.stack.get(top.func as usize) {
                Some(Value::Object(c)) => match self.s.objects.get(*c as usize) {
                    Some(Object::CClosure(cc)) => cc.upvalues.first().copied(),
                    _ => None,
                },
                _ => None,
            }
        } else {
            None
        };
        match candidate {
            Some(Value::Object(i)) if matches!(self.s.objects.get(i as usize), Some(Object::Thread(_))) => Some(i),
            _ => None,
        }
    }

    fn check_resume_chains(&mut self) {
        let s = self.s;
        let mut chain: DiGraph<u32, ()> = DiGraph::new();
        let mut node_of: HashMap<u32, NodeIndex> = HashMap::new();
        let mut parent_of: HashMap<u32, u32> = HashMap::new();
        let mut node = |g: &mut DiGraph<u32, ()>, i: u32| *node_of.entry(i).or_insert_with(|| g.add_node(i));
        for (pi, o) in s.objects.iter().enumerate() {
            let Object::Thread(t) = o else { continue };
            let pi = pi as u32;
            let Some(child) = self.resumed_child(t) else { continue };
            let (a, b) = (node(&mut chain, pi), node(&mut chain, child));
            chain.add_edge(a, b, ());
            if let Some(other) = parent_of.insert(child, pi) {
                self.sink.error(
                    Code::ResumedTwice,
                    obj(ObjectKind::Thread, child),
                    format!("resumed by thread#{other} and by thread#{pi} at once"),
                );
            }
            if t.status != ThreadStatus::Preempted {
                self.sink.error(
                    Code::ResumeStatus,
                    obj(ObjectKind::Thread, pi),
                    format!("is resuming thread#{child} but is {}, not pre-empted", t.status.name()),
                );
            }
            if let Some(Object::Thread(c)) = s.objects.get(child as usize)
                && c.status != ThreadStatus::Preempted
            {
                self.sink.error(
                    Code::ResumeStatus,
                    obj(ObjectKind::Thread, child),
                    format!("thread#{pi} is pre-empted while resuming it, but it is {}", c.status.name()),
                );
            }
        }
        if petgraph::algo::is_cyclic_directed(&chain) {
            let scc = petgraph::algo::tarjan_scc(&chain);
            for component in scc.into_iter().filter(|c| c.len() > 1 || c.iter().any(|&n| chain.contains_edge(n, n))) {
                let members: Vec<String> = component.iter().map(|&n| format!("thread#{}", chain[n])).collect();
                self.sink.error(
                    Code::ResumeCycle,
                    obj(ObjectKind::Thread, chain[component[0]]),
                    format!("resume chain forms a cycle: {}", members.join(" -> ")),
                );
            }
        }
        // A pre-empted coroutine is suspended only as part of a chain from the main thread.
        for (ti, o) in s.objects.iter().enumerate() {
            let ti = ti as u32;
            let Object::Thread(t) = o else { continue };
            if ti == s.roots.main_thread {
                if let Some(p) = parent_of.get(&ti) {
                    self.sink.error(
                        Code::ResumeStatus,
                        obj(ObjectKind::Thread, ti),
                        format!("the main thread is resumed by thread#{p}"),
                    );
                }
            } else if t.status == ThreadStatus::Preempted && !parent_of.contains_key(&ti) {
                self.sink.error(
                    Code::ResumeStatus,
                    obj(ObjectKind::Thread, ti),
                    "a pre-empted coroutine that no pre-empted thread is resuming",
                );
            }
        }
    }

    fn check_sandbox(&mut self) {
        let s = self.s;
        if let Some(allow) = &self.limits.permanents {
            for (i, name) in s.permanents.iter().enumerate() {
                if !allow.contains_key(name) {
                    self.sink.error(
                        Code::PermanentNotAllowed,
                        ObjectPath::new().with(Segment::Permanent(i as u32)),
                        format!("`{name}` is not a permanent this host allows"),
                    );
                }
            }
        }
        for (i, o) in s.objects.iter().enumerate() {
            if let Object::Userdata(Userdata { kind: UserdataKind::Codec { codec, tag, .. }, .. }) = o
                && !self.limits.codecs.contains(codec)
            {
                self.sink.error(
                    Code::UnknownCodec,
                    obj(ObjectKind::Userdata, i as u32),
                    format!("userdata with tag {tag} uses codec `{codec}`, which this host has not registered"),
                );
            }
        }
    }
}

/// A key's identity for duplicate detection: by bits for numbers and vectors (with -0 and 0 the
/// same key, as in Luau), by index for references.
#[derive(Hash, PartialEq, Eq)]
enum KeyId {
    Boolean(bool),
    Number(u64),
    Vector([u32; 3]),
    Object(u32),
    Permanent(u32),
    Other(u64),
}

impl KeyId {
    fn of(v: &Value, string_canon: &[u32]) -> KeyId {
        match *v {
            Value::Boolean(b) => KeyId::Boolean(b),
            Value::Number(n) => KeyId::Number(if n == 0.0 { 0 } else { n.to_bits() }),
            Value::Vector(v) => KeyId::Vector(v.map(|c| if c == 0.0 { 0 } else { c.to_bits() })),
            Value::Object(i) => KeyId::Object(string_canon.get(i as usize).copied().unwrap_or(i)),
            Value::Permanent(i) => KeyId::Permanent(i),
            Value::IterPosition(p) => KeyId::Other(u64::from(p)),
            Value::LightUserdata { bits, .. } => KeyId::Other(bits),
            Value::Nil => KeyId::Other(u64::MAX),
        }
    }
}
