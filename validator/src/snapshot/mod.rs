//! The snapshot model: everything a suspended task can see, with no bytecode and no pointers.
//!
//! Objects live in one table and refer to each other by index ([`Value::Object`]); library
//! functions, library tables, the base globals and type metatables are not written, they are
//! referred to by name through the permanents table ([`Value::Permanent`]). The binary form is in
//! [`format`] and specified in `docs/FORMAT.md`.

pub mod format;
mod index;
mod skim;
pub mod view;

pub use view::{Function, ObjectRef, SnapshotView, TableRef};

use sha2::{Digest, Sha256};

/// Compiler settings. They change the bytecode (hence yield-point maps), so every snapshot
/// records them and a loader compiles with exactly the recorded ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CompilerSettings {
    /// 0: none, 1: baseline (Luau's default), 2: with inlining.
    pub optimization_level: u8,
    /// 0: none, 1: lines and function names (Luau's default), 2: full.
    pub debug_level: u8,
}

impl Default for CompilerSettings {
    fn default() -> Self {
        CompilerSettings { optimization_level: 1, debug_level: 1 }
    }
}

/// A script's identity: the SHA-256 of its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ScriptHash(pub [u8; 32]);

impl ScriptHash {
    pub fn of(source: &[u8]) -> ScriptHash {
        ScriptHash(Sha256::digest(source).into())
    }

    /// Lower-case hex, the form used for file names in a source directory.
    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl std::fmt::Display for ScriptHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.hex())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub header: Header,
    pub scripts: Vec<ScriptEntry>,
    /// Stable names of permanents (`string.format`, `@globals`, ...), referred to by index.
    pub permanents: Vec<String>,
    pub objects: Vec<Object>,
    pub roots: Roots,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// The Luau release the snapshot was taken under (e.g. "0.745").
    pub luau_version: String,
    pub compiler: CompilerSettings,
    /// The Luau feature flags that were on, sorted (empty under Luau's defaults). Every release
    /// has its own flags, all off by default: what decides is the set that is on.
    pub enabled_flags: Vec<String>,
    /// SHA-256 of the permanent-name registry the snapshot was taken against.
    pub permanents_digest: [u8; 32],
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScriptEntry {
    pub hash: ScriptHash,
    pub chunk_name: String,
    /// The source, when embedded; otherwise a loader supplies it by hash.
    pub source: Option<Vec<u8>>,
    /// The yield-point signature of every proto a closure of this snapshot runs, by proto id
    /// (ascending): the loader compares each with the freshly compiled bytecode's, so a frame's
    /// yield-point index never names a point of other code.
    pub signatures: Vec<ProtoSignature>,
}

/// A proto's yield-point signature as the capturing runtime computed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtoSignature {
    pub proto: u32,
    pub signature: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Roots {
    /// The task's main thread (an object index).
    pub main_thread: u32,
    /// The task's `math.random` state.
    pub random_state: u64,
    /// The base globals as the task saw them when it was taken: one entry per position of
    /// that table's hash part (0 or a power of two), the global's name there or `None`. Restore
    /// compares it with its own base image: the task sees exactly these names (others are
    /// hidden), and a loop over the globals in progress continues at the same positions.
    pub globals_layout: Vec<Option<Vec<u8>>>,
}

/// A value in a slot (table entry, stack slot, upvalue, ...).
#[derive(Debug, Clone, Copy)]
pub enum Value {
    Nil,
    Boolean(bool),
    Number(f64),
    Vector([f32; 3]),
    /// A generic-for position (light userdata tag 128): next index into the table's
    /// array-then-hash parts. Only valid in a thread's stack.
    IterPosition(u32),
    /// An object of this snapshot, by index.
    Object(u32),
    /// A permanent, by index into the permanents table.
    Permanent(u32),
    /// A raw light userdata (tag, pointer bits). Representable so that the sandbox check can
    /// name it; never valid.
    LightUserdata {
        tag: u8,
        bits: u64,
    },
}

/// Equality by bits, so that equal models encode to equal bytes (NaN equals itself, -0 does
/// not equal 0).
impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        use Value::*;
        match (self, other) {
            (Nil, Nil) => true,
            (Boolean(a), Boolean(b)) => a == b,
            (Number(a), Number(b)) => a.to_bits() == b.to_bits(),
            (Vector(a), Vector(b)) => a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()),
            (IterPosition(a), IterPosition(b)) => a == b,
            (Object(a), Object(b)) => a == b,
            (Permanent(a), Permanent(b)) => a == b,
            (LightUserdata { tag: t1, bits: b1 }, LightUserdata { tag: t2, bits: b2 }) => t1 == t2 && b1 == b2,
            _ => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    /// A string's bytes: short ones inside the object itself (most strings of a state are keys
    /// and names), so a million-string state is not a million allocations.
    String(Bytes),
    /// Boxed, like threads and userdata: a model is mostly small objects (strings, closures,
    /// upvalues), and the enum is as large as its largest variant (120 bytes unboxed, 56 boxed).
    Table(Box<Table>),
    LuaClosure(LuaClosure),
    CClosure(CClosure),
    Upvalue(Upvalue),
    Thread(Box<Thread>),
    Userdata(Box<Userdata>),
    Buffer(Vec<u8>),
}

/// A fixed-length list kept inside its owner up to `N` items and on the heap beyond. A state is
/// mostly small objects (keys, names, closures with a few upvalues): with their items inline,
/// a million of them are not a million allocations, and the list is no larger than a `Vec`.
#[derive(Clone)]
pub struct SmallSlice<T: Copy + Default, const N: usize>(SmallRepr<T, N>);

#[derive(Clone)]
enum SmallRepr<T, const N: usize> {
    Inline { len: u8, items: [T; N] },
    Heap(Box<[T]>),
}

/// A string's bytes (inline up to 38, no larger than a `Vec`).
pub type Bytes = SmallSlice<u8, 38>;

/// Object indices of a Luau closure's upvalues (inline up to 5).
pub type UpvalueRefs = SmallSlice<u32, 5>;

impl<T: Copy + Default, const N: usize> SmallSlice<T, N> {
    /// The longest list kept inline.
    pub const INLINE: usize = N;

    pub fn as_slice(&self) -> &[T] {
        match &self.0 {
            SmallRepr::Inline { len, items } => &items[..usize::from(*len)],
            SmallRepr::Heap(b) => b,
        }
    }

    pub fn as_mut_slice(&mut self) -> &mut [T] {
        match &mut self.0 {
            SmallRepr::Inline { len, items } => &mut items[..usize::from(*len)],
            SmallRepr::Heap(b) => b,
        }
    }

    /// A list of `n` items made by `item(0..n)` in order, stopping at the first error.
    #[inline(always)]
    pub fn try_from_fn<E>(n: usize, mut item: impl FnMut(usize) -> Result<T, E>) -> Result<Self, E> {
        if n <= N {
            let mut items = [T::default(); N];
            for (k, slot) in items[..n].iter_mut().enumerate() {
                *slot = item(k)?;
            }
            return Ok(SmallSlice(SmallRepr::Inline { len: n as u8, items }));
        }
        let mut v = Vec::with_capacity(n);
        for k in 0..n {
            v.push(item(k)?);
        }
        Ok(SmallSlice(SmallRepr::Heap(v.into_boxed_slice())))
    }
}

impl<T: Copy + Default, const N: usize> From<&[T]> for SmallSlice<T, N> {
    fn from(b: &[T]) -> Self {
        match Self::try_from_fn(b.len(), |k| Ok::<T, std::convert::Infallible>(b[k])) {
            Ok(s) => s,
            Err(never) => match never {},
        }
    }
}

impl<T: Copy + Default, const N: usize> From<Vec<T>> for SmallSlice<T, N> {
    fn from(v: Vec<T>) -> Self {
        if v.len() <= N { Self::from(v.as_slice()) } else { SmallSlice(SmallRepr::Heap(v.into_boxed_slice())) }
    }
}

impl<T: Copy + Default, const N: usize, const M: usize> From<&[T; M]> for SmallSlice<T, N> {
    fn from(b: &[T; M]) -> Self {
        Self::from(&b[..])
    }
}

impl<T: Copy + Default, const N: usize> FromIterator<T> for SmallSlice<T, N> {
    fn from_iter<I: IntoIterator<Item = T>>(items: I) -> Self {
        Self::from(items.into_iter().collect::<Vec<T>>())
    }
}

impl<'s, T: Copy + Default, const N: usize> IntoIterator for &'s SmallSlice<T, N> {
    type Item = &'s T;
    type IntoIter = std::slice::Iter<'s, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.as_slice().iter()
    }
}

impl<T: Copy + Default, const N: usize> std::ops::Deref for SmallSlice<T, N> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        self.as_slice()
    }
}

impl<T: Copy + Default, const N: usize> std::ops::DerefMut for SmallSlice<T, N> {
    fn deref_mut(&mut self) -> &mut [T] {
        self.as_mut_slice()
    }
}

impl<T: Copy + Default + PartialEq, const N: usize> PartialEq for SmallSlice<T, N> {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<T: Copy + Default + Eq, const N: usize> Eq for SmallSlice<T, N> {}

impl<T: Copy + Default + std::hash::Hash, const N: usize> std::hash::Hash for SmallSlice<T, N> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state)
    }
}

impl<T: Copy + Default + std::fmt::Debug, const N: usize> std::fmt::Debug for SmallSlice<T, N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_slice().fmt(f)
    }
}

// Every object is as large as the largest variant: keep it at 48 bytes (inline strings up to
// 40, closures with an 8-byte environment).
const _: () = assert!(
    std::mem::size_of::<Bytes>() <= 40
        && std::mem::size_of::<UpvalueRefs>() <= 24
        && std::mem::size_of::<Object>() <= 48
);

/// Kinds of objects, for messages and reference checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum ObjectKind {
    String,
    Table,
    LuaClosure,
    CClosure,
    Upvalue,
    Thread,
    Userdata,
    Buffer,
}

impl ObjectKind {
    pub fn name(self) -> &'static str {
        match self {
            ObjectKind::String => "string",
            ObjectKind::Table => "table",
            ObjectKind::LuaClosure => "closure",
            ObjectKind::CClosure => "cclosure",
            ObjectKind::Upvalue => "upvalue",
            ObjectKind::Thread => "thread",
            ObjectKind::Userdata => "userdata",
            ObjectKind::Buffer => "buffer",
        }
    }
}

impl Object {
    pub fn kind(&self) -> ObjectKind {
        match self {
            Object::String(_) => ObjectKind::String,
            Object::Table(_) => ObjectKind::Table,
            Object::LuaClosure(_) => ObjectKind::LuaClosure,
            Object::CClosure(_) => ObjectKind::CClosure,
            Object::Upvalue(_) => ObjectKind::Upvalue,
            Object::Thread(_) => ObjectKind::Thread,
            Object::Userdata(_) => ObjectKind::Userdata,
            Object::Buffer(_) => ObjectKind::Buffer,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    /// The array part, holes included; its length is the table's array size.
    pub array: Vec<Value>,
    /// The hash part in iteration order; `None` is an unused node. Its length is the node count
    /// (0 or a power of two). An entry's value may be nil: a key a suspended loop may still pass
    /// back to `next`.
    pub hash: Vec<Option<(Value, Value)>>,
    pub metatable: Option<Value>,
    pub readonly: bool,
    pub safeenv: bool,
    /// When iteration order differs from node order (a table restored with an explicit order):
    /// the node each iteration position lives at, `u32::MAX` for an empty position. `None`:
    /// position and node are the same.
    pub node_of: Option<Vec<u32>>,
    /// Where the next new key will look for a free node: Luau's `lastfree` (0..=node count)
    /// when the hash part has nodes, else the negated array boundary (`aboundary`, -array
    /// size..=0). It decides where later keys land, hence later iteration order.
    pub insert_hint: i32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LuaClosure {
    /// Index into the script table.
    pub script: u32,
    /// Proto index within the script's bytecode.
    pub proto: u32,
    /// The function environment (a table).
    pub env: EnvRef,
    /// Upvalue objects, one per upvalue of the proto.
    pub upvalues: UpvalueRefs,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CClosure {
    /// The C function, by permanent index (e.g. the function behind `coroutine.wrap` results).
    pub function: u32,
    pub env: EnvRef,
    pub upvalues: Vec<Value>,
}

/// A function's environment: an object or a permanent, which the references family requires to
/// be a table. The format writes it as a value; the decoder refuses any other kind of value
/// (`WrongType`), so a closure holds eight bytes here instead of a sixteen-byte value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvRef {
    Object(u32),
    Permanent(u32),
}

impl EnvRef {
    pub fn value(self) -> Value {
        match self {
            EnvRef::Object(i) => Value::Object(i),
            EnvRef::Permanent(i) => Value::Permanent(i),
        }
    }

    /// The environment a value names, if it names one that can be.
    pub fn of(v: Value) -> Option<EnvRef> {
        match v {
            Value::Object(i) => Some(EnvRef::Object(i)),
            Value::Permanent(i) => Some(EnvRef::Permanent(i)),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Upvalue {
    /// The variable still lives in a suspended frame: stack slot `slot` of thread `thread`.
    Open {
        thread: u32,
        slot: u32,
    },
    Closed(Value),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ThreadStatus {
    /// Created, never resumed: the stack holds the function and its arguments.
    NotStarted,
    /// Suspended by `coroutine.yield`.
    Yielded,
    /// Pre-empted (`LUA_BREAK`): resuming re-executes the top frame's instruction.
    Preempted,
    /// Returned from its function.
    Dead,
    /// Failed; only the error value is kept.
    Errored,
}

impl ThreadStatus {
    /// The statuses by their code in the format (docs/FORMAT.md), in code order.
    const BY_CODE: [ThreadStatus; 5] = [
        ThreadStatus::NotStarted,
        ThreadStatus::Yielded,
        ThreadStatus::Preempted,
        ThreadStatus::Dead,
        ThreadStatus::Errored,
    ];

    /// The status with format code `code`.
    pub fn from_code(code: u8) -> Option<ThreadStatus> {
        Self::BY_CODE.get(usize::from(code)).copied()
    }

    /// This status's format code.
    pub fn code(self) -> u8 {
        Self::BY_CODE.iter().position(|&s| s == self).unwrap_or(0) as u8
    }

    pub fn name(self) -> &'static str {
        match self {
            ThreadStatus::NotStarted => "not started",
            ThreadStatus::Yielded => "yielded",
            ThreadStatus::Preempted => "pre-empted",
            ThreadStatus::Dead => "dead",
            ThreadStatus::Errored => "errored",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Thread {
    pub status: ThreadStatus,
    /// Stack slots from the bottom up to the thread's top.
    pub stack: Vec<Value>,
    /// Call frames, outermost first.
    pub frames: Vec<Frame>,
    /// Open upvalue objects pointing into this thread's stack.
    pub open_upvalues: Vec<u32>,
    /// The thread's globals table.
    pub globals: Value,
    /// Method name a NAMECALL left for the following CALL (a string object).
    pub namecall: Option<u32>,
    /// For an errored thread: the error value.
    pub error: Option<Value>,
}

/// A call frame. Only what cannot be derived is stored: where each frame's function slot and
/// base are, how many results its caller expects and its CallInfo flags all follow from the
/// frames below it and their yield points (see `docs/FORMAT.md`, "Frames").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// A Luau frame suspended at yield point `yield_point` of its closure's proto. `varargs`:
    /// the extra arguments a vararg function keeps below its base (0 for any other proto).
    Lua { yield_point: u32, varargs: u32 },
    /// A C frame; its function is the value in its function slot.
    C,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Userdata {
    pub kind: UserdataKind,
    pub metatable: Option<Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum UserdataKind {
    /// A `newproxy()` userdata.
    Proxy,
    /// Host userdata with tag `tag`, encoded by the host codec named `codec`.
    Codec { tag: u8, codec: String, payload: Vec<u8> },
}

impl Snapshot {
    /// (script index, proto id) of every proto a Luau closure of the snapshot runs, sorted and
    /// without repeats: the protos whose yield-point signatures a snapshot records.
    pub fn used_protos(&self) -> Vec<(u32, u32)> {
        let mut used: Vec<(u32, u32)> = self
            .objects
            .iter()
            .filter_map(|o| match o {
                Object::LuaClosure(c) => Some((c.script, c.proto)),
                _ => None,
            })
            .collect();
        used.sort_unstable();
        used.dedup();
        used
    }
}

impl Object {
    /// Calls `f` with every object this object refers to (values, upvalue objects, the thread
    /// an open upvalue points into, a thread's open upvalues and namecall string).
    pub fn for_each_reference(&self, mut f: impl FnMut(u32)) {
        let mut value = |v: &Value| {
            if let Value::Object(i) = v {
                f(*i)
            }
        };
        match self {
            Object::String(_) | Object::Buffer(_) => {}
            Object::Table(t) => {
                t.metatable.iter().for_each(&mut value);
                t.array.iter().for_each(&mut value);
                for (k, v) in t.hash.iter().flatten() {
                    value(k);
                    value(v);
                }
            }
            Object::LuaClosure(c) => {
                value(&c.env.value());
                c.upvalues.iter().for_each(|u| value(&Value::Object(*u)));
            }
            Object::CClosure(c) => {
                value(&c.env.value());
                c.upvalues.iter().for_each(value);
            }
            Object::Upvalue(Upvalue::Closed(v)) => value(v),
            Object::Upvalue(Upvalue::Open { thread, .. }) => value(&Value::Object(*thread)),
            Object::Thread(t) => {
                value(&t.globals);
                t.error.iter().for_each(&mut value);
                t.stack.iter().for_each(&mut value);
                t.open_upvalues.iter().for_each(|u| value(&Value::Object(*u)));
                t.namecall.iter().for_each(|n| value(&Value::Object(*n)));
            }
            Object::Userdata(u) => u.metatable.iter().for_each(value),
        }
    }
}
