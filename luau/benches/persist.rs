//! Persistence throughput on three large states: capture+encode and decode+validate+restore,
//! in MB/s and objects/s, with the snapshot size. Prints, asserts nothing.
//!
//!     cargo bench -p amber-luau --bench persist

use amber_luau::{Budget, Outcome, RestoreOptions, Script, SourceCatalog, Vm, capture, restore};
use amber_validator::{Limits, encode, validate};
use std::time::Instant;

const STATES: &[(&str, &str)] = &[
    (
        "table of 1M mixed entries",
        r#"
        local t = {}
        for i = 1, 500000 do t[i] = i * 0.5 end
        for i = 1, 500000 do t["k" .. i] = (i % 3 == 0) and true or i end
        coroutine.yield()
        print(#t)
        "#,
    ),
    (
        "10k coroutines, 20-deep stacks",
        r#"
        local cos = {}
        local function deep(n) if n == 0 then coroutine.yield() return 0 end return 1 + deep(n - 1) end
        for i = 1, 10000 do
            local co = coroutine.create(deep)
            coroutine.resume(co, 20)
            cos[i] = co
        end
        coroutine.yield()
        print(#cos)
        "#,
    ),
    (
        "100k closures sharing upvalues",
        r#"
        local fns = {}
        for i = 1, 50000 do
            local shared = i
            fns[2 * i - 1] = function() shared += 1 return shared end
            fns[2 * i] = function() return shared end
        end
        coroutine.yield()
        print(#fns)
        "#,
    ),
];

fn main() {
    println!(
        "{:32} {:>9} {:>11} {:>12} {:>12} {:>14} {:>14}",
        "state", "objects", "bytes", "capture MB/s", "restore MB/s", "capture obj/s", "restore obj/s"
    );
    for (name, src) in STATES {
        let vm = Vm::new().expect("vm");
        let mut task = vm.spawn(&Script::compile(src, "=bench").expect("compiles")).expect("spawn");
        assert!(matches!(task.resume(Budget::unlimited()).expect("runs"), Outcome::Yielded(_)));

        let t0 = Instant::now();
        let snapshot = capture(&task).expect("capture");
        let bytes = encode(&snapshot);
        let capture_s = t0.elapsed().as_secs_f64();
        let objects = snapshot.objects.len();
        drop(snapshot);

        let vm2 = Vm::new().expect("vm");
        let t1 = Instant::now();
        let verified = validate(&bytes, &Limits::default(), &SourceCatalog::embedded_only()).expect("valid");
        let mut restored = restore(&vm2, &verified, RestoreOptions::default()).expect("restore");
        let restore_s = t1.elapsed().as_secs_f64();
        assert!(matches!(restored.resume(Budget::unlimited()).expect("runs"), Outcome::Finished(_)));

        let mb = bytes.len() as f64 / 1e6;
        println!(
            "{:32} {:>9} {:>11} {:>12.1} {:>12.1} {:>14.0} {:>14.0}",
            name,
            objects,
            bytes.len(),
            mb / capture_s,
            mb / restore_s,
            objects as f64 / capture_s,
            objects as f64 / restore_s
        );
    }
}
