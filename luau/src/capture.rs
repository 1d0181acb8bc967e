//! Capture: a suspended task's VM state into the validator's snapshot model.
//!
//! A breadth-first walk from the task's main thread over the shim's read-only accessors; it
//! allocates nothing inside the VM. Objects are numbered in discovery order (the main thread is
//! object 0), permanents by first use, so the same state always gives the same model.

use crate::ffi::{self, AmberTV, GcRef};
use crate::vm::{Task, VmInner};
use crate::{FeatureFlags, Script, ScriptHash};
use amber_validator::bytecode::YieldKind;
use amber_validator::bytecode::registers::RegSet;
use amber_validator::diagnostics::{ObjectPath, Segment};
use amber_validator::snapshot::*;

use crate::address::AddressMap as HashMap;
use std::collections::hash_map::Entry;
use std::ffi::c_int;
use thiserror::Error;

/// The Luau release this build was compiled from (build.rs reads it off the `luau0-src` package:
/// `0.745` for `luau0-src =0.23.0+luau745`).
pub const LUAU_VERSION: &str = env!("AMBER_LUAU_RELEASE");

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("cannot capture {path}: {reason}")]
pub struct CaptureError {
    /// Where the offending object was reached from the main thread.
    pub path: String,
    pub reason: String,
}

/// Options of [`capture_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaptureOptions {
    /// Embed each script's source in the snapshot (default). Without it a loader supplies
    /// sources by hash.
    pub embed_sources: bool,
}

impl Default for CaptureOptions {
    fn default() -> Self {
        CaptureOptions { embed_sources: true }
    }
}

pub fn capture(task: &Task) -> Result<Snapshot, CaptureError> {
    capture_with(task, CaptureOptions::default())
}

/// How an object was first reached, for error paths.
#[derive(Clone, Copy)]
enum Edge {
    Root,
    ArraySlot(u32),
    Key,
    KeyValue,
    Metatable,
    Env,
    Upvalue(u32),
    StackSlot(u32),
    Globals,
    Namecall,
    OpenUpvalue,
    ErrorValue,
}

impl Edge {
    const INDEX_BITS: u32 = 28;

    /// Four bytes a discovered object instead of eight: the kind in the top bits, an index
    /// below (saturated; Luau's arrays, stacks and upvalue counts stay far under 2^28, and the
    /// index only ever reaches an error message).
    fn pack(self) -> u32 {
        let (kind, index) = match self {
            Edge::Root => (0, 0),
            Edge::ArraySlot(k) => (1, k),
            Edge::Key => (2, 0),
            Edge::KeyValue => (3, 0),
            Edge::Metatable => (4, 0),
            Edge::Env => (5, 0),
            Edge::Upvalue(k) => (6, k),
            Edge::StackSlot(k) => (7, k),
            Edge::Globals => (8, 0),
            Edge::Namecall => (9, 0),
            Edge::OpenUpvalue => (10, 0),
            Edge::ErrorValue => (11, 0),
        };
        (kind << Self::INDEX_BITS) | index.min((1 << Self::INDEX_BITS) - 1)
    }

    fn unpack(packed: u32) -> Edge {
        let index = packed & ((1 << Self::INDEX_BITS) - 1);
        match packed >> Self::INDEX_BITS {
            1 => Edge::ArraySlot(index),
            2 => Edge::Key,
            3 => Edge::KeyValue,
            4 => Edge::Metatable,
            5 => Edge::Env,
            6 => Edge::Upvalue(index),
            7 => Edge::StackSlot(index),
            8 => Edge::Globals,
            9 => Edge::Namecall,
            10 => Edge::OpenUpvalue,
            11 => Edge::ErrorValue,
            _ => Edge::Root,
        }
    }
}

/// A list that grows in fixed-size chunks: no doubling slack and no copying while a capture
/// discovers objects, and one exact-size `Vec` at the end, built a chunk at a time (capture's
/// peak memory, not its final size, is what a host must provision). The first chunk grows like
/// a `Vec`, so a small task's capture allocates little.
struct Chunked<T> {
    chunks: Vec<Vec<T>>,
    len: usize,
}

impl<T> Chunked<T> {
    const CHUNK: usize = 4096;

    fn new() -> Self {
        Chunked { chunks: Vec::new(), len: 0 }
    }

    fn len(&self) -> usize {
        self.len
    }

    #[inline]
    fn push(&mut self, item: T) {
        if self.len.is_multiple_of(Self::CHUNK) {
            self.chunks.push(Vec::with_capacity(if self.len == 0 { 16 } else { Self::CHUNK }));
        }
        let last = self.len / Self::CHUNK;
        self.chunks[last].push(item);
        self.len += 1;
    }

    fn get(&self, i: usize) -> &T {
        &self.chunks[i / Self::CHUNK][i % Self::CHUNK]
    }

    fn get_mut(&mut self, i: usize) -> &mut T {
        &mut self.chunks[i / Self::CHUNK][i % Self::CHUNK]
    }

    /// The items in order, mapped, in one allocation of exactly their number; each chunk is
    /// freed as soon as it is moved. (Growing the result a chunk at a time would keep the two
    /// from being whole at once only where `realloc` moves pages; glibc copies blocks below its
    /// mmap threshold, which made every capture quadratic in copies.)
    fn into_vec<U>(self, mut f: impl FnMut(T) -> U) -> Vec<U> {
        let mut out = Vec::with_capacity(self.len);
        for chunk in self.chunks {
            out.extend(chunk.into_iter().map(&mut f));
        }
        out
    }
}

/// A proto of a script the VM loaded, as capture uses it.
struct LoadedProto {
    script: Script,
    /// Its bytecode id.
    proto: u32,
    /// Its script's index in the snapshot, once a closure running it has been captured (frames
    /// alone do not add a script: their functions are captured as closures).
    index: Option<u32>,
}

struct Capturer<'a> {
    vm: &'a VmInner,
    objects: Chunked<Option<Object>>,
    handles: Chunked<GcRef>,
    /// How each object was first reached: (parent object, packed edge).
    parents: Chunked<(u32, u32)>,
    index: HashMap<GcRef, u32>,
    /// Registry object handle -> registry index; (function, continuation) -> registry index.
    permanent_objects: HashMap<GcRef, usize>,
    c_functions: HashMap<(usize, usize), usize>,
    permanents: Vec<String>,
    permanent_index: HashMap<usize, u32>,
    scripts: Vec<ScriptEntry>,
    script_index: HashMap<ScriptHash, u32>,
    /// Proto handle -> the loaded proto, found once per proto rather than by hashing its
    /// script's key once per closure and per frame.
    protos: HashMap<usize, LoadedProto>,
    settings: Option<CompilerSettings>,
    embed: bool,
    /// Open upvalue handle -> (thread object, slot), from the threads' open-upvalue lists.
    open_owner: HashMap<GcRef, (u32, u32)>,
    /// Upvalue objects captured while open, to resolve against `open_owner` at the end.
    open_pending: Vec<(u32, Value)>,
    globals_permanent: Option<usize>,
}

fn tv() -> AmberTV {
    AmberTV::default()
}

impl<'a> Capturer<'a> {
    fn path_of(&self, mut i: u32) -> ObjectPath {
        let mut chain = Vec::new();
        loop {
            let (parent, edge) = *self.parents.get(i as usize);
            let edge = Edge::unpack(edge);
            chain.push((i, edge));
            if matches!(edge, Edge::Root) || chain.len() > 64 {
                break;
            }
            i = parent;
        }
        let mut path = ObjectPath::new();
        for (n, (obj, edge)) in chain.iter().rev().enumerate() {
            if n == 0 {
                path = path.with(Segment::Object { kind: "thread", index: *obj });
                continue;
            }
            path = path.with(match edge {
                Edge::Root => Segment::Roots,
                Edge::ArraySlot(k) => Segment::Index("array slot", u64::from(*k) + 1),
                Edge::Key => Segment::Field("key"),
                Edge::KeyValue => Segment::Field("value"),
                Edge::Metatable => Segment::Field("metatable"),
                Edge::Env => Segment::Field("environment"),
                Edge::Upvalue(k) => Segment::Index("upvalue", u64::from(*k)),
                Edge::StackSlot(k) => Segment::Index("stack slot", u64::from(*k)),
                Edge::Globals => Segment::Field("globals"),
                Edge::Namecall => Segment::Field("namecall method"),
                Edge::OpenUpvalue => Segment::Field("open upvalue"),
                Edge::ErrorValue => Segment::Field("error value"),
            });
        }
        path
    }

    fn error(&self, from: u32, edge: Option<Edge>, reason: impl Into<String>) -> CaptureError {
        let mut path = self.path_of(from).to_string();
        if let Some(edge) = edge {
            path += &match edge {
                Edge::ArraySlot(k) => format!(" > array slot {}", k + 1),
                Edge::Upvalue(k) => format!(" > upvalue {k}"),
                Edge::StackSlot(k) => format!(" > stack slot {k}"),
                Edge::Key => " > key".into(),
                Edge::KeyValue => " > value".into(),
                Edge::Metatable => " > metatable".into(),
                Edge::Env => " > environment".into(),
                Edge::Globals => " > globals".into(),
                Edge::Namecall => " > namecall method".into(),
                Edge::OpenUpvalue => " > open upvalue".into(),
                Edge::ErrorValue => " > error value".into(),
                Edge::Root => String::new(),
            };
        }
        CaptureError { path, reason: reason.into() }
    }

    /// The index of the object behind `handle`, discovering it on first sight.
    fn object(&mut self, handle: GcRef, from: u32, edge: Edge) -> u32 {
        if let Some(&i) = self.index.get(&handle) {
            return i;
        }
        let i = self.objects.len() as u32;
        self.objects.push(None);
        self.handles.push(handle);
        self.parents.push((from, edge.pack()));
        self.index.insert(handle, i);
        i
    }

    fn permanent(&mut self, registry_index: usize) -> u32 {
        if let Some(&i) = self.permanent_index.get(&registry_index) {
            return i;
        }
        let i = self.permanents.len() as u32;
        self.permanents.push(self.vm.registry[registry_index].name.clone());
        self.permanent_index.insert(registry_index, i);
        i
    }

    fn value(&mut self, t: &AmberTV, from: u32, edge: Edge) -> Result<Value, CaptureError> {
        Ok(match t.type_ {
            ffi::LUA_TNIL => Value::Nil,
            ffi::LUA_TBOOLEAN => Value::Boolean(t.boolean != 0),
            ffi::LUA_TNUMBER => Value::Number(t.number),
            ffi::LUA_TVECTOR => Value::Vector(t.vector),
            ffi::LUA_TLIGHTUSERDATA if t.tag == ffi::LU_TAG_ITERATOR => {
                let p = u32::try_from(t.ref_)
                    .map_err(|_| self.error(from, Some(edge), "generic-for position too large"))?;
                Value::IterPosition(p)
            }
            ffi::LUA_TLIGHTUSERDATA => {
                return Err(self.error(
                    from,
                    Some(edge),
                    format!("raw light userdata (tag {}) holds a pointer", t.tag),
                ));
            }
            ffi::LUA_TINTEGER => {
                return Err(self.error(from, Some(edge), "integer values are out of scope while their flag is off"));
            }
            ffi::LUA_TCLASS | ffi::LUA_TOBJECT => {
                return Err(self.error(
                    from,
                    Some(edge),
                    "class and object values are out of scope while their flags are off",
                ));
            }
            ffi::LUA_TSTRING
            | ffi::LUA_TTABLE
            | ffi::LUA_TFUNCTION
            | ffi::LUA_TUSERDATA
            | ffi::LUA_TTHREAD
            | ffi::LUA_TBUFFER => {
                if let Some(&r) = self.permanent_objects.get(&GcRef(t.ref_)) {
                    Value::Permanent(self.permanent(r))
                } else {
                    Value::Object(self.object(GcRef(t.ref_), from, edge))
                }
            }
            other => return Err(self.error(from, Some(edge), format!("value of VM type {other}"))),
        })
    }

    fn handle_value(&mut self, handle: GcRef, from: u32, edge: Edge) -> Result<Option<Value>, CaptureError> {
        if handle.is_null() {
            return Ok(None);
        }
        // SAFETY: `handle` is a live GC object reachable from the task (read, not kept).
        let ty = unsafe { ffi::amber_gc_type(handle) };
        let t = AmberTV { type_: ty, ref_: handle.0, ..tv() };
        Ok(Some(self.value(&t, from, edge)?))
    }

    fn script_of(&mut self, script: &Script, from: u32) -> Result<u32, CaptureError> {
        let hash = script.hash();
        if let Some(&i) = self.script_index.get(&hash) {
            return Ok(i);
        }
        match self.settings {
            None => self.settings = Some(script.settings()),
            Some(s) if s != script.settings() => {
                return Err(self.error(from, None, "scripts compiled with different compiler settings"));
            }
            _ => {}
        }
        let i = self.scripts.len() as u32;
        self.scripts.push(ScriptEntry {
            hash,
            chunk_name: script.chunk_name().to_string(),
            source: self.embed.then(|| script.source().to_vec()),
            signatures: Vec::new(),
        });
        self.script_index.insert(hash, i);
        Ok(i)
    }

    /// The proto behind a proto handle (`None`: a proto this VM did not load).
    fn loaded_proto(&mut self, handle: usize) -> Option<&mut LoadedProto> {
        match self.protos.entry(handle) {
            Entry::Occupied(known) => Some(known.into_mut()),
            Entry::Vacant(slot) => {
                let (key, proto) = *self.vm.protos.borrow().get(&handle)?;
                let script = self.vm.loaded.borrow().get(&key)?.script.clone();
                Some(slot.insert(LoadedProto { script, proto, index: None }))
            }
        }
    }

    fn run(&mut self) -> Result<(), CaptureError> {
        // Objects are captured in the order they were discovered, which is their index order:
        // a cursor is the whole queue. Those already complete (an upvalue captured by value is
        // made where it is found) are passed over.
        let mut next = 0;
        while next < self.objects.len() {
            let i = next as u32;
            next += 1;
            if self.objects.get(i as usize).is_some() {
                continue;
            }
            let handle = *self.handles.get(i as usize);
            // SAFETY: every handle was read from a live, reachable object of this VM.
            let ty = unsafe { ffi::amber_gc_type(handle) };
            let object = match ty {
                ffi::LUA_TSTRING => Object::String(bytes(handle, ffi::amber_string_bytes)),
                ffi::LUA_TBUFFER => Object::Buffer(bytes(handle, ffi::amber_buffer_bytes)),
                ffi::LUA_TTABLE => self.table(i, handle)?,
                ffi::LUA_TFUNCTION => self.closure(i, handle)?,
                ffi::LUA_TUPVAL => self.upvalue(i, handle)?,
                ffi::LUA_TTHREAD => self.thread(i, handle)?,
                ffi::LUA_TUSERDATA => self.userdata(i, handle)?,
                other => return Err(self.error(i, None, format!("object of VM type {other}"))),
            };
            *self.objects.get_mut(i as usize) = Some(object);
        }
        // Open upvalues whose thread is not part of the task are closed in effect: no code the
        // task can run will touch that stack again (the collector would close them too).
        for (i, current) in std::mem::take(&mut self.open_pending) {
            let handle = *self.handles.get(i as usize);
            let upvalue = match self.open_owner.get(&handle) {
                Some(&(thread, slot)) => Upvalue::Open { thread, slot },
                None => Upvalue::Closed(current),
            };
            *self.objects.get_mut(i as usize) = Some(Object::Upvalue(upvalue));
        }
        Ok(())
    }

    fn table(&mut self, i: u32, h: GcRef) -> Result<Object, CaptureError> {
        let mut info = ffi::AmberTableInfo::default();
        // SAFETY: `h` is a live table.
        unsafe { ffi::amber_table_info(h, &mut info) };
        let metatable = self.handle_value(info.metatable, i, Edge::Metatable)?;
        let mut array = Vec::with_capacity(info.array_size as usize);
        for k in 0..info.array_size {
            let mut t = tv();
            // SAFETY: `k` is below the array size just read.
            unsafe { ffi::amber_table_array(h, k, &mut t) };
            array.push(self.value(&t, i, Edge::ArraySlot(k as u32))?);
        }
        // The hash part in iteration order: through the table's explicit order when it has one,
        // recording the node layout it was restored from (where keys hashed by contents go back
        // to; keys hashed by address go wherever the next VM puts them).
        let mut hash = Vec::with_capacity(info.node_count as usize);
        let mut node_of = (info.has_order != 0).then(|| Vec::with_capacity(info.node_count as usize));
        for p in 0..info.node_count {
            // SAFETY: `p` is below the node count.
            let k = if info.has_order != 0 { unsafe { ffi::amber_table_position_node(h, p) } } else { p };
            if k < 0 || k >= info.node_count {
                hash.push(None);
                if let Some(map) = &mut node_of {
                    map.push(u32::MAX);
                }
                continue;
            }
            let (mut key, mut val) = (tv(), tv());
            // SAFETY: `k` is below the node count; dead keys are reported, never read.
            let state = unsafe { ffi::amber_table_node(h, k, &mut key, &mut val) };
            if let Some(map) = &mut node_of {
                // SAFETY: `p` is below the node count.
                let origin = unsafe { ffi::amber_table_position_origin(h, p) };
                map.push(if state == 1 && origin >= 0 { origin as u32 } else { u32::MAX });
            }
            match state {
                1 => {
                    let kv = self.value(&key, i, Edge::Key)?;
                    let vv = self.value(&val, i, Edge::KeyValue)?;
                    hash.push(Some((kv, vv)));
                }
                // An unused node, or a dead key (its object may be gone): a hole either way.
                _ => hash.push(None),
            }
        }
        // A layout that is the identity says nothing: leave it out (canonical form).
        if let Some(map) = &node_of
            && map.iter().enumerate().zip(&hash).all(|((p, &n), e)| e.is_none() || n as usize == p)
        {
            node_of = None;
        }
        Ok(Object::Table(Box::new(Table {
            array,
            hash,
            metatable,
            readonly: info.readonly != 0,
            safeenv: info.safeenv != 0,
            insert_hint: info.insert_hint,
            node_of,
        })))
    }

    fn closure(&mut self, i: u32, h: GcRef) -> Result<Object, CaptureError> {
        let mut info = ffi::AmberClosureInfo::default();
        // SAFETY: `h` is a live closure.
        unsafe { ffi::amber_closure_info(h, &mut info) };
        let env = self.handle_value(info.env, i, Edge::Env)?.unwrap_or(Value::Nil);
        let env =
            EnvRef::of(env).ok_or_else(|| self.error(i, Some(Edge::Env), "an environment that is not a table"))?;
        if info.is_c != 0 {
            let function = *self.c_functions.get(&(info.function, info.continuation)).ok_or_else(|| {
                self.error(i, None, "a C function that is not part of the base image (a host function)")
            })?;
            let function = self.permanent(function);
            let mut upvalues = Vec::with_capacity(info.upvalues as usize);
            for k in 0..info.upvalues {
                let mut t = tv();
                // SAFETY: `k` is below the closure's upvalue count.
                unsafe { ffi::amber_closure_upvalue(h, k, &mut t) };
                upvalues.push(self.value(&t, i, Edge::Upvalue(k as u32))?);
            }
            return Ok(Object::CClosure(CClosure { function, env, upvalues }));
        }
        if let (Some(g), EnvRef::Permanent(p)) = (self.globals_permanent, env)
            && self.permanents[p as usize] == self.vm.registry[g].name
        {
            return Err(self.error(i, None, "a proto's constant closure (its environment is the base globals)"));
        }
        let Some(loaded) = self.loaded_proto(info.proto) else {
            return Err(self.error(i, None, "closure of a proto this VM did not load"));
        };
        let (script, proto) = match loaded.index {
            Some(index) => (index, loaded.proto),
            None => {
                let (script, proto) = (loaded.script.clone(), loaded.proto);
                let index = self.script_of(&script, i)?;
                if let Some(loaded) = self.protos.get_mut(&info.proto) {
                    loaded.index = Some(index);
                }
                (index, proto)
            }
        };
        let upvalues = UpvalueRefs::try_from_fn(info.upvalues.max(0) as usize, |k| {
            let k = k as c_int;
            let mut t = tv();
            // SAFETY: `k` is below the closure's upvalue count.
            unsafe { ffi::amber_closure_upvalue(h, k, &mut t) };
            if t.type_ == ffi::LUA_TUPVAL {
                return Ok(self.object(GcRef(t.ref_), i, Edge::Upvalue(k as u32)));
            }
            // Captured by value: its own closed upvalue (restored as one; reads the same).
            let v = self.value(&t, i, Edge::Upvalue(k as u32))?;
            let u = self.objects.len() as u32;
            self.objects.push(Some(Object::Upvalue(Upvalue::Closed(v))));
            self.handles.push(GcRef(0));
            self.parents.push((i, Edge::Upvalue(k as u32).pack()));
            Ok(u)
        })?;
        Ok(Object::LuaClosure(LuaClosure { script, proto, env, upvalues }))
    }

    fn upvalue(&mut self, i: u32, h: GcRef) -> Result<Object, CaptureError> {
        let mut t = tv();
        // SAFETY: `h` is a live upvalue; an open one reads its (live) stack slot.
        let open = unsafe { ffi::amber_upvalue(h, &mut t) } != 0;
        let v = self.value(&t, i, Edge::KeyValue)?;
        if open {
            self.open_pending.push((i, v));
            // Placeholder until the owners are known.
            return Ok(Object::Upvalue(Upvalue::Closed(Value::Nil)));
        }
        Ok(Object::Upvalue(Upvalue::Closed(v)))
    }

    fn thread(&mut self, i: u32, h: GcRef) -> Result<Object, CaptureError> {
        let mut info = ffi::AmberThreadInfo::default();
        // SAFETY: `h` is a live thread.
        unsafe { ffi::amber_thread_info(h, &mut info) };
        let globals = self.handle_value(GcRef(info.globals), i, Edge::Globals)?.unwrap_or(Value::Nil);
        let namecall = match self.handle_value(GcRef(info.namecall), i, Edge::Namecall)? {
            Some(Value::Object(n)) => Some(n),
            _ => None,
        };
        let slot = |c: &mut Self, k: c_int| -> Result<Value, CaptureError> {
            let mut t = tv();
            // SAFETY: `k` is below the thread's top.
            unsafe { ffi::amber_thread_slot(h, k, &mut t) };
            c.value(&t, i, Edge::StackSlot(k as u32))
        };

        if info.status != ffi::LUA_OK && info.status != ffi::LUA_YIELD && info.status != ffi::LUA_BREAK {
            // Errored: kept as its error value; its frames are dropped and its open upvalues
            // are captured closed (nothing can run on this stack again).
            let error = if info.top > 0 {
                let mut t = tv();
                // SAFETY: `top - 1` is below the thread's top.
                unsafe { ffi::amber_thread_slot(h, info.top - 1, &mut t) };
                self.value(&t, i, Edge::ErrorValue)?
            } else {
                Value::Nil
            };
            return Ok(Object::Thread(Box::new(Thread {
                status: ThreadStatus::Errored,
                stack: vec![],
                frames: vec![],
                open_upvalues: vec![],
                globals,
                namecall,
                error: Some(error),
            })));
        }
        let status = match (info.status, info.frames) {
            (ffi::LUA_OK, 0) if info.top > info.base => ThreadStatus::NotStarted,
            (ffi::LUA_OK, 0) => ThreadStatus::Dead,
            (ffi::LUA_OK, _) => return Err(self.error(i, None, "the thread is running (capture a suspended task)")),
            (ffi::LUA_YIELD, _) => ThreadStatus::Yielded,
            _ => ThreadStatus::Preempted,
        };
        let mut frames = Vec::with_capacity(info.frames as usize);
        // Per Luau frame: its base and live generic-for loops, to canonicalise the stack below.
        let mut lua_frames: Vec<(u32, RegSet)> = Vec::with_capacity(info.frames.max(0) as usize);
        let mut top_len = info.top;
        for f in 1..=info.frames {
            let mut fi = ffi::AmberFrameInfo::default();
            // SAFETY: `f` is within the thread's call-info array.
            unsafe { ffi::amber_thread_frame(h, f, &mut fi) };
            let top_frame = f == info.frames;
            let frame = if fi.is_lua != 0 {
                let mut ci = ffi::AmberClosureInfo::default();
                // SAFETY: the frame's function slot holds a live Luau closure.
                unsafe { ffi::amber_closure_info(GcRef(fi.closure), &mut ci) };
                let Some(loaded) = self.loaded_proto(ci.proto) else {
                    return Err(self.error(i, None, format!("frame {f} runs a proto this VM did not load")));
                };
                let (script, proto) = (loaded.script.clone(), loaded.proto);
                let role = if top_frame && status == ThreadStatus::Preempted {
                    YieldKind::Interrupt
                } else if fi.flags & ffi::LUA_CALLINFO_OPYIELD != 0 {
                    YieldKind::IteratorReturn
                } else {
                    YieldKind::CallReturn
                };
                let map = script.yield_map(proto);
                let found = map.and_then(|m| m.find(fi.pc.max(0) as u32, role).map(|k| (k, &m.points[k as usize])));
                let Some((yield_point, point)) = found else {
                    return Err(self.error(
                        i,
                        None,
                        format!(
                            "frame {f} is suspended at pc {} of proto {proto}, not a {} yield point",
                            fi.pc,
                            role.name()
                        ),
                    ));
                };
                let p = script.module().proto(proto);
                let (fixed, vararg, max_stack) =
                    p.map_or((0, false, 0), |p| (p.num_params, p.is_vararg, p.max_stack_size));
                // A vararg function keeps its extra arguments between its function slot and its
                // base; everything else of the frame is derived by the validator.
                let varargs = if vararg { (fi.base - fi.func - 1 - c_int::from(fixed)).max(0) as u32 } else { 0 };
                if top_frame && point.open_top_from().is_none() {
                    // Above the frame's registers the stack holds nothing the frame can read.
                    top_len = fi.base + c_int::from(max_stack);
                }
                lua_frames.push((fi.base as u32, point.needs.loops));
                Frame::Lua { yield_point, varargs }
            } else {
                let mut ci = ffi::AmberClosureInfo::default();
                // SAFETY: the frame's function slot holds a live C closure.
                unsafe { ffi::amber_closure_info(GcRef(fi.closure), &mut ci) };
                if ci.continuation == 0 && !(top_frame && status == ThreadStatus::Yielded) {
                    return Err(self.error(
                        i,
                        None,
                        format!("frame {f} is a C function without a continuation, which cannot be resumed"),
                    ));
                }
                if !self.c_functions.contains_key(&(ci.function, ci.continuation)) {
                    return Err(self.error(i, None, format!("frame {f} runs a C function outside the base image")));
                }
                Frame::C
            };
            frames.push(frame);
        }
        let mut stack = Vec::with_capacity(top_len.max(0) as usize);
        for k in 0..top_len {
            stack.push(if k < info.top { slot(self, k)? } else { Value::Nil });
        }
        // A generic-for position is only ever read from the position register of a live loop
        // over a table; one left anywhere else by a finished loop is unobservable: drop it.
        let mut live_positions = std::collections::HashSet::new();
        for (base, loops) in &lua_frames {
            for a in loops.iter() {
                let at = |r: u32| stack.get((base + r) as usize).copied().unwrap_or(Value::Nil);
                if at(a) == Value::Nil && matches!(at(a + 2), Value::IterPosition(_)) {
                    live_positions.insert((base + a + 2) as usize);
                }
            }
        }
        for (k, v) in stack.iter_mut().enumerate() {
            if matches!(v, Value::IterPosition(_)) && !live_positions.contains(&k) {
                *v = Value::Nil;
            }
        }
        let mut open_upvalues = Vec::new();
        let n = {
            // SAFETY: asking for the count only (cap 0).
            unsafe { ffi::amber_thread_open_upvalues(h, std::ptr::null_mut(), 0, std::ptr::null_mut()) }
        };
        if n > 0 {
            let mut handles = vec![GcRef(0); n as usize];
            let mut slots = vec![0 as c_int; n as usize];
            // SAFETY: both buffers hold `n` entries, the count just read.
            unsafe { ffi::amber_thread_open_upvalues(h, handles.as_mut_ptr(), n, slots.as_mut_ptr()) };
            for (uh, s) in handles.into_iter().zip(slots) {
                self.open_owner.insert(uh, (i, s as u32));
                open_upvalues.push(self.object(uh, i, Edge::OpenUpvalue));
            }
        }
        Ok(Object::Thread(Box::new(Thread { status, stack, frames, open_upvalues, globals, namecall, error: None })))
    }

    fn userdata(&mut self, i: u32, h: GcRef) -> Result<Object, CaptureError> {
        let mut info = ffi::AmberUserdataInfo {
            tag: 0,
            length: 0,
            data: std::ptr::null(),
            metatable: GcRef(0),
            is_proxy: 0,
            has_destructor: 0,
        };
        // SAFETY: `h` is a live userdata.
        unsafe { ffi::amber_userdata_info(h, &mut info) };
        if info.has_destructor != 0 {
            return Err(self.error(i, None, "userdata with a destructor holds a raw function pointer"));
        }
        let metatable = self.handle_value(info.metatable, i, Edge::Metatable)?;
        if info.is_proxy != 0 {
            return Ok(Object::Userdata(Box::new(Userdata { kind: UserdataKind::Proxy, metatable })));
        }
        let tag = u8::try_from(info.tag).map_err(|_| self.error(i, None, format!("userdata tag {}", info.tag)))?;
        let codecs = self.vm.codecs.borrow();
        let (name, codec) = codecs
            .get(&tag)
            .ok_or_else(|| self.error(i, None, format!("userdata with tag {tag} has no registered codec")))?;
        // SAFETY: `data` points at the userdata's `length` bytes, read before any VM call.
        let data = unsafe { std::slice::from_raw_parts(info.data.cast::<u8>(), info.length.max(0) as usize) };
        let payload = codec.encode(data).map_err(|e| self.error(i, None, format!("codec `{name}` failed: {e}")))?;
        Ok(Object::Userdata(Box::new(Userdata {
            kind: UserdataKind::Codec { tag, codec: name.clone(), payload },
            metatable,
        })))
    }
}

/// A string's or buffer's bytes, copied straight into the model's form (short strings inline).
fn bytes<T: for<'s> From<&'s [u8]>>(
    handle: GcRef,
    read: unsafe extern "C" fn(GcRef, *mut *const std::ffi::c_char, *mut usize),
) -> T {
    let mut data = std::ptr::null();
    let mut len = 0usize;
    // SAFETY: `handle` is a live string or buffer; its bytes are copied before any VM call.
    unsafe { read(handle, &mut data, &mut len) };
    if data.is_null() {
        return T::from(&[]);
    }
    // SAFETY: the VM reported `len` bytes at `data` for this live string or buffer; they are
    // copied into the model before any other VM call can move or free them.
    T::from(unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) })
}

/// Captures the state of a suspended task (pre-empted, or yielded from its main function).
pub fn capture_with(task: &Task, options: CaptureOptions) -> Result<Snapshot, CaptureError> {
    let vm = task.vm();
    let mut main = GcRef(0);
    // SAFETY: the task's thread anchor is live.
    if unsafe { ffi::amber_task_thread(vm.ptr(), task.thread_ref(), &mut main) } != 0 {
        return Err(CaptureError { path: "task".into(), reason: "the task has no thread".into() });
    }
    let mut permanent_objects = HashMap::default();
    let mut c_functions = HashMap::default();
    let mut globals_permanent = None;
    for (k, r) in vm.registry.iter().enumerate() {
        if r.object != 0 {
            permanent_objects.entry(GcRef(r.object)).or_insert(k);
        }
        if r.function != 0 {
            c_functions.entry((r.function, r.continuation)).or_insert(k);
        }
        if r.name == "@globals" {
            globals_permanent = Some(k);
        }
    }
    // A task restored into a globals view sees the view where the base globals were: it is
    // captured as the base globals, as it was when the snapshot it came from was taken.
    if let (Some(g), Some(v)) = (globals_permanent, task.globals_view())
        && let Some(view) = vm.views.borrow().views.get(v)
    {
        permanent_objects.insert(GcRef(view.object), g);
    }
    let mut c = Capturer {
        vm,
        objects: Chunked::new(),
        handles: Chunked::new(),
        parents: Chunked::new(),
        index: HashMap::default(),
        permanent_objects,
        c_functions,
        permanents: Vec::new(),
        permanent_index: HashMap::default(),
        scripts: Vec::new(),
        script_index: HashMap::default(),
        protos: HashMap::default(),
        settings: None,
        embed: options.embed_sources,
        open_owner: HashMap::default(),
        open_pending: Vec::new(),
        globals_permanent,
    };
    c.object(main, 0, Edge::Root);
    c.run()?;

    let globals_layout = match task.globals_view() {
        Some(v) => vm.views.borrow().views.get(v).map(|g| g.layout.clone()).unwrap_or_default(),
        None => vm.base_layout.clone(),
    };
    // The discovery maps go before the objects are flattened: the peak is their sum otherwise.
    let (objects, settings) = (std::mem::replace(&mut c.objects, Chunked::new()), c.settings);
    let (scripts, permanents) = (std::mem::take(&mut c.scripts), std::mem::take(&mut c.permanents));
    // Every Luau closure's proto went through the memo, with its script: the protos the
    // snapshot uses and their yield-point signatures, without sorting a pair per closure or
    // looking a script up again. (A script loaded into two globals views has two handles per
    // proto: one entry.)
    let mut used: Vec<(u32, u32, Option<u64>)> = c
        .protos
        .values()
        .filter_map(|p| Some((p.index?, p.proto, p.script.yield_map(p.proto).map(|m| m.signature.0))))
        .collect();
    used.sort_unstable();
    used.dedup();
    drop(c);
    let objects: Vec<Object> = objects.into_vec(|o| o.unwrap_or(Object::String(b"".into())));
    let flags = FeatureFlags::pinned();
    let mut snapshot = Snapshot {
        header: Header {
            luau_version: LUAU_VERSION.into(),
            compiler: settings.unwrap_or_else(|| task.script().settings()),
            enabled_flags: flags.enabled_sorted(),
            permanents_digest: vm.registry_digest,
        },
        scripts,
        permanents,
        objects,
        roots: Roots { main_thread: 0, random_state: task.random_state(), globals_layout },
    };
    // Every proto a closure runs carries its signature (the loader compares them).
    debug_assert_eq!(used.iter().map(|&(s, p, _)| (s, p)).collect::<Vec<_>>(), snapshot.used_protos());
    for (script, proto, signature) in used {
        if let Some(signature) = signature {
            snapshot.scripts[script as usize].signatures.push(ProtoSignature { proto, signature });
        }
    }
    Ok(snapshot)
}

/// A call frame as the VM holds it right now (for tests comparing it with the validator's
/// derivation, and for debugging).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveFrame {
    pub func: u32,
    pub base: u32,
    pub top: u32,
    pub nresults: i32,
    pub flags: u8,
    /// A Luau frame's saved instruction index.
    pub saved_pc: Option<u32>,
}

/// The call frames of a suspended task's main thread, outermost first (`None` if it has no
/// thread). Reads only.
pub fn live_frames(task: &Task) -> Option<Vec<LiveFrame>> {
    let vm = task.vm();
    let mut main = GcRef(0);
    // SAFETY: the task's thread anchor is live.
    if unsafe { ffi::amber_task_thread(vm.ptr(), task.thread_ref(), &mut main) } != 0 {
        return None;
    }
    let mut info = ffi::AmberThreadInfo::default();
    // SAFETY: `main` is the task's live thread.
    unsafe { ffi::amber_thread_info(main, &mut info) };
    let mut out = Vec::with_capacity(info.frames.max(0) as usize);
    for f in 1..=info.frames {
        let mut fi = ffi::AmberFrameInfo::default();
        // SAFETY: `f` is within the thread's call-info array.
        unsafe { ffi::amber_thread_frame(main, f, &mut fi) };
        out.push(LiveFrame {
            func: fi.func as u32,
            base: fi.base as u32,
            top: fi.top as u32,
            nresults: fi.nresults,
            flags: (fi.flags & 0xff) as u8,
            saved_pc: (fi.is_lua != 0).then_some(fi.pc.max(0) as u32),
        });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::Chunked;

    #[test]
    fn chunked_lists_keep_order_across_chunks_and_flatten_exactly() {
        let n = Chunked::<u32>::CHUNK * 2 + 7;
        let mut list = Chunked::new();
        for i in 0..n as u32 {
            list.push(i);
        }
        assert_eq!(list.len(), n);
        assert_eq!(list.chunks.len(), 3);
        assert_eq!(*list.get(Chunked::<u32>::CHUNK), Chunked::<u32>::CHUNK as u32);
        *list.get_mut(n - 1) = 0;
        let flat = list.into_vec(|x| u64::from(x) * 2);
        assert_eq!(flat.len(), n);
        assert_eq!(flat.capacity(), n);
        assert!(flat[..n - 1].iter().enumerate().all(|(i, &x)| x == i as u64 * 2));
        assert_eq!(flat[n - 1], 0);
    }
}
