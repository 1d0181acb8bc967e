//! The end-state digest: a canonical digest of the state reachable from a task's globals, which
//! depends on neither addresses nor hash order.

use amber_validator::snapshot::{Object, Snapshot, Upvalue, UserdataKind, Value};
use std::collections::{HashSet, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};

fn h<T: Hash + ?Sized>(parts: &T) -> u64 {
    let mut s = DefaultHasher::new();
    parts.hash(&mut s);
    s.finish()
}

/// A canonical digest of everything reachable from the main thread's globals: objects are
/// labelled by their contents and, over a few rounds, by the labels of what they refer to, with
/// table entries as an unordered set (so hash order does not matter) and no object index or
/// address involved. Equal states give equal digests in any VM.
pub fn state_digest(s: &Snapshot) -> String {
    let Some(Object::Thread(main)) = s.objects.get(s.roots.main_thread as usize) else {
        return "no main thread".into();
    };
    let n = s.objects.len();
    let mut reachable = vec![false; n];
    let mut queue = VecDeque::new();
    if let Value::Object(g) = main.globals
        && (g as usize) < n
    {
        reachable[g as usize] = true;
        queue.push_back(g);
    }
    while let Some(i) = queue.pop_front() {
        let mut visit = |r: u32| {
            if (r as usize) < n && !reachable[r as usize] {
                reachable[r as usize] = true;
                queue.push_back(r);
            }
        };
        match &s.objects[i as usize] {
            // A key whose value is nil is invisible to the script (`next` and `pairs` skip it,
            // a lookup gives nil) and the collector may or may not have turned it into a dead
            // key yet, depending on when it last ran: it is not part of the observable state.
            Object::Table(t) => {
                let mut value = |v: &Value| {
                    if let Value::Object(r) = v {
                        visit(*r)
                    }
                };
                t.metatable.iter().for_each(&mut value);
                t.array.iter().for_each(&mut value);
                for (k, v) in t.hash.iter().flatten().filter(|(_, v)| !matches!(v, Value::Nil)) {
                    value(k);
                    value(v);
                }
            }
            o => o.for_each_reference(visit),
        }
    }
    let value = |labels: &[u64], v: &Value| -> u64 {
        match *v {
            Value::Nil => h("nil"),
            Value::Boolean(b) => h(&("bool", b)),
            Value::Number(x) => h(&("num", if x == 0.0 { 0 } else { x.to_bits() })),
            Value::Vector(v) => h(&("vec", v.map(f32::to_bits))),
            Value::IterPosition(p) => h(&("iter", p)),
            Value::Object(i) => labels.get(i as usize).copied().unwrap_or(0),
            Value::Permanent(p) => h(&("perm", s.permanents.get(p as usize))),
            Value::LightUserdata { tag, .. } => h(&("lud", tag)),
        }
    };
    let mut labels: Vec<u64> = s
        .objects
        .iter()
        .map(|o| match o {
            Object::String(b) => h(&("str", b)),
            Object::Buffer(b) => h(&("buf", b)),
            Object::Table(t) => h(&("table", t.readonly, t.array.len())),
            Object::LuaClosure(c) => h(&("fn", s.scripts.get(c.script as usize).map(|e| e.hash.0), c.proto)),
            Object::CClosure(c) => h(&("cfn", s.permanents.get(c.function as usize))),
            Object::Upvalue(_) => h("upvalue"),
            Object::Thread(t) => h(&("thread", t.status.name(), t.stack.len(), t.frames.len())),
            Object::Userdata(u) => match &u.kind {
                UserdataKind::Proxy => h("proxy"),
                UserdataKind::Codec { tag, codec, payload } => h(&("ud", tag, codec, payload)),
            },
        })
        .collect();
    for _round in 0..4 {
        let next: Vec<u64> = s
            .objects
            .iter()
            .enumerate()
            .map(|(i, o)| {
                let own = labels[i];
                match o {
                    Object::Table(t) => {
                        let array: Vec<u64> = t.array.iter().map(|v| value(&labels, v)).collect();
                        let mut entries: Vec<(u64, u64)> = t
                            .hash
                            .iter()
                            .flatten()
                            .filter(|(_, v)| !matches!(v, Value::Nil))
                            .map(|(k, v)| (value(&labels, k), value(&labels, v)))
                            .collect();
                        entries.sort_unstable();
                        let meta = t.metatable.as_ref().map(|m| value(&labels, m));
                        h(&(own, array, entries, meta))
                    }
                    Object::LuaClosure(c) => {
                        let ups: Vec<u64> =
                            c.upvalues.iter().map(|&u| labels.get(u as usize).copied().unwrap_or(0)).collect();
                        h(&(own, ups))
                    }
                    Object::CClosure(c) => {
                        let ups: Vec<u64> = c.upvalues.iter().map(|v| value(&labels, v)).collect();
                        h(&(own, ups))
                    }
                    Object::Upvalue(Upvalue::Closed(v)) => h(&(own, value(&labels, v))),
                    Object::Upvalue(Upvalue::Open { thread, slot }) => {
                        let current = match s.objects.get(*thread as usize) {
                            Some(Object::Thread(t)) => t.stack.get(*slot as usize).map(|v| value(&labels, v)),
                            _ => None,
                        };
                        h(&(own, current))
                    }
                    Object::Thread(t) => {
                        let stack: Vec<u64> = t.stack.iter().map(|v| value(&labels, v)).collect();
                        h(&(own, stack, t.error.as_ref().map(|e| value(&labels, e))))
                    }
                    Object::Userdata(u) => h(&(own, u.metatable.as_ref().map(|m| value(&labels, m)))),
                    Object::String(_) | Object::Buffer(_) => own,
                }
            })
            .collect();
        labels = next;
    }
    let root = value(&labels, &main.globals);
    let mut all: Vec<u64> = (0..n).filter(|&i| reachable[i]).map(|i| labels[i]).collect();
    all.sort_unstable();
    let distinct: HashSet<u64> = all.iter().copied().collect();
    format!("{:016x}-{:016x}-{}", root, h(&all), distinct.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use amber_validator::snapshot::*;

    /// A main thread whose globals table holds `entries` in its hash part.
    fn state(entries: Vec<Option<(Value, Value)>>, strings: &[&str]) -> Snapshot {
        let mut objects = vec![
            Object::Thread(Box::new(Thread {
                status: ThreadStatus::Dead,
                stack: vec![Value::Nil],
                frames: vec![],
                open_upvalues: vec![],
                globals: Value::Object(1),
                namecall: None,
                error: None,
            })),
            Object::Table(Box::new(Table { hash: entries, ..Table::default() })),
        ];
        objects.extend(strings.iter().map(|s| Object::String(s.as_bytes().into())));
        Snapshot {
            header: Header {
                luau_version: "0.745".into(),
                compiler: CompilerSettings::default(),
                enabled_flags: vec![],
                permanents_digest: [0; 32],
            },
            scripts: vec![],
            permanents: vec![],
            objects,
            roots: Roots { main_thread: 0, random_state: 0, globals_layout: vec![] },
        }
    }

    #[test]
    fn a_key_left_with_a_nil_value_is_not_state() {
        // `c = nil` leaves key "c" with a nil value until the collector turns it into a dead key,
        // which capture drops: both are the same observable state.
        let a = (Value::Object(2), Value::Number(0.0));
        let kept = state(vec![Some(a), Some((Value::Object(3), Value::Nil))], &["a", "c"]);
        let collected = state(vec![Some(a), None], &["a", "c"]);
        assert_eq!(state_digest(&kept), state_digest(&collected));
        // A live entry is state.
        let live = state(vec![Some(a), Some((Value::Object(3), Value::Boolean(true)))], &["a", "c"]);
        assert_ne!(state_digest(&live), state_digest(&collected));
    }
}
