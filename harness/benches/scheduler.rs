//! Cost of pre-emption: run time with the scheduler's interrupt callback active (budget 1000,
//! resumed after every pre-emption) over run time with no interrupt callback, on the CPU-heavy
//! corpus scripts. Prints ratios; asserts nothing (speed is measured, not tested).
//!
//!     cargo bench -p amber-harness --bench scheduler

use amber_luau::{Budget, Outcome, Script, Vm};
use std::path::Path;
use std::time::{Duration, Instant};

const SCRIPTS: &[&str] = &["cpu_sieve.luau", "cpu_nbody.luau", "cpu_strings.luau"];
const ROUNDS: usize = 7;

fn run_once(script: &Script, preemption: bool) -> (Duration, u64) {
    let vm = Vm::new().expect("vm");
    vm.set_preemption(preemption);
    let mut task = vm.spawn(script).expect("spawn");
    let budget = Budget::ticks(1000);
    let start = Instant::now();
    loop {
        match task.resume(budget).expect("resume") {
            Outcome::Preempted | Outcome::Yielded(_) => continue,
            Outcome::Finished(_) => break,
            other => panic!("{}: {other:?}", script.chunk_name()),
        }
    }
    (start.elapsed(), task.stats().preemptions)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing we need.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus/scripts");
    println!("{:18} {:>12} {:>12} {:>8} {:>12}", "script", "baseline", "scheduled", "ratio", "preemptions");
    let mut ratios = Vec::new();
    for name in SCRIPTS {
        let source = std::fs::read(dir.join(name)).expect("corpus script");
        let script = Script::compile(&source, name).expect("compiles");
        let _ = run_once(&script, true); // warm caches and the allocator
        let (mut base, mut sched) = (Vec::new(), Vec::new());
        let mut preemptions = 0;
        // Interleaved, so drift in machine load hits both sides alike.
        for _ in 0..ROUNDS {
            base.push(run_once(&script, false).0);
            let (t, p) = run_once(&script, true);
            sched.push(t);
            preemptions = p;
        }
        let (b, s) = (median(base), median(sched));
        let ratio = s.as_secs_f64() / b.as_secs_f64();
        ratios.push(ratio);
        println!(
            "{:18} {:>10.1}ms {:>10.1}ms {:>8.3} {:>12}",
            name,
            b.as_secs_f64() * 1e3,
            s.as_secs_f64() * 1e3,
            ratio,
            preemptions
        );
    }
    let geo = ratios.iter().map(|r| r.ln()).sum::<f64>() / ratios.len() as f64;
    println!(
        "geometric mean ratio (scheduled / baseline): {:.3}  (target <= 1.05; median of {ROUNDS} interleaved runs)",
        geo.exp()
    );
}
