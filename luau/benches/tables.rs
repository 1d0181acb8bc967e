//! Table speed around explicit iteration orders: iteration over a 1-million-entry hash table
//! with and without an attached explicit order, and plain insert/lookup. Prints, asserts
//! nothing.
//!
//!     cargo bench -p amber-luau --bench tables

use amber_luau::{Budget, Outcome, RestoreOptions, Script, SourceCatalog, Value, Vm, capture, restore};
use amber_validator::{Limits, encode, validate};
use std::time::Instant;

const BUILD: &str = r#"
local t = {}
for i = 1, 1000000 do t["k" .. i] = i end
data = t
"#;

/// Keys hashed by address: after a restore their captured order needs an explicit order.
const BUILD_ADDRESS_KEYED: &str = r#"
local t = {}
for i = 1, 1000000 do t[{}] = i end
data = t
"#;

const ITERATE: &str = r#"
local t = data
local clock = os.clock
local best = math.huge
for round = 1, 5 do
    local start = clock()
    local s = 0
    for k, v in pairs(t) do s += v end
    local took = clock() - start
    if took < best then best = took end
end
return best
"#;

const INSERT_LOOKUP: &str = r#"
local clock = os.clock
local best_insert, best_lookup = math.huge, math.huge
for round = 1, 5 do
    local t = {}
    local start = clock()
    for i = 1, 300000 do t["k" .. i] = i end
    for i = 1, 300000 do t[i] = i end
    local mid = clock()
    local s = 0
    for r = 1, 3 do
        for i = 1, 300000 do s += t["k" .. i] + t[i] end
    end
    local finish = clock()
    best_insert = math.min(best_insert, mid - start)
    best_lookup = math.min(best_lookup, finish - mid)
end
return best_insert, best_lookup
"#;

fn seconds(outcome: Outcome) -> Vec<f64> {
    match outcome {
        Outcome::Finished(values) => {
            values.into_iter().filter_map(|v| if let Value::Number(n) = v { Some(n) } else { None }).collect()
        }
        other => panic!("{other:?}"),
    }
}

fn main() {
    // Plain insert and lookup.
    let vm = Vm::new().unwrap();
    vm.set_preemption(false);
    vm.collect_garbage();
    let mut task = vm.spawn(&Script::compile(INSERT_LOOKUP, "=bench").unwrap()).unwrap();
    let il = seconds(task.resume(Budget::unlimited()).unwrap());
    println!("insert 600k keys: {:.1} ms   lookup 1.8M: {:.1} ms", il[0] * 1e3, il[1] * 1e3);

    // Iteration: the table is built, the task yields, then it iterates. "Natural": the same task
    // resumes. "After a restore": the task comes back through a snapshot first; a table keyed
    // by strings is restored at its own node positions, so it needs no explicit order.
    let with_yield = format!("{BUILD}\ncoroutine.yield()\n{ITERATE}");
    let script = Script::compile(with_yield.as_str(), "=bench").unwrap();
    let mut task = vm.spawn(&script).unwrap();
    assert!(matches!(task.resume(Budget::unlimited()).unwrap(), Outcome::Yielded(_)));
    let bytes = encode(&capture(&task).unwrap());
    vm.collect_garbage();
    let natural_s = seconds(task.resume(Budget::unlimited()).unwrap())[0];
    println!("iterate 1M-entry hash table, natural order: {:.1} ms", natural_s * 1e3);
    let verified = validate(&bytes, &Limits::default(), &SourceCatalog::embedded_only()).unwrap();
    let vm2 = Vm::new().unwrap();
    vm2.set_preemption(false);
    let t0 = Instant::now();
    let mut restored = restore(&vm2, &verified, RestoreOptions::default()).unwrap();
    let restore_ms = t0.elapsed().as_secs_f64() * 1e3;
    vm2.collect_garbage();
    let restored_s = seconds(restored.resume(Budget::unlimited()).unwrap())[0];
    println!(
        "iterate the same table after a restore: {:.1} ms (ratio {:.3}; restore took {:.0} ms)",
        restored_s * 1e3,
        restored_s / natural_s,
        restore_ms
    );

    // A restored table keyed by tables carries an explicit iteration order: iterating it goes
    // through the order. Compared with the restored string-keyed table (no order).
    let keyed = format!("{BUILD_ADDRESS_KEYED}\ncoroutine.yield()\n{ITERATE}");
    let mut task = vm.spawn(&Script::compile(keyed.as_str(), "=bench").unwrap()).unwrap();
    assert!(matches!(task.resume(Budget::unlimited()).unwrap(), Outcome::Yielded(_)));
    let bytes = encode(&capture(&task).unwrap());
    drop(task);
    let verified = validate(&bytes, &Limits::default(), &SourceCatalog::embedded_only()).unwrap();
    let vm3 = Vm::new().unwrap();
    vm3.set_preemption(false);
    let mut restored = restore(&vm3, &verified, RestoreOptions::default()).unwrap();
    vm3.collect_garbage();
    let ordered_s = seconds(restored.resume(Budget::unlimited()).unwrap())[0];
    println!(
        "iterate a restored 1M-entry table keyed by tables: {:.1} ms (ratio to the restored string-keyed table {:.3})",
        ordered_s * 1e3,
        ordered_s / restored_s
    );
}
