//! Decoding and validating hostile snapshots never allocates beyond a bound proportional to the
//! input (which the limits bound): counted by a global allocator. The tests of this binary take
//! turns (a lock), so no test's allocations are counted in another's.

use amber_validator::testkit as common;

use amber_validator::snapshot::*;
use amber_validator::{Limits, encode, validate};
use common::{TestCatalog, limits, permanent, sample};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;
static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: defers to the system allocator and only adds bookkeeping on the side.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Ordering::SeqCst) + layout.size();
            PEAK.fetch_max(now, Ordering::SeqCst);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::SeqCst);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

static TURN: Mutex<()> = Mutex::new(());

/// Peak bytes allocated while running `f`, above what was live before.
fn peak_during(f: impl FnOnce()) -> usize {
    let base = CURRENT.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    f();
    PEAK.load(Ordering::SeqCst) - base
}

/// Every decoded byte becomes at most one value or object header in memory; this factor covers
/// the largest in-memory form per input byte plus the checker's bookkeeping.
const BYTES_PER_INPUT_BYTE: usize = 256;
const SLACK: usize = 256 * 1024;

#[test]
fn hostile_inputs_stay_within_the_allocation_bound() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let good = encode(&sample());
    let lim = limits();
    let bound = |len: usize| len * BYTES_PER_INPUT_BYTE + SLACK;
    let mut worst = 0f64;
    let mut check = |bytes: &[u8]| {
        let peak = peak_during(|| {
            let _ = validate(bytes, &lim, &TestCatalog);
        });
        assert!(peak <= bound(bytes.len()), "{} input bytes allocated {peak} bytes", bytes.len());
        worst = worst.max(peak as f64 / bytes.len().max(1) as f64);
    };
    for len in 0..good.len() {
        check(&good[..len]);
    }
    for i in 0..good.len() {
        for v in [0x00, 0x7f, 0x80, 0xff, good[i] ^ 0x40] {
            let mut m = good.clone();
            m[i] = v;
            check(&m);
        }
    }
    // Counts claiming far more than the input holds are refused before allocating.
    let mut huge = good[..9].to_vec();
    huge.extend_from_slice(&[1, 0x80, 0x80, 0x80, 0x80, 0x01]);
    check(&huge);
    // The byte limit caps everything: a large input over the limit is refused at once.
    let big = vec![0u8; 1 << 20];
    let tight = Limits { max_input_bytes: 4096, ..lim.clone() };
    let peak = peak_during(|| {
        let _ = validate(&big, &tight, &TestCatalog);
    });
    assert!(peak < SLACK, "{peak}");
    println!("worst allocation per input byte: {worst:.1}");
}

/// Issue 12's bound: validating a snapshot holds at most three times its size, plus a constant,
/// plus one decoded thread stack (16 bytes a slot, as the restored thread itself takes; at most
/// `max_stack_slots`). Swept over the shapes that make the validator's per-object and
/// per-element structures largest against the input: a million of the smallest object of every
/// kind, and hash parts, arrays and stacks of a million of their smallest elements.
#[test]
fn validation_holds_at_most_three_times_the_snapshot() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    const N: usize = 1_000_000;
    const CONSTANT: usize = 512 * 1024;
    let lim = Limits { max_objects: 8 * N, ..limits() };
    let table = |t: Table| Object::Table(Box::new(t));
    let hash = |keys: &mut dyn FnMut(usize) -> Value| Table {
        hash: (0..1 << 20).map(|i| Some((keys(i), Value::Nil))).collect(),
        ..Table::default()
    };
    let thread = |stack: Vec<Value>| {
        Object::Thread(Box::new(Thread {
            status: ThreadStatus::Dead,
            stack,
            frames: vec![],
            open_upvalues: vec![],
            globals: Value::Object(1),
            namecall: None,
            error: None,
        }))
    };
    // The shapes' objects follow the sample's.
    let base = sample().objects.len() as u32;
    let many = |f: &dyn Fn(usize) -> Object| (0..N).map(f).collect::<Vec<_>>();
    let shapes: Vec<(&str, Vec<Object>)> = vec![
        ("empty strings", many(&|_| Object::String(Bytes::from(&[][..])))),
        ("2-byte strings", many(&|i| Object::String(Bytes::from(&(i as u16).to_le_bytes()[..])))),
        ("3-byte strings", many(&|i| Object::String(Bytes::from(&(i as u32).to_le_bytes()[..3])))),
        ("empty buffers", many(&|_| Object::Buffer(vec![]))),
        ("closed upvalues", many(&|_| Object::Upvalue(Upvalue::Closed(Value::Nil)))),
        ("open upvalues", many(&|_| Object::Upvalue(Upvalue::Open { thread: 0, slot: 0 }))),
        ("proxies", many(&|_| Object::Userdata(Box::new(Userdata { kind: UserdataKind::Proxy, metatable: None })))),
        ("empty tables", many(&|_| table(Table::default()))),
        (
            "C closures",
            many(&|_| {
                Object::CClosure(CClosure {
                    function: permanent("coroutine.wrap#resume"),
                    env: EnvRef::Permanent(0),
                    upvalues: vec![],
                })
            }),
        ),
        (
            "Luau closures",
            many(&|_| {
                Object::LuaClosure(LuaClosure { script: 0, proto: 0, env: EnvRef::Object(1), upvalues: vec![].into() })
            }),
        ),
        ("empty threads", many(&|_| thread(vec![]))),
        ("empty hash nodes", vec![table(Table { hash: vec![None; 4 << 20], ..Table::default() })]),
        ("true keys", vec![table(hash(&mut |_| Value::Boolean(true)))]),
        ("integer keys", vec![table(hash(&mut |i| Value::Number(-(i as f64))))]),
        ("permanent keys", vec![table(hash(&mut |_| Value::Permanent(1)))]),
        ("vector keys", vec![table(hash(&mut |i| Value::Vector([i as f32, 0.0, 0.0])))]),
        ("reference keys", vec![table(hash(&mut |_| Value::Object(1)))]),
        (
            "node-mapped nodes",
            vec![table(Table {
                node_of: Some(vec![u32::MAX; 2 << 20]),
                ..Table { hash: vec![None; 2 << 20], ..Table::default() }
            })],
        ),
        ("nil array slots", vec![table(Table { array: vec![Value::Nil; 4 * N], ..Table::default() })]),
        ("nil stack slots", vec![thread(vec![Value::Nil; N])]),
        (
            // Referred to from behind the validator's pass, by a table after them.
            "referred-back buffers",
            many(&|i| match i {
                i if i + 1 < N => Object::Buffer(vec![]),
                _ => table(Table {
                    array: (0..N as u32 - 1).map(|k| Value::Object(base + k)).collect(),
                    ..Table::default()
                }),
            }),
        ),
        (
            "listed open upvalues",
            many(&|i| match i {
                0 => Object::Thread(Box::new(Thread {
                    status: ThreadStatus::Dead,
                    stack: vec![],
                    frames: vec![],
                    open_upvalues: (base + 1..base + N as u32).collect(),
                    globals: Value::Object(1),
                    namecall: None,
                    error: None,
                })),
                _ => Object::Upvalue(Upvalue::Open { thread: base, slot: i as u32 }),
            }),
        ),
    ];
    let mut worst = (0f64, "");
    for (name, objects) in shapes {
        let stack = objects
            .iter()
            .map(|o| match o {
                Object::Thread(t) => t.stack.len(),
                _ => 0,
            })
            .max()
            .unwrap_or(0);
        let mut s = sample();
        s.objects.extend(objects);
        // Reachable from the globals table (a valid snapshot keeps everything it holds), or
        // not: both are validated in full.
        for reachable in [false, true] {
            let mut s = s.clone();
            let (from, to) = (sample().objects.len() as u32, s.objects.len() as u32);
            if reachable && let Object::Table(g) = &mut s.objects[1] {
                g.array.extend((from..to).map(Value::Object));
                g.insert_hint = -(g.array.len() as i32);
            }
            let bytes = encode(&s);
            drop(s);
            let mut verdict = String::new();
            let peak = peak_during(|| {
                verdict = match validate(&bytes, &lim, &TestCatalog) {
                    Ok(_) => "valid".into(),
                    Err(r) => format!("{:?}", r.diagnostics[0].code),
                }
            });
            let bound = 3 * bytes.len() + CONSTANT + 16 * stack;
            let ratio = peak as f64 / bytes.len() as f64;
            println!(
                "{name:20} reachable: {reachable:5} {:>9} bytes, peak {peak:>9} ({ratio:.2}x) {verdict}",
                bytes.len()
            );
            assert!(peak <= bound, "{name}: {} bytes of snapshot held {peak} bytes (bound {bound})", bytes.len());
            if stack == 0 && ratio > worst.0 {
                worst = (ratio, name);
            }
        }
    }
    println!("worst: {:.2}x the snapshot ({})", worst.0, worst.1);
}
