//! Test support (feature `testkit`): a hand-assembled script, a catalog that serves it, and a
//! builder of valid snapshots from a list of object specifications. The validator's tests and
//! benchmark use it, and so do the fuzz targets and the harness's tests; it is never part of a
//! build that validates real snapshots.

use crate::snapshot::*;
use crate::{CatalogEntry, Limits, PermanentKind, ScriptCatalog};
use std::collections::BTreeMap;

/// The test script's "source" (any bytes; only its hash matters) and its bytecode: a version-3
/// module, assembled by hand, whose protos have 0, 1, 2 and 3 upvalues.
pub const SOURCE: &[u8] = b"-- amber validator test script\n";

pub fn bytecode() -> Vec<u8> {
    fn varint(out: &mut Vec<u8>, mut v: u32) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }
    let mut out = vec![3u8, 0]; // version 3, no strings
    varint(&mut out, 4);
    for upvalues in 0..4u8 {
        out.extend_from_slice(&[2, 0, upvalues, 0]); // stack 2, params 0, upvalues, not vararg
        varint(&mut out, 1);
        out.extend_from_slice(&(22u32 | 1 << 16).to_le_bytes()); // RETURN 0 1
        varint(&mut out, 0); // constants
        varint(&mut out, 0); // children
        varint(&mut out, 0); // linedefined
        varint(&mut out, 0); // debug name
        out.push(0); // no line info
        out.push(0); // no debug info
    }
    varint(&mut out, 0); // main proto
    out
}

/// Serves the test script by hash; knows nothing else.
pub struct TestCatalog;

impl ScriptCatalog for TestCatalog {
    fn lookup(
        &self,
        hash: &ScriptHash,
        _chunk: &str,
        _embedded: Option<&[u8]>,
        _settings: CompilerSettings,
    ) -> Result<CatalogEntry, String> {
        if *hash == ScriptHash::of(SOURCE) {
            Ok(CatalogEntry { source: SOURCE.to_vec(), bytecode: bytecode() })
        } else {
            Err("not in the test catalog".into())
        }
    }
}

pub const PERMANENTS: &[(&str, PermanentKind)] = &[
    ("@globals", PermanentKind::Table),
    ("string", PermanentKind::Table),
    ("string.format", PermanentKind::Function),
    ("coroutine.resume", PermanentKind::Function),
    ("coroutine.wrap#resume", PermanentKind::CFunction),
    ("print", PermanentKind::Function),
    ("coroutine.yield", PermanentKind::Function),
];

pub fn permanent(name: &str) -> u32 {
    PERMANENTS.iter().position(|(n, _)| *n == name).expect("known permanent") as u32
}

pub fn limits() -> Limits {
    Limits {
        permanents: Some(PERMANENTS.iter().map(|(n, k)| (n.to_string(), *k)).collect::<BTreeMap<_, _>>()),
        codecs: ["vec2".to_string()].into_iter().collect(),
        ..Limits::default()
    }
}

/// A primitive or a reference chosen by the generator; references are resolved modulo the
/// number of referable objects when the snapshot is built.
#[derive(Debug, Clone)]
pub enum ValueSpec {
    Nil,
    Boolean(bool),
    Number(f64),
    Vector([f32; 3]),
    Ref(usize),
    Permanent(usize),
}

#[derive(Debug, Clone)]
pub enum ObjectSpec {
    String(Vec<u8>),
    Table {
        array: Vec<ValueSpec>,
        hash: Vec<(ValueSpec, ValueSpec)>,
        metatable: Option<usize>,
        readonly: bool,
    },
    Closure {
        upvalues: Vec<ValueSpec>,
    },
    /// A `coroutine.wrap` function, with the (dead) coroutine it wraps.
    WrappedCoroutine,
    Buffer(Vec<u8>),
    Proxy {
        metatable: Option<usize>,
    },
    Codec {
        payload: Vec<u8>,
    },
    Coroutine {
        stack: Vec<ValueSpec>,
    },
}

/// A thread whose globals are the proxy table (object 1).
fn thread(status: ThreadStatus, stack: Vec<Value>, frames: Vec<Frame>) -> Thread {
    Thread { status, stack, frames, open_upvalues: vec![], globals: Value::Object(1), namecall: None, error: None }
}

/// A coroutine suspended in `coroutine.yield`, `values` not yet handed to its resumer: what
/// `coroutine.create(coroutine.yield)` resumed with those values leaves.
pub fn yielded_coroutine(values: Vec<Value>) -> Thread {
    let mut stack = vec![Value::Nil, Value::Permanent(permanent("coroutine.yield"))];
    stack.extend(values);
    thread(ThreadStatus::Yielded, stack, vec![Frame::C])
}

/// The yield-point signatures of the test script's protos.
pub fn signature(proto: u32) -> u64 {
    let (_, maps) = crate::bytecode::parse_with_maps(&bytecode()).expect("the test bytecode");
    maps[proto as usize].signature.0
}

/// Builds a valid snapshot: object 0 is the main thread (not started, its function object 2),
/// object 1 the globals proxy table (its array refers to every top-level object so everything
/// is reachable), object 2 the main function (proto 0), then the specified objects (closures
/// followed by their closed upvalues, wrapped coroutines by their coroutine).
pub fn build(specs: &[ObjectSpec]) -> Snapshot {
    let mut objects: Vec<Object> = vec![
        Object::Thread(Box::new(thread(ThreadStatus::NotStarted, vec![Value::Nil, Value::Object(2)], vec![]))),
        Object::Table(Box::new(Table { metatable: None, safeenv: true, ..Table::default() })),
        Object::LuaClosure(LuaClosure { script: 0, proto: 0, env: EnvRef::Object(1), upvalues: vec![].into() }),
    ];
    // First pass: where each spec's object lands (upvalues follow their closure).
    let mut index_of = Vec::with_capacity(specs.len());
    let mut next = objects.len() as u32;
    for s in specs {
        index_of.push(next);
        next += 1 + match s {
            ObjectSpec::Closure { upvalues } => upvalues.len() as u32,
            ObjectSpec::WrappedCoroutine => 1,
            _ => 0,
        };
    }
    let tables: Vec<u32> =
        specs.iter().zip(&index_of).filter(|(s, _)| matches!(s, ObjectSpec::Table { .. })).map(|(_, &i)| i).collect();
    let referable: Vec<u32> = std::iter::once(1).chain(index_of.iter().copied()).collect();
    let resolve = |v: &ValueSpec| match *v {
        ValueSpec::Nil => Value::Nil,
        ValueSpec::Boolean(b) => Value::Boolean(b),
        ValueSpec::Number(n) => Value::Number(n),
        ValueSpec::Vector(v) => Value::Vector(v),
        ValueSpec::Ref(r) => Value::Object(referable[r % referable.len()]),
        ValueSpec::Permanent(p) => Value::Permanent([0u32, 1, 2, 3, 5][p % 5]),
    };
    let table_ref = |m: usize| {
        if tables.is_empty() { Value::Permanent(1) } else { Value::Object(tables[m % tables.len()]) }
    };
    let mut strings_seen = std::collections::HashSet::new();
    for (n, s) in specs.iter().enumerate() {
        match s {
            ObjectSpec::String(bytes) => {
                // Strings are interned: make each unique by its position.
                let mut b = bytes.clone();
                b.extend_from_slice(format!("#{n}").as_bytes());
                strings_seen.insert(b.clone());
                objects.push(Object::String(b.into()));
            }
            ObjectSpec::Table { array, hash, metatable, readonly } => {
                let mut keys = std::collections::HashSet::new();
                let mut nodes: Vec<Option<(Value, Value)>> = Vec::new();
                for (k, v) in hash {
                    let key = match resolve(k) {
                        Value::Nil => continue,
                        Value::Number(x) if x.is_nan() => continue,
                        // -0 and 0 are one key in Luau: keep one spelling (-0 + 0 is +0).
                        Value::Number(x) => Value::Number(x + 0.0),
                        Value::Object(i) => Value::Object(i),
                        other => other,
                    };
                    let id = format!("{key:?}");
                    if !keys.insert(id) {
                        continue;
                    }
                    nodes.push(Some((key, resolve(v))));
                }
                // Node counts are powers of two; unused nodes are holes, spread through the part.
                let size = if nodes.is_empty() { 0 } else { nodes.len().next_power_of_two() };
                let mut hash_part = vec![None; size];
                let stride = if nodes.is_empty() { 1 } else { size / nodes.len() };
                let mut slot = 0;
                for node in nodes {
                    hash_part[slot] = node;
                    slot += stride.max(1);
                }
                let hint = hash_part.len() as i32 / 2;
                objects.push(Object::Table(Box::new(Table {
                    array: array.iter().map(resolve).collect(),
                    node_of: None,
                    insert_hint: if hash_part.is_empty() { -(array.len() as i32) / 2 } else { hint },
                    hash: hash_part,
                    metatable: metatable.map(table_ref),
                    readonly: *readonly,
                    safeenv: false,
                })));
            }
            ObjectSpec::Closure { upvalues } => {
                let me = objects.len() as u32;
                objects.push(Object::LuaClosure(LuaClosure {
                    script: 0,
                    proto: upvalues.len() as u32,
                    env: EnvRef::Object(1),
                    upvalues: (0..upvalues.len() as u32).map(|k| me + 1 + k).collect(),
                }));
                for u in upvalues {
                    objects.push(Object::Upvalue(Upvalue::Closed(resolve(u))));
                }
            }
            ObjectSpec::WrappedCoroutine => {
                let me = objects.len() as u32;
                objects.push(Object::CClosure(CClosure {
                    function: permanent("coroutine.wrap#resume"),
                    env: EnvRef::Permanent(0),
                    upvalues: vec![Value::Object(me + 1)],
                }));
                objects.push(Object::Thread(Box::new(thread(ThreadStatus::Dead, vec![Value::Nil], vec![]))));
            }
            ObjectSpec::Buffer(b) => objects.push(Object::Buffer(b.clone())),
            ObjectSpec::Proxy { metatable } => objects.push(Object::Userdata(Box::new(Userdata {
                kind: UserdataKind::Proxy,
                metatable: metatable.map(table_ref),
            }))),
            ObjectSpec::Codec { payload } => objects.push(Object::Userdata(Box::new(Userdata {
                kind: UserdataKind::Codec { tag: 3, codec: "vec2".into(), payload: payload.clone() },
                metatable: None,
            }))),
            ObjectSpec::Coroutine { stack } => {
                objects.push(Object::Thread(Box::new(yielded_coroutine(stack.iter().map(resolve).collect()))))
            }
        }
    }
    if let Object::Table(globals) = &mut objects[1] {
        globals.array = index_of.iter().map(|&i| Value::Object(i)).collect();
        globals.insert_hint = -(globals.array.len() as i32);
    }
    lay_out_like_luau(&mut objects);
    let mut used: Vec<u32> = objects
        .iter()
        .filter_map(|o| match o {
            Object::LuaClosure(c) => Some(c.proto),
            _ => None,
        })
        .collect();
    used.sort_unstable();
    used.dedup();
    Snapshot {
        header: Header {
            luau_version: "0.745".into(),
            compiler: CompilerSettings::default(),
            enabled_flags: vec![],
            permanents_digest: [9; 32],
        },
        scripts: vec![ScriptEntry {
            hash: ScriptHash::of(SOURCE),
            chunk_name: "=test".into(),
            source: Some(SOURCE.to_vec()),
            signatures: used.into_iter().map(|proto| ProtoSignature { proto, signature: signature(proto) }).collect(),
        }],
        permanents: PERMANENTS.iter().map(|(n, _)| n.to_string()).collect(),
        objects,
        roots: Roots {
            main_thread: 0,
            random_state: 0x1234_5678_9abc_def0,
            globals_layout: vec![Some(b"print".to_vec()), None, Some(b"x".to_vec()), None],
        },
    }
}

/// Puts every table's hash keys where Luau's `luaH_newkey` would, inserting them in order: a key
/// takes its main position when free; a key of another chain sitting there moves to a free node
/// (searched downwards, as `getfreepos` does); otherwise the key takes a free node. Keys hashed
/// by address take free nodes (restore places them anew anyway). Keys Luau keeps in the array
/// part, and vector keys with a NaN component (never keys in Luau), are dropped.
pub fn lay_out_like_luau(objects: &mut [Object]) {
    use crate::validate::table_layout::{in_array_range, main_position};
    for i in 0..objects.len() {
        let Object::Table(t) = &objects[i] else { continue };
        let array = t.array.len();
        let entries: Vec<(Value, Value)> = t
            .hash
            .iter()
            .flatten()
            .filter(|(k, _)| match k {
                Value::Number(n) => !in_array_range(*n, array),
                Value::Vector(v) => !v.iter().any(|c| c.is_nan()),
                _ => true,
            })
            .cloned()
            .collect();
        let size = if entries.is_empty() { 0 } else { entries.len().next_power_of_two() };
        let string = |i: u32| match objects.get(i as usize) {
            Some(Object::String(b)) => Some(b.as_slice()),
            _ => None,
        };
        let mps: Vec<Option<usize>> = entries.iter().map(|(k, _)| main_position(string, k, size)).collect();
        let mut nodes: Vec<Option<usize>> = vec![None; size]; // node -> entry
        let mut free = size;
        let mut take_free = |nodes: &[Option<usize>]| -> usize {
            while free > 0 {
                free -= 1;
                if nodes[free].is_none() {
                    return free;
                }
            }
            unreachable!("a hash part has a node per key")
        };
        for (e, mp) in mps.iter().enumerate() {
            match *mp {
                None => {
                    let f = take_free(&nodes);
                    nodes[f] = Some(e);
                }
                Some(mp) => match nodes[mp] {
                    None => nodes[mp] = Some(e),
                    Some(other) if mps[other] != Some(mp) => {
                        let f = take_free(&nodes);
                        nodes[f] = Some(other);
                        nodes[mp] = Some(e);
                    }
                    Some(_) => {
                        let f = take_free(&nodes);
                        nodes[f] = Some(e);
                    }
                },
            }
        }
        let hash = nodes.iter().map(|n| n.map(|e| entries[e])).collect::<Vec<_>>();
        if let Object::Table(t) = &mut objects[i] {
            t.insert_hint = if size == 0 { -(array as i32) / 2 } else { free as i32 };
            t.hash = hash;
            t.node_of = None;
        }
    }
}

/// A small snapshot with one object of every kind, used as the base of hostile edits.
pub fn sample() -> Snapshot {
    use ValueSpec::*;
    build(&[
        ObjectSpec::String(b"key".to_vec()),
        ObjectSpec::Table {
            array: vec![Number(1.0), Nil, Ref(1), Boolean(true)],
            hash: vec![(Ref(1), Number(-0.0)), (Number(2.5), Vector([1.0, 2.0, 3.0])), (Boolean(false), Permanent(2))],
            metatable: Some(0),
            readonly: false,
        },
        ObjectSpec::Closure { upvalues: vec![Number(f64::NAN), Ref(2)] },
        ObjectSpec::WrappedCoroutine,
        ObjectSpec::Buffer(vec![1, 2, 3]),
        ObjectSpec::Proxy { metatable: Some(0) },
        ObjectSpec::Codec { payload: vec![0, 0, 128, 63] },
        ObjectSpec::Coroutine { stack: vec![Number(f64::INFINITY), Ref(3)] },
    ])
}
