//! Validation throughput on generated snapshots of 10 thousand, 100 thousand and 1 million
//! objects: time per object (should stay flat: linear scaling) and MB/s, with the per-object
//! ratio of the largest to the smallest (issue 12: within 1.2). Prints, asserts nothing.
//!
//!     cargo bench -p amber-validator --bench validate

use amber_validator::testkit as common;

use amber_validator::{encode, validate};
use common::{ObjectSpec, TestCatalog, ValueSpec, build, limits};
use std::time::Instant;

/// A deterministic mix of every object kind (xorshift-driven).
fn specs(n: usize) -> Vec<ObjectSpec> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x as usize
    };
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let v = |r: usize| match r % 5 {
            0 => ValueSpec::Number(r as f64 * 0.5),
            1 => ValueSpec::Boolean(r.is_multiple_of(2)),
            2 => ValueSpec::Nil,
            _ => ValueSpec::Ref(r),
        };
        out.push(match next() % 8 {
            0 | 1 => ObjectSpec::String(format!("s{}", next() % 1000).into_bytes()),
            2 | 3 => ObjectSpec::Table {
                array: (0..4).map(|_| v(next())).collect(),
                hash: (0..3).map(|i| (ValueSpec::Number(i as f64), v(next()))).collect(),
                metatable: None,
                readonly: false,
            },
            4 => ObjectSpec::Closure { upvalues: vec![v(next()), v(next())] },
            5 => ObjectSpec::Buffer(vec![0; 16]),
            6 => ObjectSpec::Proxy { metatable: None },
            _ => ObjectSpec::WrappedCoroutine,
        });
    }
    out
}

/// Rounds per size, interleaved across the sizes (the machine's speed drifts by a quarter
/// between runs minutes apart; interleaving keeps the sizes comparable).
const ROUNDS: usize = 7;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let limits = limits();
    let snapshots: Vec<(usize, Vec<u8>)> = [10_000usize, 100_000, 1_000_000]
        .iter()
        .map(|&n| {
            let snapshot = build(&specs(n));
            (snapshot.objects.len(), encode(&snapshot))
        })
        .collect();
    let (mut validate_s, mut decode_s) = (vec![Vec::new(); 3], vec![Vec::new(); 3]);
    for _ in 0..ROUNDS {
        for (k, (_, bytes)) in snapshots.iter().enumerate() {
            let start = Instant::now();
            let verified = validate(bytes, &limits, &TestCatalog).unwrap_or_else(|r| panic!("{r}"));
            validate_s[k].push(start.elapsed().as_secs_f64());
            std::hint::black_box(verified);
            let start = Instant::now();
            let decoded = amber_validator::decode(bytes, &limits).expect("decodes");
            decode_s[k].push(start.elapsed().as_secs_f64());
            drop(std::hint::black_box(decoded));
            // The decoded model is a million small blocks; glibc merges them into its free lists
            // at the next large request, 80 ms for the largest model. Made here, untimed, that
            // request keeps the merge out of the next size's validation (which it otherwise
            // inflated from 3 ms to 80 in some runs, before and after the sparse index).
            drop(std::hint::black_box(Vec::<u8>::with_capacity(1 << 16)));
        }
    }
    println!(
        "{:>10} {:>12} {:>10} {:>12} {:>16} {:>10}",
        "objects", "bytes", "ms", "ns/object", "decode ns/obj", "MB/s"
    );
    let mut per_object = Vec::new();
    for (k, (objects, bytes)) in snapshots.iter().enumerate() {
        let (v, d) = (median(&mut validate_s[k]), median(&mut decode_s[k]));
        per_object.push(v * 1e9 / *objects as f64);
        println!(
            "{:>10} {:>12} {:>10.1} {:>12.1} {:>16.1} {:>10.1}",
            objects,
            bytes.len(),
            v * 1e3,
            v * 1e9 / *objects as f64,
            d * 1e9 / *objects as f64,
            bytes.len() as f64 / v / 1e6
        );
    }
    println!(
        "per-object cost, a million objects against ten thousand: {:.2}x (medians of {ROUNDS} interleaved rounds)",
        per_object[2] / per_object[0]
    );
}
