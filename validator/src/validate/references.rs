//! References: every reference in range and of the type its slot requires, in one pass over
//! the objects, with, for each string, the first string with the same bytes (for duplicate keys).

use super::{Context, obj, table_layout, value_text};
use crate::bits::Marks;
use crate::contract::{self, UpvalueRule};
use crate::diagnostics::{Code, ObjectPath, Segment, Sink};
use crate::limits::PermanentKind;
use crate::snapshot::*;
use std::collections::HashMap;

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

/// The references family: [`Walker::new`] checks strings and permanents, [`Walker::object`]
/// each object as the validator's one pass over them reaches it, [`Walker::finish`] the roots.
pub(crate) struct Walker<'c, 'a> {
    ctx: &'c Context<'a>,
    /// For each string with the same bytes as an earlier one: the first (a snapshot with any is
    /// refused, so this is empty but for refused ones). Luau interns strings, so equal bytes are
    /// one key.
    string_canon: HashMap<u32, u32>,
}

impl<'c, 'a> Walker<'c, 'a> {
    fn key_text(s: &SnapshotView, v: &Value) -> String {
        match v {
            Value::Object(i) => match (s.kind(*i), s.string(*i)) {
                (_, Some(bytes)) if bytes.len() <= 64 => format!("{:?}", String::from_utf8_lossy(bytes)),
                (Some(k), _) => format!("{}#{i}", k.name()),
                (None, _) => format!("object #{i}"),
            },
            other => value_text(other),
        }
    }

    /// Checks one value in a slot.
    fn value(&mut self, sink: &mut Sink, v: &Value, expect: Expect, path: impl FnOnce() -> ObjectPath) {
        match *v {
            Value::Object(i) => match self.ctx.object_kind(i) {
                None => sink.error(
                    Code::ObjectOutOfRange,
                    path(),
                    format!("refers to object #{i}, but the snapshot has {} objects", self.ctx.s.object_count()),
                ),
                Some(kind) => {
                    if expect == Expect::Table && kind != ObjectKind::Table {
                        sink.error(
                            Code::WrongType,
                            path(),
                            format!("must be a table, but object #{i} is a {}", kind.name()),
                        );
                    } else if kind == ObjectKind::Upvalue {
                        sink.error(Code::WrongType, path(), format!("object #{i} is an upvalue, which is not a value"));
                    }
                }
            },
            Value::Permanent(i) => match self.ctx.permanent_kind(i) {
                None => sink.error(
                    Code::PermanentOutOfRange,
                    path(),
                    format!(
                        "refers to permanent #{i}, but the snapshot has {} permanents",
                        self.ctx.s.permanents.len()
                    ),
                ),
                Some(Some(kind)) if expect == Expect::Table && kind != PermanentKind::Table => sink.error(
                    Code::WrongType,
                    path(),
                    format!(
                        "must be a table, but permanent `{}` is a {}",
                        self.ctx.s.permanents[i as usize],
                        kind.name()
                    ),
                ),
                Some(Some(PermanentKind::CFunction)) => sink.error(
                    Code::WrongType,
                    path(),
                    format!("permanent `{}` is a bare C function, not a value", self.ctx.s.permanents[i as usize]),
                ),
                Some(_) if contract::is_identity(&self.ctx.s.permanents[i as usize]) => sink.error(
                    Code::WrongType,
                    path(),
                    format!(
                        "permanent `{}` names the function of run-time C closures, not a value",
                        self.ctx.s.permanents[i as usize]
                    ),
                ),
                Some(_) => {}
            },
            Value::IterPosition(_) if expect != Expect::StackSlot => sink.error(
                Code::MisplacedIterPosition,
                path(),
                "a generic-for position (light userdata tag 128) outside a thread's stack",
            ),
            Value::LightUserdata { tag, .. } => sink.error(
                Code::RawLightUserdata,
                path(),
                format!("raw light userdata (tag {tag}) cannot be restored safely"),
            ),
            _ if expect == Expect::Table => {
                sink.error(Code::WrongType, path(), format!("must be a table, found {}", value_text(v)))
            }
            _ => {}
        }
    }

    pub(crate) fn new(ctx: &'c Context<'a>, sink: &mut Sink) -> Walker<'c, 'a> {
        let mut w = Walker { ctx, string_canon: HashMap::new() };
        w.strings_and_permanents(sink);
        w
    }

    fn strings_and_permanents(&mut self, sink: &mut Sink) {
        let s = self.ctx.s;
        let (canon_map, limit) = (&mut self.string_canon, self.ctx.limits.max_diagnostics);
        super::strings::repeats(s, |b, a| {
            let canon = canon_map.get(&a).copied().unwrap_or(a);
            // Any duplicate refuses the snapshot; the map only makes the duplicate-key findings
            // after it exact, so it stops growing with the findings (a snapshot of a million
            // equal strings would otherwise cost a map of a million entries).
            if canon_map.len() < limit {
                canon_map.insert(b, canon);
            }
            sink.error(
                Code::DuplicateString,
                obj(ObjectKind::String, b),
                format!("same bytes as string#{canon}; Luau strings are interned, so a snapshot holds each once"),
            );
        });
        let mut names: Vec<(&str, u32)> =
            s.permanents.iter().enumerate().map(|(i, n)| (n.as_str(), i as u32)).collect();
        names.sort_unstable();
        for pair in names.windows(2) {
            if pair[0].0 == pair[1].0 {
                sink.error(
                    Code::DuplicatePermanent,
                    ObjectPath::new().with(Segment::Permanent(pair[1].1)),
                    format!("`{}` is also permanent #{}: each permanent is named once", pair[1].0, pair[0].1),
                );
            }
        }
    }

    /// Object `i`.
    pub(crate) fn object(&mut self, sink: &mut Sink, i: u32, o: &ObjectRef<'_>) {
        let s = self.ctx.s;
        if sink.is_full() {
            return;
        }
        {
            let kind = o.kind();
            let here = || obj(kind, i);
            match o {
                ObjectRef::String(_) | ObjectRef::Buffer(_) => {}
                ObjectRef::Table(t) => self.table(sink, i, t),
                ObjectRef::LuaClosure(c) => {
                    if c.script as usize >= s.scripts.len() {
                        sink.error(
                            Code::ScriptOutOfRange,
                            here().with(Segment::Field("script")),
                            format!("names script #{}, but the snapshot has {} scripts", c.script, s.scripts.len()),
                        );
                    }
                    self.value(sink, &c.env.value(), Expect::Table, || here().with(Segment::Field("environment")));
                    for (n, &u) in c.upvalues.iter().enumerate() {
                        self.upvalue_ref(sink, u, || here().with(Segment::Index("upvalue", n as u64)));
                    }
                }
                ObjectRef::CClosure(c) => {
                    match self.ctx.permanent_kind(c.function) {
                        None => sink.error(
                            Code::PermanentOutOfRange,
                            here().with(Segment::Field("function")),
                            format!(
                                "names permanent #{}, but the snapshot has {} permanents",
                                c.function,
                                s.permanents.len()
                            ),
                        ),
                        Some(Some(kind)) if kind != PermanentKind::CFunction && kind != PermanentKind::Function => sink
                            .error(
                                Code::WrongType,
                                here().with(Segment::Field("function")),
                                format!(
                                    "permanent `{}` is a {}, not a C function",
                                    s.permanents[c.function as usize],
                                    kind.name()
                                ),
                            ),
                        _ => {}
                    }
                    self.value(sink, &c.env.value(), Expect::Table, || here().with(Segment::Field("environment")));
                    for (n, v) in c.upvalues.iter().enumerate() {
                        self.value(sink, v, Expect::Any, || here().with(Segment::Index("upvalue", n as u64)));
                    }
                    self.c_closure_upvalues(sink, i, c);
                }
                ObjectRef::Upvalue(Upvalue::Closed(v)) => {
                    self.value(sink, v, Expect::Any, || here().with(Segment::Field("value")));
                }
                &ObjectRef::Upvalue(Upvalue::Open { thread, slot }) => match s.kind(thread) {
                    Some(ObjectKind::Thread) => {
                        let len = s.thread_head(thread).map_or(0, |(_, len)| len);
                        if slot as usize >= len {
                            sink.error(
                                Code::BadUpvalueSlot,
                                here().with(Segment::Field("slot")),
                                format!(
                                    "open upvalue points at slot {slot} of thread#{thread}, whose stack has {len} slots"
                                ),
                            );
                        }
                    }
                    Some(other) => sink.error(
                        Code::BadUpvalueSlot,
                        here().with(Segment::Field("thread")),
                        format!("open upvalue names object #{thread}, a {}, not a thread", other.name()),
                    ),
                    None => sink.error(
                        Code::ObjectOutOfRange,
                        here().with(Segment::Field("thread")),
                        format!(
                            "open upvalue names object #{thread}, but the snapshot has {} objects",
                            s.object_count()
                        ),
                    ),
                },
                ObjectRef::Thread(t) => self.thread(sink, i, t),
                ObjectRef::Userdata(u) => {
                    if let Some(m) = &u.metatable {
                        self.value(sink, m, Expect::Table, || here().with(Segment::Field("metatable")));
                    }
                }
            }
        }
    }

    /// The roots.
    pub(crate) fn finish(mut self, sink: &mut Sink) {
        let s = self.ctx.s;
        match s.kind(s.roots.main_thread) {
            Some(ObjectKind::Thread) => {}
            Some(other) => sink.error(
                Code::BadRoots,
                ObjectPath::new().with(Segment::Roots).with(Segment::Field("main thread")),
                format!("object #{} is a {}, not a thread", s.roots.main_thread, other.name()),
            ),
            None => sink.error(
                Code::BadRoots,
                ObjectPath::new().with(Segment::Roots).with(Segment::Field("main thread")),
                format!("object #{} does not exist ({} objects)", s.roots.main_thread, s.object_count()),
            ),
        }
        self.globals_layout(sink);
    }

    /// The base globals' layout is a hash part: 0 or a power of two of positions, each name at
    /// most once (restore builds a table from it and maps loop positions through it).
    fn globals_layout(&mut self, sink: &mut Sink) {
        let layout = &self.ctx.s.roots.globals_layout;
        let here = || ObjectPath::new().with(Segment::Roots).with(Segment::Field("globals layout"));
        if !layout.is_empty() && !layout.len().is_power_of_two() {
            sink.error(
                Code::GlobalsLayout,
                here(),
                format!("{} positions; a hash part has 0 or a power of two", layout.len()),
            );
        }
        // Sorting borrowed names (no hashing of attacker-chosen bytes): repeats are neighbours.
        let mut names: Vec<(&[u8], usize)> =
            layout.iter().enumerate().filter_map(|(p, n)| n.as_deref().map(|n| (n, p))).collect();
        names.sort_unstable();
        if let Some(pair) = names.windows(2).find(|w| w[0].0 == w[1].0) {
            sink.error(
                Code::GlobalsLayout,
                here().with(Segment::Index("position", pair[1].1 as u64)),
                format!("the global `{}` appears twice", String::from_utf8_lossy(pair[1].0)),
            );
        }
    }

    /// A C closure is one the libraries make at run time, with the upvalues its function reads
    /// unchecked (`contract::run_time_closure`).
    fn c_closure_upvalues(&mut self, sink: &mut Sink, i: u32, c: &CClosure) {
        let s = self.ctx.s;
        let Some(name) = s.permanents.get(c.function as usize) else { return };
        let here = || obj(ObjectKind::CClosure, i);
        let Some(rules) = contract::run_time_closure(name) else {
            sink.error(
                Code::CClosureUpvalues,
                here().with(Segment::Field("function")),
                format!("no library makes C closures of `{name}` at run time (library functions are permanents)"),
            );
            return;
        };
        if rules.len() != c.upvalues.len() {
            sink.error(
                Code::CClosureUpvalues,
                here().with(Segment::Field("upvalues")),
                format!("a closure of `{name}` has {} upvalues, not {}", rules.len(), c.upvalues.len()),
            );
            return;
        }
        let string_len = |v: &Value| match v {
            Value::Object(o) => s.string(*o).map(<[u8]>::len),
            _ => None,
        };
        for (n, (rule, v)) in rules.iter().zip(&c.upvalues).enumerate() {
            let ok = match rule {
                UpvalueRule::Thread => {
                    matches!(v, Value::Object(o) if s.kind(*o) == Some(ObjectKind::Thread))
                }
                UpvalueRule::String => string_len(v).is_some(),
                UpvalueRule::PositionInFirst => match (v, c.upvalues.first().and_then(string_len)) {
                    (Value::Number(p), Some(len)) => p.fract() == 0.0 && *p >= 0.0 && *p <= len as f64 + 1.0,
                    _ => false,
                },
            };
            if !ok {
                let want = match rule {
                    UpvalueRule::Thread => "a thread".to_string(),
                    UpvalueRule::String => "a string".to_string(),
                    UpvalueRule::PositionInFirst => {
                        "an integer position from 0 to one past the end of the string in upvalue 0".to_string()
                    }
                };
                sink.error(
                    Code::CClosureUpvalues,
                    here().with(Segment::Index("upvalue", n as u64)),
                    format!("upvalue {n} of a `{name}` closure must be {want}; it is {}", value_text(v)),
                );
            }
        }
    }

    fn upvalue_ref(&mut self, sink: &mut Sink, u: u32, path: impl FnOnce() -> ObjectPath) {
        match self.ctx.object_kind(u) {
            Some(ObjectKind::Upvalue) => {}
            Some(kind) => {
                sink.error(Code::WrongType, path(), format!("must be an upvalue, but object #{u} is a {}", kind.name()))
            }
            None => sink.error(
                Code::ObjectOutOfRange,
                path(),
                format!("refers to object #{u}, but the snapshot has {} objects", self.ctx.s.object_count()),
            ),
        }
    }

    fn table(&mut self, sink: &mut Sink, i: u32, t: &TableRef<'_>) {
        let here = || obj(ObjectKind::Table, i);
        if let Some(m) = &t.metatable {
            self.value(sink, m, Expect::Table, || here().with(Segment::Field("metatable")));
        }
        for (n, v) in t.array().enumerate() {
            self.value(sink, &v, Expect::Any, || here().with(Segment::Index("array slot", n as u64 + 1)));
        }
        let nodes = t.hash_len();
        if nodes != 0 && !nodes.is_power_of_two() {
            sink.error(
                Code::BadTableShape,
                here().with(Segment::Field("hash part")),
                format!("hash part has {nodes} nodes; Luau node counts are 0 or a power of two"),
            );
        }
        let hint = i64::from(t.insert_hint);
        let hint_ok =
            if nodes > 0 { (0..=nodes as i64).contains(&hint) } else { (-(t.array_len() as i64)..=0).contains(&hint) };
        if !hint_ok {
            sink.error(
                Code::BadTableShape,
                here().with(Segment::Field("insert hint")),
                format!(
                    "insert hint {} outside {}",
                    t.insert_hint,
                    if nodes > 0 {
                        format!("0..={nodes} (the hash part)")
                    } else {
                        format!("-{}..=0 (the array boundary)", t.array_len())
                    }
                ),
            );
        }
        if let Some(map) = t.node_of() {
            let mut used = Marks::new(nodes);
            let mut bad = None;
            for (p, (node, entry)) in map.zip(t.hash()).enumerate() {
                match (node, entry) {
                    (u32::MAX, None) => {}
                    (u32::MAX, Some(_)) => bad = Some(format!("position {p} holds a key but maps to no node")),
                    (_, None) => bad = Some(format!("empty position {p} maps to node {node}")),
                    (node, Some(_)) if node as usize >= nodes => {
                        bad = Some(format!("position {p} maps to node {node} of {nodes}"))
                    }
                    (node, Some(_)) if !used.mark(node) => bad = Some(format!("node {node} is mapped twice")),
                    (_, Some(_)) => {}
                }
            }
            if let Some(why) = bad {
                sink.error(Code::BadTableShape, here().with(Segment::Field("node map")), why);
            }
        }
        // Small tables (the common case) compare keys pairwise; larger ones sort their keys
        // afterwards (no hashing: the keys are the attacker's, and a sort's cost is bounded).
        const SMALL: usize = 16;
        let (mut seen_small, mut seen) = ([KeyId::Other(0); SMALL], 0);
        let mut keys = KeySort::default();
        let small = nodes <= SMALL;
        let mut entries = 0;
        for (n, node) in t.hash().enumerate() {
            let Some((k, v)) = node else { continue };
            entries += 1;
            let snapshot = self.ctx.s;
            let key_path = || here().with(Segment::Key(Self::key_text(snapshot, &k)));
            match k {
                Value::Nil => {
                    sink.error(Code::BadTableShape, here().with(Segment::Index("hash node", n as u64)), "nil key");
                    continue;
                }
                Value::Number(x) if x.is_nan() => {
                    sink.error(Code::BadTableShape, here().with(Segment::Index("hash node", n as u64)), "NaN key");
                    continue;
                }
                _ => {}
            }
            let id = KeyId::of(&k, &self.string_canon);
            if small {
                if seen_small[..seen].contains(&id) {
                    sink.error(Code::BadTableShape, key_path(), "the key appears twice in the hash part");
                }
                // At most `nodes` keys, each in a node of its own.
                if let Some(slot) = seen_small.get_mut(seen) {
                    *slot = id;
                    seen += 1;
                }
            } else {
                keys.push(id);
            }
            self.value(sink, &k, Expect::Any, key_path);
            self.value(sink, &v, Expect::Any, || key_path().with(Segment::Field("value")));
        }
        keys.repeats(|id| {
            if sink.is_full() {
                return;
            }
            let path = match id.value() {
                Some(k) => here().with(Segment::Key(Self::key_text(self.ctx.s, &k))),
                None => here().with(Segment::Field("hash part")),
            };
            sink.error(Code::BadTableShape, path, "the key appears twice in the hash part");
        });
        if let Some((p, why)) = table_layout::problem(self.ctx.s, t, entries) {
            let path = match t.hash().nth(p) {
                Some(Some((k, _))) => here().with(Segment::Key(Self::key_text(self.ctx.s, &k))),
                _ => here().with(Segment::Index("hash position", p as u64)),
            };
            sink.error(Code::HashLayout, path, why);
        }
    }

    fn thread(&mut self, sink: &mut Sink, i: u32, t: &Thread) {
        let here = || obj(ObjectKind::Thread, i);
        self.value(sink, &t.globals, Expect::Table, || here().with(Segment::Field("globals")));
        if let Some(n) = t.namecall {
            match self.ctx.object_kind(n) {
                Some(ObjectKind::String) => {}
                Some(k) => sink.error(
                    Code::WrongType,
                    here().with(Segment::Field("namecall method")),
                    format!("must be a string, but object #{n} is a {}", k.name()),
                ),
                None => sink.error(
                    Code::ObjectOutOfRange,
                    here().with(Segment::Field("namecall method")),
                    format!("refers to object #{n}, but the snapshot has {} objects", self.ctx.s.object_count()),
                ),
            }
        }
        match (&t.error, t.status) {
            (Some(e), ThreadStatus::Errored) => {
                self.value(sink, e, Expect::Any, || here().with(Segment::Field("error value")))
            }
            (None, ThreadStatus::Errored) => sink.error(
                Code::BadThreadShape,
                here().with(Segment::Field("error value")),
                "an errored thread has no error value",
            ),
            (Some(_), status) => sink.error(
                Code::BadThreadShape,
                here().with(Segment::Field("error value")),
                format!("a {} thread carries an error value", status.name()),
            ),
            (None, _) => {}
        }
        for (n, v) in t.stack.iter().enumerate() {
            self.value(sink, v, Expect::StackSlot, || here().with(Segment::Index("stack slot", n as u64)));
        }
        for (n, &u) in t.open_upvalues.iter().enumerate() {
            self.upvalue_ref(sink, u, || here().with(Segment::Index("open upvalue", n as u64)));
        }
    }
}

/// A key's identity for duplicate detection: by bits for numbers and vectors (with -0 and 0 the
/// same key, as in Luau), by index for references.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum KeyId {
    Boolean(bool),
    Number(u64),
    Vector([u32; 3]),
    Object(u32),
    Permanent(u32),
    Other(u64),
}

impl KeyId {
    fn of(v: &Value, string_canon: &HashMap<u32, u32>) -> KeyId {
        match *v {
            Value::Boolean(b) => KeyId::Boolean(b),
            Value::Number(n) => KeyId::Number(if n == 0.0 { 0 } else { n.to_bits() }),
            Value::Vector(v) => KeyId::Vector(v.map(|c| if c == 0.0 { 0 } else { c.to_bits() })),
            Value::Object(i) => KeyId::Object(string_canon.get(&i).copied().unwrap_or(i)),
            Value::Permanent(i) => KeyId::Permanent(i),
            Value::IterPosition(p) => KeyId::Other(u64::from(p)),
            Value::LightUserdata { bits, .. } => KeyId::Other(bits),
            Value::Nil => KeyId::Other(u64::MAX),
        }
    }
}

impl KeyId {
    /// A key with this identity (a string's equality class names its first string).
    fn value(self) -> Option<Value> {
        match self {
            KeyId::Boolean(b) => Some(Value::Boolean(b)),
            KeyId::Number(bits) => Some(Value::Number(f64::from_bits(bits))),
            KeyId::Vector(bits) => Some(Value::Vector(bits.map(f32::from_bits))),
            KeyId::Object(i) => Some(Value::Object(i)),
            KeyId::Permanent(i) => Some(Value::Permanent(i)),
            KeyId::Other(_) => None,
        }
    }
}

/// The keys of a large hash part, split by class so that each sorts in no more than twice the
/// bytes its node takes in the snapshot (at least three: a flag, the key, the value): objects by
/// their equality class and permanents by index in 4 bytes, integers that fit in 4 bytes, other
/// numbers by their bits in 8, vectors in 12 (at least 13 in the snapshot), booleans counted.
/// The other keys (raw light userdata, generic-for positions) are refused wherever they are, so
/// their repeats are not looked for.
#[derive(Default)]
struct KeySort {
    objects: Vec<u32>,
    permanents: Vec<u32>,
    integers: Vec<i32>,
    numbers: Vec<u64>,
    booleans: [usize; 2],
    vectors: Vec<[u32; 3]>,
}

impl KeySort {
    fn push(&mut self, id: KeyId) {
        match id {
            KeyId::Object(i) => self.objects.push(i),
            KeyId::Permanent(i) => self.permanents.push(i),
            KeyId::Number(bits) => match f64::from_bits(bits) {
                n if n.fract() == 0.0 && n >= f64::from(i32::MIN) && n <= f64::from(i32::MAX) => {
                    self.integers.push(n as i32)
                }
                _ => self.numbers.push(bits),
            },
            KeyId::Boolean(b) => self.booleans[usize::from(b)] += 1,
            KeyId::Vector(v) => self.vectors.push(v),
            KeyId::Other(_) => {}
        }
    }

    /// Calls `repeat` with every key equal to one sorted before it (a key present n times, n - 1
    /// times).
    fn repeats(mut self, mut repeat: impl FnMut(KeyId)) {
        fn repeated<T: Ord + Copy>(v: &mut [T], id: impl Fn(T) -> KeyId, repeat: &mut impl FnMut(KeyId)) {
            v.sort_unstable();
            v.windows(2).filter(|w| w[0] == w[1]).for_each(|w| repeat(id(w[1])));
        }
        repeated(&mut self.objects, KeyId::Object, &mut repeat);
        repeated(&mut self.permanents, KeyId::Permanent, &mut repeat);
        repeated(&mut self.integers, |n| KeyId::Number(f64::from(n).to_bits()), &mut repeat);
        repeated(&mut self.numbers, KeyId::Number, &mut repeat);
        for (b, &n) in self.booleans.iter().enumerate() {
            (1..n).for_each(|_| repeat(KeyId::Boolean(b == 1)));
        }
        repeated(&mut self.vectors, KeyId::Vector, &mut repeat);
    }
}
