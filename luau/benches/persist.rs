//! Persistence throughput on three large states: capture+encode and decode+validate+restore,
//! in MB/s and objects/s, with the snapshot size; how restore's time splits between decoding,
//! validating (every check family, compiling the scripts included) and building; and the
//! register dataflow's cost per bytecode instruction on the corpus scripts. Best of 3 runs each.
//! Prints, asserts nothing.
//!
//!     cargo bench -p amber-luau --bench persist

use amber_luau::{Budget, Outcome, RestoreOptions, Script, SourceCatalog, Vm, capture, restore};
use amber_validator::{Limits, bytecode, decode, encode, validate, validate_model};
use std::time::Instant;

fn best_of<T>(runs: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut best = f64::MAX;
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        let v = f();
        best = best.min(t.elapsed().as_secs_f64());
        last = Some(v);
    }
    (best, last.expect("at least one run"))
}

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
    let mut splits = Vec::new();
    for (name, src) in STATES {
        let vm = Vm::new().expect("vm");
        let mut task = vm.spawn(&Script::compile(src, "=bench").expect("compiles")).expect("spawn");
        assert!(matches!(task.resume(Budget::unlimited()).expect("runs"), Outcome::Yielded(_)));

        let (capture_s, (objects, bytes)) = best_of(3, || {
            let snapshot = capture(&task).expect("capture");
            (snapshot.objects.len(), encode(&snapshot))
        });

        let (decode_s, _) = best_of(3, || decode(&bytes, &Limits::default()).expect("decodes"));
        let (checks_s, _) = best_of(3, || {
            let model = decode(&bytes, &Limits::default()).expect("decodes");
            let t = Instant::now();
            let v = validate_model(model, &Limits::default(), &SourceCatalog::embedded_only()).expect("valid");
            (t.elapsed().as_secs_f64(), v)
        });
        let checks_s = checks_s - decode_s; // best_of timed decode too; the inner clock is the checks
        let verified = validate(&bytes, &Limits::default(), &SourceCatalog::embedded_only()).expect("valid");
        let (build_s, _) = best_of(3, || {
            let vm2 = Vm::new().expect("vm");
            let t = restore(&vm2, &verified, RestoreOptions::default()).expect("restore");
            (vm2, t)
        });
        // End to end, as a host restores untrusted bytes.
        let (restore_s, mut restored) = best_of(3, || {
            let vm2 = Vm::new().expect("vm");
            let verified = validate(&bytes, &Limits::default(), &SourceCatalog::embedded_only()).expect("valid");
            let t = restore(&vm2, &verified, RestoreOptions::default()).expect("restore");
            (vm2, t)
        });
        assert!(matches!(restored.1.resume(Budget::unlimited()).expect("runs"), Outcome::Finished(_)));

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
        splits.push((name, decode_s, checks_s.max(0.0), build_s));
    }
    println!(
        "\n{:32} {:>10} {:>10} {:>10} {:>22}",
        "restore splits into", "decode ms", "checks ms", "build ms", "checks / (all three)"
    );
    for (name, d, c, b) in splits {
        println!("{:32} {:>10.1} {:>10.1} {:>10.1} {:>22.3}", name, d * 1e3, c * 1e3, b * 1e3, c / (d + c + b));
    }

    // The register dataflow: yield-point maps with their needs, against parsing alone.
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../corpus/scripts");
    let mut modules = Vec::new();
    for entry in std::fs::read_dir(dir).expect("corpus/scripts") {
        let path = entry.expect("entry").path();
        let source = std::fs::read(&path).expect("readable");
        let script = Script::compile(&source, "=bench").expect("compiles");
        modules.push(script.bytecode().to_vec());
    }
    let instructions: usize = modules
        .iter()
        .map(|m| bytecode::parse(m).expect("parses").protos.iter().map(|p| p.instructions.len()).sum::<usize>())
        .sum();
    let (parse_s, _) =
        best_of(5, || modules.iter().map(|m| bytecode::parse(m).expect("parses").protos.len()).sum::<usize>());
    let (maps_s, steps) = best_of(5, || {
        modules
            .iter()
            .map(|m| bytecode::parse_with_maps(m).expect("maps").1.iter().map(|y| y.dataflow_steps).sum::<usize>())
            .sum::<usize>()
    });
    println!(
        "\nregister dataflow over {} corpus scripts: {} instructions, {:.1} ns per instruction ({:.2} worklist steps each; parsing alone {:.1} ns)",
        modules.len(),
        instructions,
        (maps_s - parse_s) * 1e9 / instructions as f64,
        steps as f64 / instructions as f64,
        parse_s * 1e9 / instructions as f64
    );
}
