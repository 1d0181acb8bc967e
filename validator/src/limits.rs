//! The intake policy: size limits checked before anything is allocated, and the sandbox's
//! allowlists. Accounting (memory categories, budgets) is the loader's, never the snapshot's.

use std::collections::{BTreeMap, BTreeSet};

/// What a permanent is, so that reference checks can tell whether a slot may hold it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PermanentKind {
    Table,
    Function,
    Userdata,
    Thread,
    /// A C function referred to by its identity (the function behind run-time C closures such
    /// as coroutine.wrap's results); it names [`crate::snapshot::CClosure::function`].
    CFunction,
    Other,
}

impl PermanentKind {
    pub fn name(self) -> &'static str {
        match self {
            PermanentKind::Table => "table",
            PermanentKind::Function => "function",
            PermanentKind::Userdata => "userdata",
            PermanentKind::Thread => "thread",
            PermanentKind::CFunction => "C function",
            PermanentKind::Other => "value",
        }
    }
}

/// What the restoring runtime is. A snapshot taken under another feature-flag set is refused
/// by the validator (S007): under other flags the same values and code mean other things. The
/// Luau release is information: what decides whether a snapshot can resume under this release
/// is that every proto it runs has the same yield-point signature here (Y003), and its
/// permanents are checked by name and kind against this runtime's allowlist (X001, R003).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeIdentity {
    /// This runtime's Luau release (for messages).
    pub luau_version: String,
    /// The feature flags this runtime runs with on, sorted (`amber_luau::FeatureFlags::enabled`).
    pub enabled_flags: Vec<String>,
}

/// The sizes a runtime gives its objects, in bytes (`amber_luau::memory_model` reads them off the
/// VM it was built with). With them, the validator estimates what a snapshot will take once
/// restored ([`estimate_memory`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ObjectSizes {
    /// A string: this + its length + 1.
    pub string: usize,
    /// A table: this + array slots * value + nodes * node.
    pub table: usize,
    pub value: usize,
    pub node: usize,
    /// A Luau closure: this + upvalues * value.
    pub lua_closure: usize,
    /// A C closure: this + upvalues * value.
    pub c_closure: usize,
    pub upvalue: usize,
    /// A thread: this + (stack slots + extra) * value + (frames + 1) * frame.
    pub thread: usize,
    pub frame: usize,
    pub extra_stack: usize,
    /// Userdata: this + payload.
    pub userdata: usize,
    /// A buffer: this + its length (at least 8).
    pub buffer: usize,
}

/// Bytes a snapshot's objects take once restored, by the runtime's sizes: a lower bound up to
/// allocator rounding (small blocks come from size classes a few bytes larger). The scripts'
/// code is the runtime's, charged to its base image, and is not counted.
pub fn estimate_memory(s: &crate::snapshot::SnapshotView, m: &ObjectSizes) -> usize {
    s.objects().fold(0usize, |total, (_, o)| total.saturating_add(object_memory(&o, m)))
}

/// [`estimate_memory`] of one object.
pub(crate) fn object_memory(o: &crate::snapshot::ObjectRef<'_>, m: &ObjectSizes) -> usize {
    use crate::snapshot::{ObjectRef, UserdataKind};
    let values = |n: usize| n.saturating_mul(m.value);
    match o {
        ObjectRef::String(b) => m.string.saturating_add(b.len()).saturating_add(1),
        ObjectRef::Table(t) => {
            let nodes = t.hash_len().saturating_mul(m.node);
            // A table restored with an explicit iteration order carries 3 ints per node.
            let order = if t.has_node_map() { t.hash_len().saturating_mul(12) } else { 0 };
            m.table.saturating_add(values(t.array_len())).saturating_add(nodes).saturating_add(order)
        }
        ObjectRef::LuaClosure(c) => m.lua_closure.saturating_add(values(c.upvalues.len())),
        ObjectRef::CClosure(c) => m.c_closure.saturating_add(values(c.upvalues.len())),
        ObjectRef::Upvalue(_) => m.upvalue,
        ObjectRef::Thread(t) => m
            .thread
            .saturating_add(values(t.stack.len().saturating_add(m.extra_stack)))
            .saturating_add(t.frames.len().saturating_add(1).saturating_mul(m.frame)),
        ObjectRef::Userdata(u) => match &u.kind {
            UserdataKind::Codec { payload, .. } => m.userdata.saturating_add(payload.len()),
            UserdataKind::Proxy => m.userdata,
        },
        ObjectRef::Buffer(b) => m.buffer.saturating_add(b.len().max(8)),
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Largest snapshot accepted, in bytes.
    pub max_input_bytes: usize,
    pub max_objects: usize,
    /// Longest string object, embedded source, name or userdata payload.
    pub max_string_bytes: usize,
    /// Most entries (array slots plus hash nodes) of one table.
    pub max_table_entries: usize,
    pub max_buffer_bytes: usize,
    /// Most stack slots of one thread.
    pub max_stack_slots: usize,
    /// Most call frames of one thread.
    pub max_frames: usize,
    pub max_scripts: usize,
    pub max_permanents: usize,
    /// Most upvalues of one closure (Luau allows 255) and most recorded global names.
    pub max_upvalues: usize,
    pub max_global_names: usize,
    /// Findings recorded per report before the rest are only counted.
    pub max_diagnostics: usize,
    /// Permanents the host allows, by name. `None` accepts any name (kinds then go unchecked).
    pub permanents: Option<BTreeMap<String, PermanentKind>>,
    /// Userdata codecs the host registered.
    pub codecs: BTreeSet<String>,
    /// The runtime the snapshot must have been taken under (`None`: not checked here; restore
    /// still refuses a mismatch).
    pub runtime: Option<RuntimeIdentity>,
    /// Bytes the restored state may take, estimated with `object_sizes` (L009); both are
    /// needed for the check. Restore applies the same limit to the task it builds.
    pub max_memory: Option<usize>,
    pub object_sizes: Option<ObjectSizes>,
}

impl Default for Limits {
    /// Generous limits for one task; hosts tighten them. Strings and buffers stay at or below
    /// the VM's own 1 GiB cap.
    fn default() -> Self {
        Limits {
            max_input_bytes: 256 << 20,
            max_objects: 4_000_000,
            max_string_bytes: 64 << 20,
            max_table_entries: 16_000_000,
            max_buffer_bytes: 64 << 20,
            max_stack_slots: 1_000_000,
            max_frames: 20_000,
            max_scripts: 1024,
            max_permanents: 65_536,
            max_upvalues: 255,
            max_global_names: 100_000,
            max_diagnostics: 100,
            permanents: None,
            codecs: BTreeSet::new(),
            runtime: None,
            max_memory: None,
            object_sizes: None,
        }
    }
}
