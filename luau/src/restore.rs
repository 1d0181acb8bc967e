//! Restore: a verified snapshot into live VM objects, as a new task.
//!
//! Only a [`Verified<Snapshot>`] is accepted. The shim's builders re-check every index they
//! write through, so a validator bug ends in an error here; on any error the partly built
//! objects are left unreachable for the collector and the VM stays usable.

use crate::ffi::{self, AmberTV};
use crate::script::Script;
use crate::vm::{ProtoIdentity, SpawnOptions, Task, Vm, c_buffer_text};
use crate::{FeatureFlags, capture::LUAU_VERSION};
use amber_validator::RuntimeIdentity;
use amber_validator::snapshot::*;
use amber_validator::validate::{CallFrameKind, ThreadLayout, Verified};
use std::ffi::{c_char, c_int};
use std::rc::Rc;
use thiserror::Error;

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

struct Builder<'a> {
    vm: &'a Vm,
    verified: &'a Verified<Snapshot>,
    snapshot: &'a Snapshot,
    /// Snapshot permanent index -> registry index.
    permanents: Vec<usize>,
    /// Script index -> proto handles by bytecode id.
    protos: Vec<Vec<usize>>,
    /// (registry index of the base globals, anchor of the view standing for them).
    globals: Option<(usize, c_int)>,
    err: Vec<c_char>,
}

impl<'a> Builder<'a> {
    fn ptr(&self) -> *mut ffi::AmberVm {
        self.vm.inner().ptr()
    }

    fn check(&mut self, rc: c_int, path: impl FnOnce() -> String) -> Result<(), RestoreError> {
        if rc == 0 { Ok(()) } else { Err(RestoreError::Build { path: path(), message: c_buffer_text(&self.err) }) }
    }

    fn tv(&self, v: &Value) -> Result<AmberTV, RestoreError> {
        let mut t = AmberTV::default();
        match *v {
            Value::Nil => t.type_ = ffi::LUA_TNIL,
            Value::Boolean(b) => {
                t.type_ = ffi::LUA_TBOOLEAN;
                t.boolean = c_int::from(b);
            }
            Value::Number(n) => {
                t.type_ = ffi::LUA_TNUMBER;
                t.number = n;
            }
            Value::Vector(v) => {
                t.type_ = ffi::LUA_TVECTOR;
                t.vector = v;
            }
            Value::IterPosition(p) => {
                t.type_ = ffi::LUA_TLIGHTUSERDATA;
                t.tag = ffi::LU_TAG_ITERATOR;
                t.ref_ = p as usize;
            }
            Value::Object(i) => {
                t.ref_kind = ffi::AMBER_REF_OBJECT;
                t.ref_ = i as usize;
            }
            Value::Permanent(i) => {
                t.ref_kind = ffi::AMBER_REF_PERMANENT;
                t.ref_ = *self.permanents.get(i as usize).ok_or_else(|| RestoreError::Build {
                    path: "value".into(),
                    message: format!("permanent #{i} out of range"),
                })?;
            }
            Value::LightUserdata { .. } => {
                return Err(RestoreError::Build { path: "value".into(), message: "raw light userdata".into() });
            }
        }
        Ok(t)
    }

    fn opt_tv(&self, v: &Option<Value>) -> Result<AmberTV, RestoreError> {
        match v {
            Some(v) => self.tv(v),
            None => Ok(AmberTV::default()),
        }
    }

    fn build(&mut self, memcat: u8, memory_limit: Option<usize>) -> Result<c_int, RestoreError> {
        let s = self.snapshot;
        let n = c_int::try_from(s.objects.len())
            .map_err(|_| RestoreError::Build { path: "snapshot".into(), message: "too many objects".into() })?;
        let cap = self.err.len();
        let (globals_index, view_anchor) = self.globals.map_or((-1, 0), |(i, a)| (i as c_int, a));
        // SAFETY: the VM is live; `err` has `cap` bytes; the anchor is a view this VM made.
        let rc = unsafe {
            ffi::amber_restore_begin(
                self.ptr(),
                n,
                c_int::from(memcat),
                memory_limit.unwrap_or(0),
                globals_index,
                view_anchor,
                self.err.as_mut_ptr(),
                cap,
            )
        };
        self.check(rc, || "snapshot".into())?;

        // Phase 1: make every object except upvalues (they need their values or threads).
        for (i, o) in s.objects.iter().enumerate() {
            let idx = i as c_int;
            let e = self.err.as_mut_ptr();
            let path = || format!("{}#{i}", o.kind().name());
            // SAFETY (for every call below): the VM is live, a restore is in progress, all
            // pointers are valid for the call, and the shim range-checks every index.
            let rc = match o {
                // SAFETY: `b` is a valid slice for the call.
                Object::String(b) => unsafe {
                    ffi::amber_restore_string(self.ptr(), idx, b.as_ptr().cast(), b.len(), e, cap)
                },
                // SAFETY: `b` is a valid slice for the call.
                Object::Buffer(b) => unsafe {
                    ffi::amber_restore_buffer(self.ptr(), idx, b.as_ptr().cast(), b.len(), e, cap)
                },
                // SAFETY: plain integers; the shim checks the sizes.
                Object::Table(t) => unsafe {
                    ffi::amber_restore_table(self.ptr(), idx, t.array.len() as c_int, t.hash.len() as c_int, e, cap)
                },
                Object::LuaClosure(c) => {
                    let proto =
                        self.protos.get(c.script as usize).and_then(|p| p.get(c.proto as usize)).copied().ok_or_else(
                            || RestoreError::Build { path: path(), message: "proto out of range".into() },
                        )?;
                    // SAFETY: `proto` is a handle this VM reported for the loaded script.
                    unsafe { ffi::amber_restore_lua_closure(self.ptr(), idx, proto, c.upvalues.len() as c_int, e, cap) }
                }
                Object::CClosure(c) => {
                    let r = *self.permanents.get(c.function as usize).ok_or_else(|| RestoreError::Build {
                        path: path(),
                        message: "C function out of range".into(),
                    })?;
                    // SAFETY: `r` indexes the VM's registry; the shim checks it again.
                    unsafe {
                        ffi::amber_restore_c_closure(self.ptr(), idx, r as c_int, c.upvalues.len() as c_int, e, cap)
                    }
                }
                Object::Thread(t) => {
                    let slots = self.stack_slots(i)?;
                    // SAFETY: plain integers; the shim checks them.
                    unsafe {
                        ffi::amber_restore_thread(self.ptr(), idx, slots as c_int, t.frames.len() as c_int, e, cap)
                    }
                }
                Object::Userdata(u) => {
                    let (tag, data) = match &u.kind {
                        UserdataKind::Proxy => (ffi::UTAG_PROXY, Vec::new()),
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
                            let data = c.decode(payload).map_err(|m| RestoreError::Codec {
                                object: i as u32,
                                message: format!("codec `{name}`: {m}"),
                            })?;
                            (c_int::from(*tag), data)
                        }
                    };
                    // SAFETY: `data` is a valid slice for the call.
                    unsafe {
                        ffi::amber_restore_userdata(self.ptr(), idx, tag, data.as_ptr().cast(), data.len(), e, cap)
                    }
                }
                Object::Upvalue(_) => 0,
            };
            self.check(rc, path)?;
        }

        // Phase 2: fill tables, threads, userdata and C closures; then make upvalues (closed
        // ones with their values, open ones on their threads' finished stacks).
        for (i, o) in s.objects.iter().enumerate() {
            let idx = i as c_int;
            let path = || format!("{}#{i}", o.kind().name());
            match o {
                Object::Table(t) => {
                    for (k, v) in t.array.iter().enumerate() {
                        let v = self.tv(v)?;
                        // SAFETY: live VM mid-restore; pointers are locals valid for the call;
                        // `err` has `cap` bytes; the shim range-checks every index.
                        let rc = unsafe {
                            ffi::amber_restore_table_array(self.ptr(), idx, k as c_int, &v, self.err.as_mut_ptr(), cap)
                        };
                        self.check(rc, || format!("table#{i} > array slot {}", k + 1))?;
                    }
                    for (k, entry) in t.hash.iter().enumerate() {
                        let Some((key, val)) = entry else { continue };
                        let (key, val) = (self.tv(key)?, self.tv(val)?);
                        let node = t.node_of.as_ref().and_then(|m| m.get(k)).map_or(k as c_int, |&n| n as c_int);
                        // SAFETY: live VM mid-restore; pointers are locals valid for the call;
                        // `err` has `cap` bytes; the shim range-checks every index.
                        let rc = unsafe {
                            ffi::amber_restore_table_node(
                                self.ptr(),
                                idx,
                                k as c_int,
                                node,
                                &key,
                                &val,
                                self.err.as_mut_ptr(),
                                cap,
                            )
                        };
                        self.check(rc, || format!("table#{i} > hash node {k}"))?;
                    }
                    let meta = self.opt_tv(&t.metatable)?;
                    // SAFETY: live VM mid-restore; pointers are locals valid for the call;
                    // `err` has `cap` bytes; the shim range-checks every index.
                    let rc = unsafe {
                        ffi::amber_restore_table_finish(
                            self.ptr(),
                            idx,
                            t.insert_hint,
                            &meta,
                            c_int::from(t.readonly),
                            c_int::from(t.safeenv),
                            self.err.as_mut_ptr(),
                            cap,
                        )
                    };
                    self.check(rc, path)?;
                }
                Object::Thread(t) => self.fill_thread(i, t)?,
                Object::Userdata(u) => {
                    let meta = self.opt_tv(&u.metatable)?;
                    // SAFETY: live VM mid-restore; pointers are locals valid for the call;
                    // `err` has `cap` bytes; the shim range-checks every index.
                    let rc = unsafe {
                        ffi::amber_restore_userdata_metatable(self.ptr(), idx, &meta, self.err.as_mut_ptr(), cap)
                    };
                    self.check(rc, path)?;
                }
                Object::CClosure(c) => {
                    let env = self.tv(&c.env)?;
                    let ups: Vec<AmberTV> = c.upvalues.iter().map(|v| self.tv(v)).collect::<Result<_, _>>()?;
                    // SAFETY: live VM mid-restore; pointers are locals valid for the call;
                    // `err` has `cap` bytes; the shim range-checks every index; `ups` holds `len` values.
                    let rc = unsafe {
                        ffi::amber_restore_c_closure_fill(
                            self.ptr(),
                            idx,
                            &env,
                            ups.as_ptr(),
                            ups.len() as c_int,
                            self.err.as_mut_ptr(),
                            cap,
                        )
                    };
                    self.check(rc, path)?;
                }
                _ => {}
            }
        }
        for (i, o) in s.objects.iter().enumerate() {
            let Object::Upvalue(u) = o else { continue };
            let idx = i as c_int;
            let rc = match u {
                Upvalue::Closed(v) => {
                    let v = self.tv(v)?;
                    // SAFETY: `v` is a valid value for the call; the shim resolves its reference.
                    unsafe { ffi::amber_restore_upvalue_closed(self.ptr(), idx, &v, self.err.as_mut_ptr(), cap) }
                }
                // SAFETY: plain integers; the shim checks the thread index and the slot.
                Upvalue::Open { thread, slot } => unsafe {
                    ffi::amber_restore_upvalue_open(
                        self.ptr(),
                        idx,
                        *thread as c_int,
                        *slot as c_int,
                        self.err.as_mut_ptr(),
                        cap,
                    )
                },
            };
            self.check(rc, || format!("upvalue#{i}"))?;
        }

        // Phase 3: Lua closures (their upvalue objects exist now), then freeze read-only tables.
        for (i, o) in s.objects.iter().enumerate() {
            let Object::LuaClosure(c) = o else { continue };
            let env = self.tv(&c.env)?;
            let ups: Vec<c_int> = c.upvalues.iter().map(|&u| u as c_int).collect();
            // SAFETY: live VM mid-restore; pointers are locals valid for the call;
            // `err` has `cap` bytes; the shim range-checks every index; `ups` holds `len` indices.
            let rc = unsafe {
                ffi::amber_restore_lua_closure_fill(
                    self.ptr(),
                    i as c_int,
                    &env,
                    ups.as_ptr(),
                    ups.len() as c_int,
                    self.err.as_mut_ptr(),
                    cap,
                )
            };
            self.check(rc, || format!("closure#{i}"))?;
        }
        for (i, o) in s.objects.iter().enumerate() {
            if let Object::Table(t) = o
                && t.readonly
            {
                // SAFETY: live VM mid-restore; pointers are locals valid for the call;
                // `err` has `cap` bytes; the shim range-checks every index.
                let rc = unsafe { ffi::amber_restore_table_freeze(self.ptr(), i as c_int, self.err.as_mut_ptr(), cap) };
                self.check(rc, || format!("table#{i}"))?;
            }
        }
        let mut thread_ref = 0;
        // SAFETY: the VM is live with a restore in progress (this call ends it whatever happens); the
        // pointers are locals valid for the call and `err` has `cap` bytes.
        let rc = unsafe {
            ffi::amber_restore_end(
                self.ptr(),
                s.roots.main_thread as c_int,
                &mut thread_ref,
                self.err.as_mut_ptr(),
                cap,
            )
        };
        self.check(rc, || "roots > main thread".into())?;
        Ok(thread_ref)
    }

    fn layout(&self, i: usize) -> Result<&'a ThreadLayout, RestoreError> {
        self.verified.layout(i as u32).ok_or_else(|| RestoreError::Build {
            path: format!("thread#{i}"),
            message: "the verified snapshot has no layout for this thread".into(),
        })
    }

    /// Stack slots a restored thread needs: every frame's top and its own top.
    fn stack_slots(&self, i: usize) -> Result<u32, RestoreError> {
        let l = self.layout(i)?;
        Ok(l.frames.iter().map(|f| f.top).chain([l.top, 2]).max().unwrap_or(2))
    }

    fn fill_thread(&mut self, i: usize, t: &Thread) -> Result<(), RestoreError> {
        let cap = self.err.len();
        let idx = i as c_int;
        let layout = self.layout(i)?;
        // An errored thread is its error value, where coroutine.close finds it (stack top).
        let stack: Vec<Value> = if t.status == ThreadStatus::Errored {
            vec![Value::Nil, t.error.unwrap_or(Value::Nil)]
        } else {
            t.stack.clone()
        };
        for (k, v) in stack.iter().enumerate() {
            let v = self.tv(v)?;
            // SAFETY: live VM mid-restore; pointers are locals valid for the call;
            // `err` has `cap` bytes; the shim range-checks every index.
            let rc =
                unsafe { ffi::amber_restore_thread_slot(self.ptr(), idx, k as c_int, &v, self.err.as_mut_ptr(), cap) };
            self.check(rc, || format!("thread#{i} > stack slot {k}"))?;
        }
        for (k, f) in layout.frames.iter().enumerate() {
            let (is_lua, pc, errfunc) = match f.kind {
                CallFrameKind::Lua { saved_pc, .. } => (1, saved_pc as c_int, 0),
                CallFrameKind::C { errfunc, .. } => (0, 0, errfunc as c_int),
            };
            let info = ffi::AmberFrameInfo {
                func: f.func as c_int,
                base: f.base as c_int,
                top: f.top as c_int,
                nresults: f.nresults,
                flags: u32::from(f.flags),
                is_lua,
                pc,
                errfunc,
                closure: 0,
            };
            // SAFETY: live VM mid-restore; pointers are locals valid for the call;
            // `err` has `cap` bytes; the shim range-checks every index.
            let rc = unsafe {
                ffi::amber_restore_thread_frame(self.ptr(), idx, k as c_int + 1, &info, self.err.as_mut_ptr(), cap)
            };
            self.check(rc, || format!("thread#{i} > frame {k}"))?;
        }
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
        let globals = self.tv(&t.globals)?;
        let namecall = t.namecall.map_or(-1, |n| n as c_int);
        // SAFETY: live VM mid-restore; pointers are locals valid for the call;
        // `err` has `cap` bytes; the shim range-checks every index.
        let rc = unsafe {
            ffi::amber_restore_thread_finish(self.ptr(), idx, &info, &globals, namecall, self.err.as_mut_ptr(), cap)
        };
        self.check(rc, || format!("thread#{i}"))
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
    let s = verified.snapshot();
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

    let mut b = Builder { vm, verified, snapshot: s, permanents, protos, globals, err: vec![0; 512] };
    match b.build(options.memory_category, options.memory_limit) {
        Ok(thread_ref) => {
            let mut task =
                Task::new(Rc::clone(vm.inner()), thread_ref, main_script, ProtoIdentity::NONE, s.roots.random_state);
            // SAFETY: the VM is live; reads a counter of the restore that just ended.
            task.set_explicit_orders(unsafe { ffi::amber_restore_orders(vm.inner().ptr()) });
            task.set_globals_view(view);
            task.set_memory(options.memory_category, options.memory_limit);
            Ok(task)
        }
        Err(e) => {
            // SAFETY: the VM is live; abort is a no-op when no restore is in progress.
            unsafe { ffi::amber_restore_abort(vm.inner().ptr()) };
            Err(e)
        }
    }
}
