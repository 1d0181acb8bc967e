//! The safe VM API: [`Vm`] holds one Luau state with the base image, [`Task`] is one script
//! instance running in its own thread, resumed in budgeted time slices.

use crate::ffi;
use crate::flags::FeatureFlags;
use crate::script::Script;
use amber_validator::bytecode::YieldKind;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::{CString, c_char, c_int};
use std::ptr::NonNull;
use std::rc::Rc;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum VmError {
    #[error("cannot create a Luau state (out of memory?)")]
    Create,
    #[error("cannot load {chunk}: {message}")]
    Load { chunk: String, message: String },
    #[error("cannot spawn a task of {chunk}: {message}")]
    Spawn { chunk: String, message: String },
    #[error("task is not resumable: {0}")]
    NotResumable(String),
    #[error("chunk name contains a NUL byte: {0:?}")]
    BadChunkName(String),
    #[error("the base image's `{0}` is not the C function the validator's contract says it is")]
    Contract(String),
    #[error("host library: {0}")]
    HostLibrary(String),
    #[error("globals view: {0}")]
    View(String),
}

/// How long a task may run before it is pre-empted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// The task is pre-empted at the `ticks`-th VM interrupt it reaches after the one it resumes
    /// at (the re-fired interrupt of a pre-empted instruction is not counted twice). At least 1.
    pub ticks: u64,
    /// How many ticks a due pre-emption may wait for a site where the resume chain can break
    /// (it cannot inside a metamethod or a C call such as a sort comparator) before the task is killed.
    pub defer_cap: u64,
    /// Also pre-empt at the first interrupt after any coroutine of the task yields to its
    /// resumer (the harness persists there; yields of the main function end the slice anyway).
    pub after_yields: bool,
}

impl Budget {
    pub const DEFAULT_DEFER_CAP: u64 = 10_000_000;

    pub fn ticks(ticks: u64) -> Budget {
        Budget { ticks: ticks.max(1), defer_cap: Self::DEFAULT_DEFER_CAP, after_yields: false }
    }

    /// Runs until the task finishes, yields, errors or is killed.
    pub fn unlimited() -> Budget {
        Budget::ticks(i64::MAX as u64)
    }

    pub fn with_defer_cap(self, defer_cap: u64) -> Budget {
        Budget { defer_cap, ..self }
    }

    pub fn with_preemption_after_yields(self) -> Budget {
        Budget { after_yields: true, ..self }
    }
}

/// A value handed from a task to the host (results of a finished task, yielded values).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Nil,
    Boolean(bool),
    Number(f64),
    Vector([f32; 3]),
    String(Vec<u8>),
    /// A value of another type, by type name (tables, functions, ... stay inside the VM).
    Other(String),
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Nil => write!(f, "nil"),
            Value::Boolean(b) => write!(f, "{b}"),
            Value::Number(n) => write!(f, "{n}"),
            Value::Vector(v) => write!(f, "{}, {}, {}", v[0], v[1], v[2]),
            Value::String(s) => write!(f, "{}", String::from_utf8_lossy(s)),
            Value::Other(t) => write!(f, "<{t}>"),
        }
    }
}

/// A runtime error of a task: its message and the traceback of the task's main thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptError {
    pub message: String,
    pub traceback: String,
}

/// What one time slice ended with.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The main function returned these values.
    Finished(Vec<Value>),
    /// The main function called `coroutine.yield` with these values; resume continues it.
    Yielded(Vec<Value>),
    /// The budget ran out; the whole resume chain is suspended and resume continues it.
    Preempted,
    Errored(ScriptError),
    /// The scheduler killed the task (uncatchable by the script); the reason says why.
    Killed(KillReason),
}

/// Why a task was killed. Every kill is uncatchable (a `pcall` cannot keep the task alive), ends
/// the task, and leaves the VM and every other task usable.
#[derive(Debug, Clone, PartialEq)]
pub enum KillReason {
    /// A due pre-emption waited more ticks than the budget's defer cap, running where the task
    /// cannot be suspended (a metamethod, a sort comparator, a C call).
    Deferred { cap: u64 },
    /// An allocation would have taken the task's memory category past its limit.
    MemoryLimit { limit: usize, used: usize },
    /// The task ran its total tick budget ([`TaskLimits::max_ticks`]).
    TickLimit { limit: u64 },
    /// The task ran its wall-clock budget ([`TaskLimits::max_time`]).
    TimeLimit { limit: std::time::Duration },
}

impl std::fmt::Display for KillReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KillReason::Deferred { cap } => write!(
                f,
                "task killed: pre-emption deferred for more than {cap} interrupt ticks (running where it cannot be suspended: a metamethod, a sort comparator or another C call)"
            ),
            KillReason::MemoryLimit { limit, used } => {
                write!(f, "task killed: memory limit of {limit} bytes reached ({used} bytes in use)")
            }
            KillReason::TickLimit { limit } => write!(f, "task killed: total budget of {limit} ticks spent"),
            KillReason::TimeLimit { limit } => {
                write!(f, "task killed: wall-clock budget of {:.3} s spent", limit.as_secs_f64())
            }
        }
    }
}

/// Budgets of a whole task, across all its slices (a slice's own budget is a [`Budget`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskLimits {
    /// Interrupt ticks the task may run in all; then it is killed.
    pub max_ticks: Option<u64>,
    /// Time the task may spend running (its slices' wall-clock time summed); then it is
    /// killed. Checked every [`TIME_CHECK_TICKS`] ticks and between slices.
    pub max_time: Option<std::time::Duration>,
}

/// How often a task with a time budget looks at the clock, in interrupt ticks.
pub const TIME_CHECK_TICKS: u64 = 50_000;

/// Where a pre-empted task stopped: the innermost thread's top Lua frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuspendSite {
    pub chunk: String,
    pub line: i32,
    pub proto_id: u32,
    pub yield_point: u32,
    pub pc: u32,
}

/// Counters of a task's scheduling, summed over its slices.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskStats {
    pub slices: u64,
    pub preemptions: u64,
    /// Counted interrupt ticks.
    pub ticks: u64,
    /// Times a due pre-emption had to wait for a yieldable site.
    pub deferrals: u64,
    /// The longest such wait, in ticks.
    pub max_deferred: u64,
}

/// Options of [`Vm::spawn_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpawnOptions {
    /// Memory category the task's allocations are charged to (Luau categories are 8-bit;
    /// category 0 is the base image).
    pub memory_category: u8,
    /// Initial `math.random` state; `None` derives one from the spawn count (deterministic).
    pub random_state: Option<u64>,
    /// Bytes the task's memory category may hold; an allocation past it fails and the task is
    /// killed ([`KillReason::MemoryLimit`]). The limit is the category's: give each limited task
    /// a category of its own (tasks sharing one share its limit).
    pub memory_limit: Option<usize>,
}

impl Default for SpawnOptions {
    fn default() -> Self {
        SpawnOptions { memory_category: 1, random_state: None, memory_limit: None }
    }
}

/// A host codec for one userdata tag: turns the userdata's bytes into a payload and back.
pub trait UserdataCodec {
    fn encode(&self, data: &[u8]) -> Result<Vec<u8>, String>;
    fn decode(&self, payload: &[u8]) -> Result<Vec<u8>, String>;
}

/// What a VM loads a script under: its source hash and the compiler settings (the same source
/// compiled otherwise is other code, loaded apart).
pub(crate) type ScriptKey = (crate::ScriptHash, crate::CompilerSettings);

/// A script loaded into a VM: its anchored main function and its protos by bytecode id.
pub(crate) struct LoadedScript {
    pub fn_ref: c_int,
    pub script: Script,
    pub protos: Vec<usize>,
}

/// One permanent of the registry, with the VM handles capture and restore use.
#[derive(Debug, Clone)]
pub(crate) struct RegistryHandle {
    pub name: String,
    /// The registry kind letter (see `AmberRegistryView` in cpp/amber_image.h).
    pub kind: u8,
    pub object: usize,
    pub function: usize,
    pub continuation: usize,
}

/// Registered codecs by userdata tag: (codec name, codec).
pub(crate) type Codecs = std::collections::BTreeMap<u8, (String, Rc<dyn UserdataCodec>)>;

pub(crate) struct VmInner {
    raw: NonNull<ffi::AmberVm>,
    /// Loaded scripts by source hash and compiler settings.
    pub(crate) loaded: RefCell<HashMap<ScriptKey, LoadedScript>>,
    /// Globals views for tasks restored from base images with fewer globals, and the scripts
    /// loaded against them.
    pub(crate) views: RefCell<crate::globals::Views>,
    /// The base image's globals as tasks see them (a snapshot records the same for its task).
    pub(crate) base_layout: crate::globals::Layout,
    /// Host library functions; the VM calls them through this box (dropped after the VM).
    _host: Box<RefCell<crate::host::HostTable>>,
    /// Proto handle -> (script key, bytecode id), for every loaded script.
    pub(crate) protos: RefCell<crate::address::AddressMap<usize, (ScriptKey, u32)>>,
    pub(crate) codecs: RefCell<Codecs>,
    pub(crate) registry: Vec<RegistryHandle>,
    /// The digest of the registry (snapshot headers record it as information).
    pub(crate) registry_digest: [u8; 32],
    spawned: Cell<u64>,
}

impl VmInner {
    pub(crate) fn ptr(&self) -> *mut ffi::AmberVm {
        self.raw.as_ptr()
    }

    fn take_output(&self) -> Vec<u8> {
        // SAFETY: `raw` is a live AmberVm for as long as any Rc to this VmInner exists.
        let len = unsafe { ffi::amber_vm_output_length(self.ptr()) };
        let mut out = vec![0u8; len];
        // SAFETY: `out` has room for `len` bytes, the length the shim just reported.
        unsafe { ffi::amber_vm_take_output(self.ptr(), out.as_mut_ptr().cast(), len) };
        out
    }
}

impl Drop for VmInner {
    fn drop(&mut self) {
        // SAFETY: the last owner frees the VM exactly once; tasks hold an Rc, so none outlives it.
        unsafe { ffi::amber_vm_free(self.ptr()) };
    }
}

/// One Luau global state: the sandboxed, frozen base image (standard libraries without
/// getfenv/setfenv, `print` captured by the host) plus a loader thread for scripts.
///
/// Not `Send`: a Luau state belongs to one OS thread. Use one Vm per thread.
pub struct Vm {
    inner: Rc<VmInner>,
}

impl Vm {
    pub fn new() -> Result<Vm, VmError> {
        Vm::with_options(crate::VmOptions::default())
    }

    /// A VM whose clock is fixed: `os.clock()` is 0, `os.time()` is 1700000000 and `os.date`
    /// formats in UTC. Fresh and resumed runs, on any machine, then see the same times (the
    /// differential harness uses it). The permanent registry is the same as `Vm::new`'s.
    pub fn deterministic() -> Result<Vm, VmError> {
        Vm::with_options(crate::VmOptions { deterministic: true, ..Default::default() })
    }

    /// A VM made as `options` say: a fixed clock or the host's, and host libraries added to
    /// the base image (their functions become permanents, as the standard library's are).
    pub fn with_options(options: crate::VmOptions) -> Result<Vm, VmError> {
        FeatureFlags::pinned();
        let standard_names: Vec<String> = if options.libraries.is_empty() {
            Vec::new()
        } else {
            crate::PermanentRegistry::standard()?.names.iter().map(|(n, _)| n.clone()).collect()
        };
        let standard = |name: &str| -> bool { standard_names.iter().any(|n| n == name) };
        let (host, views) = crate::host::HostTable::new(&options.libraries, &standard).map_err(VmError::HostLibrary)?;
        let ctx: *const RefCell<crate::host::HostTable> = &*host;
        // SAFETY: the library views point at names alive for this call; `ctx` points at the boxed
        // host table, which the VM keeps until it is freed (VmInner drops it after the VM).
        let raw = NonNull::new(unsafe {
            ffi::amber_vm_new(
                c_int::from(options.deterministic),
                views.libraries.as_ptr(),
                views.libraries.len() as c_int,
                Some(crate::host::dispatch),
                ctx.cast_mut().cast(),
            )
        })
        .ok_or(VmError::Create)?;
        drop(views);
        // SAFETY: `raw` is live; entries are copied out before any other VM call.
        let count = unsafe { ffi::amber_registry_count(raw.as_ptr()) };
        let mut registry = Vec::with_capacity(count.max(0) as usize);
        for i in 0..count {
            let mut view = ffi::AmberRegistryView {
                name: std::ptr::null(),
                name_length: 0,
                kind: 0,
                object: 0,
                function: 0,
                continuation: 0,
                role: 0,
            };
            // SAFETY: `i` is below the count; `view` is a valid out-pointer.
            if unsafe { ffi::amber_registry_entry(raw.as_ptr(), i, &mut view) } != 0 || view.name.is_null() {
                continue;
            }
            // SAFETY: the name points at `name_length` VM-owned bytes, copied at once.
            let name = unsafe { std::slice::from_raw_parts(view.name.cast::<u8>(), view.name_length) };
            registry.push(RegistryHandle {
                name: String::from_utf8_lossy(name).into_owned(),
                kind: u8::try_from(view.kind).unwrap_or(b'O'),
                object: view.object,
                function: view.function,
                continuation: view.continuation,
            });
            if view.kind != c_int::from(b'A') {
                let name = &registry.last().map(|h| h.name.clone()).unwrap_or_default();
                if view.role != crate::permanents::contract_role(name) {
                    // SAFETY: `raw` is live and owned here; nothing else refers to it yet.
                    unsafe { ffi::amber_vm_free(raw.as_ptr()) };
                    return Err(VmError::Contract(name.clone()));
                }
            }
        }
        if !crate::matcher::layout_agrees() {
            // SAFETY: `raw` is live and owned here; nothing else refers to it yet.
            unsafe { ffi::amber_vm_free(raw.as_ptr()) };
            return Err(VmError::Contract("pattern-matching state layout".into()));
        }
        for name in crate::permanents::CONTRACT_NAMES {
            if !registry.iter().any(|h| h.kind != b'A' && h.name == *name) {
                // SAFETY: `raw` is live and owned here; nothing else refers to it yet.
                unsafe { ffi::amber_vm_free(raw.as_ptr()) };
                return Err(VmError::Contract((*name).to_string()));
            }
        }
        let base_layout = registry
            .iter()
            .find(|h| h.name == "@globals")
            .map_or_else(Vec::new, |h| crate::globals::layout_of(ffi::GcRef(h.object)));
        Ok(Vm {
            inner: Rc::new(VmInner {
                raw,
                loaded: RefCell::new(HashMap::new()),
                views: RefCell::new(crate::globals::Views::default()),
                base_layout,
                _host: host,
                protos: RefCell::new(Default::default()),
                codecs: RefCell::new(std::collections::BTreeMap::new()),
                registry_digest: crate::PermanentRegistry::from_handles(&registry).digest(),
                registry,
                spawned: Cell::new(0),
            }),
        })
    }

    pub(crate) fn inner(&self) -> &Rc<VmInner> {
        &self.inner
    }

    /// Registers a codec for userdata with `tag`: capture encodes such userdata with it and
    /// restore decodes it. Userdata with a tag that has no codec cannot be captured.
    pub fn register_codec(&self, tag: u8, name: &str, codec: Rc<dyn UserdataCodec>) {
        self.inner.codecs.borrow_mut().insert(tag, (name.to_string(), codec));
    }

    /// Names of the registered codecs (the validator's allowlist of codecs).
    pub fn codec_names(&self) -> std::collections::BTreeSet<String> {
        self.inner.codecs.borrow().values().map(|(n, _)| n.clone()).collect()
    }

    /// Loads a script's bytecode into the loader thread once; later calls reuse it.
    pub(crate) fn load(&self, script: &Script) -> Result<c_int, VmError> {
        let key = (script.hash(), script.settings());
        if let Some(l) = self.inner.loaded.borrow().get(&key) {
            return Ok(l.fn_ref);
        }
        let loaded = self.load_bytecode(script, 0)?;
        let fn_ref = loaded.fn_ref;
        self.inner.loaded.borrow_mut().insert(key, loaded);
        Ok(fn_ref)
    }

    /// The globals view a task restored with the base-globals `layout` its snapshot recorded
    /// sees: `None` when that is this image's own layout, else a view made once per layout.
    pub(crate) fn globals_view(&self, layout: &crate::globals::Layout) -> Result<Option<usize>, VmError> {
        if *layout == self.inner.base_layout {
            return Ok(None);
        }
        let mut views = self.inner.views.borrow_mut();
        if let Some(i) = views.views.iter().position(|v| v.layout == *layout) {
            return Ok(Some(i));
        }
        views.views.push(crate::globals::make_view(self.inner.ptr(), layout.clone())?);
        Ok(Some(views.views.len() - 1))
    }

    /// How many globals views this VM has made (one per distinct base-globals layout of the
    /// snapshots restored into it that differed from its own).
    pub fn globals_views(&self) -> usize {
        self.inner.views.borrow().views.len()
    }

    /// The proto handles of `script` loaded against globals view `view` (or the base globals),
    /// loading it once per view.
    pub(crate) fn protos_in(&self, script: &Script, view: Option<usize>) -> Result<Vec<usize>, VmError> {
        self.load(script)?;
        let key = (script.hash(), script.settings());
        let Some(view) = view else {
            let loaded = self.inner.loaded.borrow();
            return Ok(loaded.get(&key).map(|l| l.protos.clone()).unwrap_or_default());
        };
        if let Some(l) = self.inner.views.borrow().loads.get(&(view, key)) {
            return Ok(l.protos.clone());
        }
        let anchor = self.inner.views.borrow().views.get(view).map(|v| v.anchor).unwrap_or(0);
        let loaded = self.load_bytecode(script, anchor)?;
        let protos = loaded.protos.clone();
        self.inner.views.borrow_mut().loads.insert((view, key), loaded);
        Ok(protos)
    }

    /// Loads `script` against the globals anchored at `env_ref` (0: the base globals) and maps
    /// its protos to the script.
    fn load_bytecode(&self, script: &Script, env_ref: c_int) -> Result<LoadedScript, VmError> {
        let key = (script.hash(), script.settings());
        let chunk = CString::new(script.chunk_name()).map_err(|_| VmError::BadChunkName(script.chunk_name().into()))?;
        let bytecode = script.bytecode();
        let mut fn_ref = 0;
        let mut err = [0 as c_char; 1024];
        // SAFETY: all pointers are valid for the call; the shim copies what it keeps.
        let rc = unsafe {
            ffi::amber_vm_load(
                self.inner.ptr(),
                chunk.as_ptr(),
                bytecode.as_ptr().cast(),
                bytecode.len(),
                env_ref,
                &mut fn_ref,
                err.as_mut_ptr(),
                err.len(),
            )
        };
        if rc != 0 {
            return Err(VmError::Load { chunk: script.chunk_name().into(), message: c_buffer_text(&err) });
        }
        let count = script.module().protos.len();
        let mut protos = vec![0usize; count];
        // SAFETY: `protos` has room for `count` handles, the number of protos in the module.
        let n = unsafe { ffi::amber_vm_script_protos(self.inner.ptr(), fn_ref, protos.as_mut_ptr(), count as c_int) };
        if n as usize != count || protos.contains(&0) {
            return Err(VmError::Load {
                chunk: script.chunk_name().into(),
                message: format!("the VM loaded {n} protos, the bytecode has {count}"),
            });
        }
        let mut map = self.inner.protos.borrow_mut();
        for (id, &p) in protos.iter().enumerate() {
            map.insert(p, (key, id as u32));
        }
        Ok(LoadedScript { fn_ref, script: script.clone(), protos })
    }

    /// Spawns a task of `script` with default options.
    pub fn spawn(&self, script: &Script) -> Result<Task, VmError> {
        self.spawn_with(script, SpawnOptions::default())
    }

    /// Spawns a task: a new thread with its own sandboxed proxy globals, running a clone of the
    /// script's main function (all tasks of a script share its prototypes).
    pub fn spawn_with(&self, script: &Script, options: SpawnOptions) -> Result<Task, VmError> {
        let fn_ref = self.load(script)?;
        let mut thread_ref = 0;
        let mut proto = 0usize;
        let mut err = [0 as c_char; 1024];
        // SAFETY: `fn_ref` is an anchor this VM made; the out-pointers are valid.
        let rc = unsafe {
            ffi::amber_task_spawn(
                self.inner.ptr(),
                fn_ref,
                c_int::from(options.memory_category),
                &mut thread_ref,
                &mut proto,
                err.as_mut_ptr(),
                err.len(),
            )
        };
        if rc != 0 {
            return Err(VmError::Spawn { chunk: script.chunk_name().into(), message: c_buffer_text(&err) });
        }
        let n = self.inner.spawned.get();
        self.inner.spawned.set(n + 1);
        let rng = options.random_state.unwrap_or_else(|| splitmix64(n));
        let mut task = Task::new(Rc::clone(&self.inner), thread_ref, script.clone(), ProtoIdentity(proto), rng);
        task.set_memory(options.memory_category, options.memory_limit);
        Ok(task)
    }

    /// Turns the scheduler's interrupt callback off (or back on). Without it no task is ever
    /// pre-empted or killed and budgets are ignored: for hosts that trust their scripts, and for
    /// measuring what the scheduler costs (`cargo bench --bench scheduler`).
    pub fn set_preemption(&self, enabled: bool) {
        // SAFETY: the VM is live and no task is running (resume holds no borrow across calls).
        unsafe { ffi::amber_vm_set_preemption(self.inner.ptr(), c_int::from(enabled)) };
    }

    /// The permanent-name registry of this VM's base image.
    pub fn permanents(&self) -> crate::PermanentRegistry {
        crate::PermanentRegistry::from_handles(&self.inner.registry)
    }

    /// Runs a full garbage collection cycle (between slices; benchmarks use it to measure
    /// without collector work from earlier allocations).
    pub fn collect_garbage(&self) {
        // SAFETY: the VM is live and no task is running.
        unsafe { ffi::amber_vm_collect(self.inner.ptr()) };
    }

    /// Bytes currently charged to a memory category.
    pub fn memory_used(&self, category: u8) -> usize {
        // SAFETY: the VM is live; the shim range-checks the category.
        unsafe { ffi::amber_vm_memory(self.inner.ptr(), c_int::from(category)) }
    }
}

/// Identity of a VM prototype (for checking that tasks share them); not a usable pointer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProtoIdentity(usize);

impl ProtoIdentity {
    /// No identity known (a restored task).
    pub const NONE: ProtoIdentity = ProtoIdentity(0);
}

/// A running instance of a script.
pub struct Task {
    vm: Rc<VmInner>,
    thread_ref: c_int,
    script: Script,
    main_proto: ProtoIdentity,
    rng_state: u64,
    output: Vec<u8>,
    stats: TaskStats,
    done: bool,
    explicit_orders: usize,
    /// The globals view the task was restored into, if any (an index into the VM's views).
    globals_view: Option<usize>,
    /// Its memory category and the limit on it.
    memory_category: u8,
    memory_limit: Option<usize>,
    limits: TaskLimits,
    /// Wall-clock time its slices have run.
    run_time: std::time::Duration,
    /// Where a slice writes its error text and traceback: allocated once per task, not per slice,
    /// because the scheduler resumes tasks millions of times and only the last slice can fail.
    message: Box<[c_char]>,
    trace: Box<[c_char]>,
}

impl Task {
    pub(crate) fn new(
        vm: Rc<VmInner>,
        thread_ref: c_int,
        script: Script,
        main_proto: ProtoIdentity,
        rng_state: u64,
    ) -> Task {
        Task {
            vm,
            thread_ref,
            script,
            main_proto,
            rng_state,
            output: Vec::new(),
            stats: TaskStats::default(),
            done: false,
            explicit_orders: 0,
            globals_view: None,
            memory_category: SpawnOptions::default().memory_category,
            memory_limit: None,
            limits: TaskLimits::default(),
            run_time: std::time::Duration::ZERO,
            message: vec![0; 4096].into_boxed_slice(),
            trace: vec![0; 8192].into_boxed_slice(),
        }
    }

    pub(crate) fn set_explicit_orders(&mut self, n: usize) {
        self.explicit_orders = n;
    }

    pub(crate) fn set_globals_view(&mut self, view: Option<usize>) {
        self.globals_view = view;
    }

    pub(crate) fn set_memory(&mut self, category: u8, limit: Option<usize>) {
        self.memory_category = category;
        self.memory_limit = limit;
    }

    /// Sets the task's total budgets (ticks, wall-clock time), counted from its first slice.
    pub fn set_limits(&mut self, limits: TaskLimits) {
        self.limits = limits;
    }

    /// Wall-clock time the task's slices have run.
    pub fn run_time(&self) -> std::time::Duration {
        self.run_time
    }

    /// Bytes its memory category holds now.
    pub fn memory_used(&self) -> usize {
        // SAFETY: the VM is live; the shim range-checks the category.
        unsafe { ffi::amber_vm_memory(self.vm.ptr(), c_int::from(self.memory_category)) }
    }

    fn kill(&mut self, reason: KillReason) -> Outcome {
        self.done = true;
        Outcome::Killed(reason)
    }

    /// The globals view the task sees instead of the base globals (restored tasks whose
    /// snapshot listed fewer globals than this image has).
    pub(crate) fn globals_view(&self) -> Option<usize> {
        self.globals_view
    }

    pub(crate) fn vm(&self) -> &Rc<VmInner> {
        &self.vm
    }

    pub(crate) fn thread_ref(&self) -> c_int {
        self.thread_ref
    }

    pub fn script(&self) -> &Script {
        &self.script
    }

    pub fn main_proto(&self) -> ProtoIdentity {
        self.main_proto
    }

    pub fn stats(&self) -> TaskStats {
        self.stats
    }

    /// For a restored task: how many of its tables got an explicit iteration order (their
    /// captured order differs from where their keys landed in this VM).
    pub fn explicit_orders(&self) -> usize {
        self.explicit_orders
    }

    /// The task's `math.random` state (swapped into the VM while the task runs).
    pub fn random_state(&self) -> u64 {
        self.rng_state
    }

    /// Whether the task finished, errored or was killed.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Host API: before the task first runs, sets its global `name` to a userdata with `tag`
    /// holding `data` (a host object; capture needs a codec registered for the tag). With
    /// `with_destructor` the userdata carries a native destructor, which capture refuses.
    pub fn set_global_userdata(
        &mut self,
        name: &str,
        tag: u8,
        data: &[u8],
        with_destructor: bool,
    ) -> Result<(), VmError> {
        let cname = CString::new(name).map_err(|_| VmError::BadChunkName(name.into()))?;
        // SAFETY: the thread anchor is live; all pointers are valid for the call.
        let rc = unsafe {
            ffi::amber_task_set_userdata(
                self.vm.ptr(),
                self.thread_ref,
                cname.as_ptr(),
                c_int::from(tag),
                data.as_ptr().cast(),
                data.len(),
                c_int::from(with_destructor),
            )
        };
        if rc != 0 {
            return Err(VmError::Spawn {
                chunk: self.script.chunk_name().into(),
                message: "cannot set a global userdata on a task that has started".into(),
            });
        }
        Ok(())
    }

    /// Takes what the task printed so far.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.output)
    }

    /// Runs one time slice: until the budget's ticks are spent (pre-empted), the task finishes,
    /// yields from its main function, fails, or is killed (a defer cap, its memory limit, or its
    /// total budgets, [`TaskLimits`]).
    pub fn resume(&mut self, budget: Budget) -> Result<Outcome, VmError> {
        if self.done {
            return Err(VmError::NotResumable("it has finished, failed or been killed".into()));
        }
        let mut left = budget.ticks.max(1);
        loop {
            if let Some(limit) = self.limits.max_ticks
                && self.stats.ticks >= limit
            {
                return Ok(self.kill(KillReason::TickLimit { limit }));
            }
            if let Some(limit) = self.limits.max_time
                && self.run_time >= limit
            {
                return Ok(self.kill(KillReason::TimeLimit { limit }));
            }
            // A total budget cuts the slice into parts the host checks between: each part ends in
            // a real pre-emption, which the script cannot tell from running on.
            let mut part = left;
            if let Some(limit) = self.limits.max_ticks {
                part = part.min(limit - self.stats.ticks);
            }
            if self.limits.max_time.is_some() {
                part = part.min(TIME_CHECK_TICKS);
            }
            let before = self.stats.ticks;
            let outcome = self.slice(Budget { ticks: part, ..budget })?;
            let used = self.stats.ticks - before;
            if outcome != Outcome::Preempted || used < part || part == left {
                // Finished, yielded, failed, killed; pre-empted early (after a yield, as the
                // budget asked); or the caller's own budget is spent.
                if outcome == Outcome::Preempted {
                    self.stats.preemptions += 1;
                }
                return Ok(outcome);
            }
            left -= used.min(left - 1);
        }
    }

    /// One call into the VM for at most `budget.ticks` ticks.
    fn slice(&mut self, budget: Budget) -> Result<Outcome, VmError> {
        let slice = ffi::AmberSlice {
            budget: budget.ticks.clamp(1, i64::MAX as u64) as i64,
            defer_cap: budget.defer_cap,
            rng_state: self.rng_state,
            preempt_after_yield: c_int::from(budget.after_yields),
            memory_category: c_int::from(self.memory_category),
            memory_limit: self.memory_limit.unwrap_or(0),
        };
        let mut result = ffi::AmberSliceResult::default();
        // Cleared so that a slice which writes no text reads as empty, not as an earlier one.
        self.message[0] = 0;
        self.trace[0] = 0;
        let started = std::time::Instant::now();
        // SAFETY: the thread anchor belongs to this VM; all buffers are valid for their lengths.
        let status = unsafe {
            ffi::amber_task_resume(
                self.vm.ptr(),
                self.thread_ref,
                &slice,
                &mut result,
                self.message.as_mut_ptr(),
                self.message.len(),
                self.trace.as_mut_ptr(),
                self.trace.len(),
            )
        };
        self.run_time += started.elapsed();
        self.output.extend(self.vm.take_output());
        self.rng_state = result.rng_state;
        self.stats.slices += 1;
        self.stats.ticks += result.ticks;
        self.stats.deferrals += result.deferrals;
        self.stats.max_deferred = self.stats.max_deferred.max(result.max_deferred);
        match status {
            ffi::AMBER_PREEMPTED => Ok(Outcome::Preempted),
            ffi::AMBER_FINISHED | ffi::AMBER_YIELDED => {
                let values = self.take_values(result.nvalues);
                if status == ffi::AMBER_FINISHED {
                    self.done = true;
                    Ok(Outcome::Finished(values))
                } else {
                    Ok(Outcome::Yielded(values))
                }
            }
            ffi::AMBER_ERRORED => {
                self.done = true;
                Ok(Outcome::Errored(ScriptError {
                    message: c_buffer_text(&self.message),
                    traceback: c_buffer_text(&self.trace),
                }))
            }
            ffi::AMBER_KILLED => {
                let reason = match result.kill_kind {
                    ffi::AMBER_KILL_MEMORY => KillReason::MemoryLimit {
                        limit: self.memory_limit.unwrap_or(0),
                        used: usize::try_from(result.kill_value).unwrap_or(usize::MAX),
                    },
                    _ => KillReason::Deferred { cap: budget.defer_cap },
                };
                Ok(self.kill(reason))
            }
            _ => {
                self.done = true;
                Err(VmError::NotResumable(c_buffer_text(&self.message)))
            }
        }
    }

    fn take_values(&mut self, n: c_int) -> Vec<Value> {
        let mut values = Vec::with_capacity(n.max(0) as usize);
        for i in 1..=n {
            let mut v = ffi::AmberValue {
                type_: 0,
                boolean: 0,
                number: 0.0,
                vector: [0.0; 3],
                string: std::ptr::null(),
                length: 0,
                type_name: std::ptr::null(),
            };
            // SAFETY: `i` is within the values the slice reported; `v` is a valid out-pointer.
            if unsafe { ffi::amber_task_value(self.vm.ptr(), self.thread_ref, i, &mut v) } != 0 {
                break;
            }
            values.push(match v.type_ {
                ffi::LUA_TNIL => Value::Nil,
                ffi::LUA_TBOOLEAN => Value::Boolean(v.boolean != 0),
                ffi::LUA_TNUMBER => Value::Number(v.number),
                ffi::LUA_TVECTOR => Value::Vector(v.vector),
                ffi::LUA_TSTRING if !v.string.is_null() => {
                    // SAFETY: the shim reported `length` bytes at `string`, valid until the next
                    // VM call; they are copied at once.
                    Value::String(unsafe { std::slice::from_raw_parts(v.string.cast::<u8>(), v.length) }.to_vec())
                }
                _ => Value::Other(if v.type_name.is_null() {
                    "?".into()
                } else {
                    // SAFETY: type names are static NUL-terminated strings of the VM.
                    unsafe { std::ffi::CStr::from_ptr(v.type_name) }.to_string_lossy().into_owned()
                }),
            });
        }
        // SAFETY: the thread anchor is live; clearing the stack of a suspended thread is allowed.
        unsafe { ffi::amber_task_clear(self.vm.ptr(), self.thread_ref) };
        values
    }

    /// Where the task stopped, when its last slice ended in [`Outcome::Preempted`].
    pub fn suspend_site(&self) -> Option<SuspendSite> {
        let mut site = ffi::AmberSite { bytecode_id: 0, pc: 0, chunk: std::ptr::null(), chunk_length: 0, proto: 0 };
        // SAFETY: the thread anchor is live; `site` is a valid out-pointer.
        if unsafe { ffi::amber_task_site(self.vm.ptr(), self.thread_ref, &mut site) } != 0 {
            return None;
        }
        let chunk = if site.chunk.is_null() {
            String::new()
        } else {
            // SAFETY: the chunk name is a VM string of `chunk_length` bytes, copied at once.
            String::from_utf8_lossy(unsafe { std::slice::from_raw_parts(site.chunk.cast::<u8>(), site.chunk_length) })
                .into_owned()
        };
        let proto_id = u32::try_from(site.bytecode_id).ok()?;
        let pc = u32::try_from(site.pc).ok()?;
        let (key, _) = *self.vm.protos.borrow().get(&site.proto)?;
        let loaded = self.vm.loaded.borrow();
        let script = &loaded.get(&key)?.script;
        let map = script.yield_map(proto_id)?;
        let yield_point = map.find(pc, YieldKind::Interrupt)?;
        let line = script.module().proto(proto_id).and_then(|p| p.line_at(pc)).unwrap_or(0);
        Some(SuspendSite { chunk, line, proto_id, yield_point, pc })
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        // SAFETY: the anchor was made by this VM and is released exactly once.
        unsafe { ffi::amber_vm_unref(self.vm.ptr(), self.thread_ref) };
    }
}

pub(crate) fn c_buffer_text(buf: &[c_char]) -> String {
    let bytes: Vec<u8> = buf.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// SplitMix64: spreads a spawn counter into a full 64-bit generator state.
fn splitmix64(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
