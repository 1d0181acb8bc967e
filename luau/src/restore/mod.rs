//! Restore: a verified snapshot into live VM objects, as a new task.
//!
//! Only a [`Verified<Snapshot>`] is accepted. The shim's builders re-check every index they
//! write through, so a validator bug ends in an error here; on any error the partly built
//! objects are left unreachable for the collector and the VM stays usable.

use crate::ffi::{self, AmberRestoreValue};
use crate::script::Script;
use crate::vm::{ProtoIdentity, SpawnOptions, Task, Vm};
use crate::{FeatureFlags, capture::LUAU_VERSION};
use amber_validator::RuntimeIdentity;
use amber_validator::snapshot::*;
use amber_validator::validate::{CallFrameKind, ThreadLayout, Verified};
use session::Session;
use std::ffi::c_int;
use std::rc::Rc;
use thiserror::Error;

mod session;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RestoreError {
    #[error("snapshot was taken under another Luau feature-flag set (enabled there: {0})")]
    FeatureFlags(String),
    #[error("permanent `{0}` does not exist in this VM's base image")]
    UnknownPermanent(String),
    #[error("globals: {0}")]
    Globals(String),
    #[error("the snapshot needs about {needed} bytes; the memory limit is {limit} (with {used} already in use)")]
    MemoryLimit { needed: usize, limit: usize, used: usize },
    #[error("script {chunk}: {message}")]
    Script { chunk: String, message: String },
    #[error("userdata #{object}: {message}")]
    Codec { object: u32, message: String },
    #[error("{path}: {message}")]
    Build { path: String, message: String },
}

/// Options of a restore: accounting is the restoring host's, never the snapshot's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestoreOptions {
    /// Memory category the restored task's objects and later allocations are charged to.
    pub memory_category: u8,
    /// Bytes that category may hold: a snapshot whose objects need more (estimated from the
    /// verified model with the VM's own sizes, [`crate::estimate_memory`]) is refused before
    /// anything is built, building stops at the limit, and the restored task runs under it.
    pub memory_limit: Option<usize>,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        let spawn = SpawnOptions::default();
        RestoreOptions { memory_category: spawn.memory_category, memory_limit: spawn.memory_limit }
    }
}

/// Builds a verified snapshot's objects through a [`Session`], in named phases: every object
/// made first (so that references between them resolve), then filled, then the objects that need
/// others finished (upvalues need their values or threads, Luau closures their upvalues), then
/// read-only tables frozen.
struct Builder<'a, 'v> {
    vm: &'a Vm,
    verified: &'a Verified<Snapshot>,
    snapshot: &'a SnapshotView<'static>,
    /// Each thread (by object index, ascending), decoded with its derived layout when it is
    /// made, and kept until it is filled.
    threads: Vec<(u32, Option<Box<Thread>>, ThreadLayout)>,
    /// Snapshot permanent index -> registry index.
    permanents: Vec<usize>,
    /// Script index -> proto handles by bytecode id.
    protos: Vec<Vec<usize>>,
    session: Session<'v>,
    /// Values converted for one array part or stack, handed to the shim in one call (reused).
    scratch: Vec<AmberRestoreValue>,
    /// Read-only tables, frozen last.
    readonly: Vec<c_int>,
}

/// The error for a refusal of the shim at `path`, which is only formatted if there is one: the
/// builders run once per stack slot and table entry, millions of times for a large state.
fn refused(path: impl FnOnce() -> String) -> impl FnOnce(String) -> RestoreError {
    move |message| RestoreError::Build { path: path(), message }
}

impl<'a, 'v> Builder<'a, 'v> {
    /// `v` as the shim takes it. A value the shim must not write (a raw light userdata, a
    /// permanent this image lacks: both refused by the validator) gets a kind the shim refuses.
    #[inline]
    fn tv(&self, v: &Value) -> AmberRestoreValue {
        let value = |kind, a, b| AmberRestoreValue { kind, a, b };
        match *v {
            Value::Nil => value(ffi::AMBER_RV_NIL, 0, 0),
            Value::Boolean(b) => value(ffi::AMBER_RV_BOOLEAN, u32::from(b), 0),
            Value::Number(n) => value(ffi::AMBER_RV_NUMBER, 0, n.to_bits()),
            Value::Vector([x, y, z]) => {
                value(ffi::AMBER_RV_VECTOR, x.to_bits(), u64::from(y.to_bits()) | u64::from(z.to_bits()) << 32)
            }
            Value::IterPosition(p) => value(ffi::AMBER_RV_ITERATOR, 0, u64::from(p)),
            Value::Object(i) => value(ffi::AMBER_RV_OBJECT, i, 0),
            Value::Permanent(i) => match self.permanents.get(i as usize).and_then(|&r| u32::try_from(r).ok()) {
                Some(r) => value(ffi::AMBER_RV_PERMANENT, r, 0),
                None => value(ffi::AMBER_RV_REFUSED, 0, 0),
            },
            Value::LightUserdata { .. } => value(ffi::AMBER_RV_REFUSED, 0, 0),
        }
    }

    /// `values` converted for one shim call, in the reused buffer (give it back to `scratch`).
    fn converted(&mut self, values: impl IntoIterator<Item = Value>) -> Vec<AmberRestoreValue> {
        let mut out = std::mem::take(&mut self.scratch);
        out.clear();
        out.extend(values.into_iter().map(|v| self.tv(&v)));
        out
    }

    fn opt_tv(&self, v: &Option<Value>) -> AmberRestoreValue {
        match v {
            Some(v) => self.tv(v),
            None => AmberRestoreValue::default(),
        }
    }

    /// Runs every phase and ends the session: the task's thread anchor and its explicit-order
    /// count.
    fn build(mut self) -> Result<(c_int, usize), RestoreError> {
        self.make_objects()?;
        self.fill_objects()?;
        self.make_upvalues()?;
        self.fill_lua_closures()?;
        self.freeze_tables()?;
        let main = self.snapshot.roots.main_thread as c_int;
        self.session.finish(main).map_err(refused(|| "roots > main thread".into()))
    }

    /// Phase 1: every object except upvalues, empty.
    fn make_objects(&mut self) -> Result<(), RestoreError> {
        let s = self.snapshot;
        let mut threads = self.verified.threads();
        for (i, kind) in s.kinds() {
            let i = i as usize;
            let idx = i as c_int;
            let path = || format!("{}#{i}", kind.name());
            if kind == ObjectKind::Upvalue {
                continue;
            }
            if kind == ObjectKind::Thread {
                let (t, layout) = match threads.next() {
                    Some((at, t, Some(layout))) if at as usize == i => (t, layout),
                    _ => {
                        return Err(RestoreError::Build {
                            path: path(),
                            message: "the verified snapshot has no layout for this thread".into(),
                        });
                    }
                };
                let frames = layout.frames.len();
                self.threads.push((i as u32, Some(t), layout));
                let slots = self.stack_slots(i)?;
                self.session.thread(idx, slots as c_int, frames as c_int).map_err(refused(path))?;
                continue;
            }
            if kind == ObjectKind::LuaClosure {
                // Its proto (which gives the upvalue count); the rest is read when it is filled.
                let Some(Function::Lua { script, proto }) = s.function(i as u32) else {
                    return Err(RestoreError::Build { path: path(), message: "the closure does not decode".into() });
                };
                let proto = self
                    .protos
                    .get(script as usize)
                    .and_then(|p| p.get(proto as usize))
                    .copied()
                    .ok_or_else(|| RestoreError::Build { path: path(), message: "proto out of range".into() })?;
                self.session.lua_closure(idx, proto).map_err(refused(path))?;
                continue;
            }
            let o = s
                .object(i as u32)
                .ok_or_else(|| RestoreError::Build { path: path(), message: "the object does not decode".into() })?;
            match o {
                ObjectRef::String(b) => self.session.string(idx, b),
                ObjectRef::Buffer(b) => self.session.buffer(idx, b),
                ObjectRef::Table(t) => self.session.table(idx, t.array_len() as c_int, t.hash_len() as c_int),
                ObjectRef::CClosure(c) => {
                    let r = *self.permanents.get(c.function as usize).ok_or_else(|| RestoreError::Build {
                        path: path(),
                        message: "C function out of range".into(),
                    })?;
                    self.session.c_closure(idx, r as c_int, c.upvalues.len() as c_int)
                }
                ObjectRef::Userdata(u) => {
                    let (tag, data) = self.userdata_payload(i, &u)?;
                    self.session.userdata(idx, tag, &data)
                }
                ObjectRef::Upvalue(_) | ObjectRef::Thread(_) | ObjectRef::LuaClosure(_) => Ok(()),
            }
            .map_err(refused(path))?;
        }
        Ok(())
    }

    /// A userdata's tag and payload: a proxy's nothing, or what its host codec decodes.
    fn userdata_payload(&self, i: usize, u: &Userdata) -> Result<(c_int, Vec<u8>), RestoreError> {
        match &u.kind {
            UserdataKind::Proxy => Ok((ffi::UTAG_PROXY, Vec::new())),
            UserdataKind::Codec { tag, codec, payload } => {
                let codecs = self.vm.inner().codecs.borrow();
                let (name, c) = codecs.get(tag).ok_or_else(|| RestoreError::Codec {
                    object: i as u32,
                    message: format!("no codec registered for tag {tag}"),
                })?;
                if name != codec {
                    return Err(RestoreError::Codec {
                        object: i as u32,
                        message: format!("tag {tag} has codec `{name}` here, the snapshot used `{codec}`"),
                    });
                }
                let data = c
                    .decode(payload)
                    .map_err(|m| RestoreError::Codec { object: i as u32, message: format!("codec `{name}`: {m}") })?;
                Ok((c_int::from(*tag), data))
            }
        }
    }

    /// Phase 2: tables' entries, threads' stacks and frames, userdata metatables, C closures'
    /// upvalues.
    fn fill_objects(&mut self) -> Result<(), RestoreError> {
        let s = self.snapshot;
        for (i, kind) in s.kinds() {
            let i = i as usize;
            let idx = i as c_int;
            let path = || format!("{}#{i}", kind.name());
            if kind == ObjectKind::Thread {
                self.fill_thread(i)?;
                continue;
            }
            if !matches!(kind, ObjectKind::Table | ObjectKind::Userdata | ObjectKind::CClosure) {
                continue;
            }
            let o = s
                .object(i as u32)
                .ok_or_else(|| RestoreError::Build { path: path(), message: "the object does not decode".into() })?;
            match o {
                ObjectRef::Table(t) => self.fill_table(i, &t)?,
                ObjectRef::Userdata(u) => {
                    let meta = self.opt_tv(&u.metatable);
                    self.session.userdata_metatable(idx, &meta).map_err(refused(path))?;
                }
                ObjectRef::CClosure(c) => {
                    let env = self.tv(&c.env.value());
                    let ups = self.converted(c.upvalues.iter().copied());
                    let filled = self.session.c_closure_fill(idx, &env, &ups);
                    self.scratch = ups;
                    filled.map_err(refused(path))?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn fill_table(&mut self, i: usize, t: &TableRef<'_>) -> Result<(), RestoreError> {
        let idx = i as c_int;
        let values = self.converted(t.array());
        let filled = self.session.table_array(idx, &values);
        self.scratch = values;
        filled.map_err(refused(|| format!("table#{i} > array part")))?;
        let mut node_map = t.node_of();
        for (k, entry) in t.hash().enumerate() {
            let mapped = node_map.as_mut().and_then(Iterator::next);
            let Some((key, val)) = entry else { continue };
            let (key, val) = (self.tv(&key), self.tv(&val));
            let node = mapped.map_or(k as c_int, |n| n as c_int);
            self.session
                .table_node(idx, k as c_int, node, &key, &val)
                .map_err(refused(|| format!("table#{i} > hash node {k}")))?;
        }
        let meta = self.opt_tv(&t.metatable);
        if t.readonly {
            self.readonly.push(idx);
        }
        self.session
            .table_finish(idx, t.insert_hint, &meta, t.readonly, t.safeenv)
            .map_err(refused(|| format!("table#{i}")))
    }

    /// Phase 3: upvalues, closed ones with their values, open ones on their threads' finished
    /// stacks.
    fn make_upvalues(&mut self) -> Result<(), RestoreError> {
        let s = self.snapshot;
        for i in s.indices_of(ObjectKind::Upvalue) {
            let Some(u) = s.upvalue(i) else {
                return Err(RestoreError::Build { path: format!("upvalue#{i}"), message: "does not decode".into() });
            };
            let idx = i as c_int;
            match u {
                Upvalue::Closed(v) => {
                    let v = self.tv(&v);
                    self.session.upvalue_closed(idx, &v)
                }
                Upvalue::Open { thread, slot } => self.session.upvalue_open(idx, thread as c_int, slot as c_int),
            }
            .map_err(refused(|| format!("upvalue#{i}")))?;
        }
        Ok(())
    }

    /// Phase 4: Luau closures, whose upvalue objects exist now.
    fn fill_lua_closures(&mut self) -> Result<(), RestoreError> {
        let s = self.snapshot;
        let mut ups: Vec<c_int> = Vec::new();
        for i in s.indices_of(ObjectKind::LuaClosure) {
            let Some(c) = s.lua_closure(i) else {
                return Err(RestoreError::Build { path: format!("closure#{i}"), message: "does not decode".into() });
            };
            let env = self.tv(&c.env.value());
            ups.clear();
            ups.extend(c.upvalues.iter().map(|&u| u as c_int));
            self.session.lua_closure_fill(i as c_int, &env, &ups).map_err(refused(|| format!("closure#{i}")))?;
        }
        Ok(())
    }

    /// Phase 5: read-only tables frozen, now that nothing writes into them.
    fn freeze_tables(&mut self) -> Result<(), RestoreError> {
        for &i in &self.readonly {
            self.session.table_freeze(i).map_err(refused(|| format!("table#{i}")))?;
        }
        Ok(())
    }

    fn at(&self, i: usize) -> Result<usize, RestoreError> {
        self.threads.binary_search_by_key(&(i as u32), |(t, _, _)| *t).map_err(|_| RestoreError::Build {
            path: format!("thread#{i}"),
            message: "the verified snapshot has no layout for this thread".into(),
        })
    }

    fn layout(&self, i: usize) -> Result<&ThreadLayout, RestoreError> {
        Ok(&self.threads[self.at(i)?].2)
    }

    /// Stack slots a restored thread needs: every frame's top and its own top.
    fn stack_slots(&self, i: usize) -> Result<u32, RestoreError> {
        let l = self.layout(i)?;
        Ok(l.frames.iter().map(|f| f.top).chain([l.top, 2]).max().unwrap_or(2))
    }

    fn fill_thread(&mut self, i: usize) -> Result<(), RestoreError> {
        let idx = i as c_int;
        let at = self.at(i)?;
        // The thread is read once: made in the first phase, dropped once filled.
        let t = self.threads[at]
            .1
            .take()
            .ok_or_else(|| RestoreError::Build { path: format!("thread#{i}"), message: "filled twice".into() })?;
        // Nothing reads the layout once its thread is filled.
        let layout = std::mem::replace(&mut self.threads[at].2, ThreadLayout { frames: Vec::new(), base: 0, top: 0 });
        // An errored thread is its error value, where coroutine.close finds it (stack top).
        let errored;
        let stack: &[Value] = if t.status == ThreadStatus::Errored {
            errored = [Value::Nil, t.error.unwrap_or(Value::Nil)];
            &errored
        } else {
            &t.stack
        };
        let values = self.converted(stack.iter().copied());
        let filled = self.session.thread_stack(idx, &values);
        self.scratch = values;
        filled.map_err(refused(|| format!("thread#{i} > stack")))?;
        let frames: Vec<ffi::AmberFrameInfo> = layout
            .frames
            .iter()
            .map(|f| {
                let (is_lua, pc, errfunc) = match f.kind {
                    CallFrameKind::Lua { saved_pc, .. } => (1, saved_pc as c_int, 0),
                    CallFrameKind::C { errfunc, .. } => (0, 0, errfunc as c_int),
                };
                ffi::AmberFrameInfo {
                    func: f.func as c_int,
                    base: f.base as c_int,
                    top: f.top as c_int,
                    nresults: f.nresults,
                    flags: u32::from(f.flags),
                    is_lua,
                    pc,
                    errfunc,
                    closure: 0,
                }
            })
            .collect();
        self.session.thread_frames(idx, &frames).map_err(refused(|| format!("thread#{i} > frames")))?;
        let status = match t.status {
            ThreadStatus::NotStarted | ThreadStatus::Dead => ffi::LUA_OK,
            ThreadStatus::Yielded => ffi::LUA_YIELD,
            ThreadStatus::Preempted => ffi::LUA_BREAK,
            ThreadStatus::Errored => ffi::LUA_ERRRUN,
        };
        let info = ffi::AmberThreadInfo {
            status,
            top: layout.top as c_int,
            base: layout.base as c_int,
            frames: layout.frames.len() as c_int,
            globals: 0,
            namecall: 0,
            stack_size: 0,
        };
        let globals = self.tv(&t.globals);
        let namecall = t.namecall.map_or(-1, |n| n as c_int);
        self.session.thread_finish(idx, &info, &globals, namecall).map_err(refused(|| format!("thread#{i}")))
    }
}

/// This runtime as a validator's [`Limits::runtime`](amber_validator::Limits) names it: its Luau
/// release (for messages) and the pinned feature-flag set. Restore refuses another flag set, and
/// a host that sets this in its limits has the validator refuse it first (S007).
pub fn runtime_identity() -> RuntimeIdentity {
    RuntimeIdentity { luau_version: LUAU_VERSION.into(), enabled_flags: FeatureFlags::pinned().enabled_sorted() }
}

/// Restores a verified snapshot as a new task of `vm`. Restoring the same snapshot N times gives
/// N independent tasks.
pub fn restore(vm: &Vm, verified: &Verified<Snapshot>, options: RestoreOptions) -> Result<Task, RestoreError> {
    let s = verified.view();
    // The Luau release and the base image that took the snapshot are information: the
    // validator compared every used proto's signature with this release's compiled code, and
    // permanents are resolved by name below. The flag set must be this one.
    if s.header.enabled_flags != FeatureFlags::pinned().enabled_sorted() {
        let enabled = if s.header.enabled_flags.is_empty() { "none".into() } else { s.header.enabled_flags.join(", ") };
        return Err(RestoreError::FeatureFlags(enabled));
    }
    // Accounting is the restoring host's: the snapshot must fit the task's limit before a single
    // object is built.
    if let Some(limit) = options.memory_limit {
        let needed = crate::estimate_memory(s);
        let used = vm.memory_used(options.memory_category);
        if needed.saturating_add(used) > limit {
            return Err(RestoreError::MemoryLimit { needed, limit, used });
        }
    }
    let registry = &vm.inner().registry;
    let permanents = s
        .permanents
        .iter()
        .map(|name| {
            registry
                .iter()
                .position(|r| r.kind != b'A' && &r.name == name)
                .ok_or_else(|| RestoreError::UnknownPermanent(name.clone()))
        })
        .collect::<Result<Vec<_>, _>>()?;

    // A task whose snapshot saw other base globals than this image has (other names, or the
    // same names laid out otherwise) sees them through a view (globals.rs): its scripts load
    // against the view, and the base-globals permanent stands for it.
    let view = vm.globals_view(&s.roots.globals_layout).map_err(|e| RestoreError::Globals(e.to_string()))?;
    let globals = match view {
        Some(v) => {
            let index = registry.iter().position(|r| r.kind != b'A' && r.name == "@globals");
            let anchor = vm.inner().views.borrow().views.get(v).map(|g| g.anchor);
            match (index, anchor) {
                (Some(i), Some(a)) => Some((i, a)),
                _ => return Err(RestoreError::Globals("this base image has no globals table to view".into())),
            }
        }
        None => None,
    };
    let mut scripts = Vec::with_capacity(s.scripts.len());
    let mut protos = Vec::with_capacity(s.scripts.len());
    for (entry, v) in s.scripts.iter().zip(verified.scripts()) {
        let script = Script::from_verified(&entry.chunk_name, v, s.header.compiler);
        let handles = vm
            .protos_in(&script, view)
            .map_err(|e| RestoreError::Script { chunk: entry.chunk_name.clone(), message: e.to_string() })?;
        protos.push(handles);
        scripts.push(script);
    }
    let main_script = scripts.first().cloned().ok_or_else(|| RestoreError::Script {
        chunk: "-".into(),
        message: "a snapshot without scripts has no code to resume".into(),
    })?;

    let objects = c_int::try_from(s.object_count())
        .map_err(|_| RestoreError::Build { path: "snapshot".into(), message: "too many objects".into() })?;
    let session = Session::begin(vm, objects, options.memory_category, options.memory_limit.unwrap_or(0), globals)
        .map_err(refused(|| "snapshot".into()))?;
    // On an error the session is dropped unfinished, which aborts the restore.
    let (thread_ref, orders) = Builder {
        vm,
        verified,
        snapshot: s,
        threads: Vec::new(),
        permanents,
        protos,
        session,
        scratch: Vec::new(),
        readonly: Vec::new(),
    }
    .build()?;
    let mut task = Task::new(Rc::clone(vm.inner()), thread_ref, main_script, ProtoIdentity::NONE, s.roots.random_state);
    task.set_explicit_orders(orders);
    task.set_globals_view(view);
    task.set_memory(options.memory_category, options.memory_limit);
    Ok(task)
}
