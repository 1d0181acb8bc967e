//! The fuzz targets' bodies, one function per target in `fuzz/fuzz_targets/`: a generator, an
//! oracle, and a panic when the oracle finds something (libFuzzer records the input). `cargo
//! test` replays every committed seed through these same functions (`tests/fuzz_seeds.rs`), so
//! CI exercises them on stable Rust without libFuzzer.

use crate::generators::programs::{DifferentialCase, Program};
use crate::generators::structured::Structured;
use crate::oracles::{self, safety};
use amber_luau::SourceCatalog;
use amber_validator::Limits;
use arbitrary::{Arbitrary, Unstructured};

/// Tick budget of a resumed snapshot under fuzzing (a slice that never returns is a hang the
/// fuzzer's timeout reports).
pub const MAX_TICKS: u64 = 20_000;

/// The names of the targets, as `fuzz/fuzz_targets/<name>.rs` and `corpus/fuzz/<name>/`.
pub const TARGETS: &[&str] = &["snapshot_bytes", "snapshot_structured", "roundtrip", "bytecode_reader", "differential"];

/// Runs target `name` on one input (for seed replay); `false` for an unknown name.
pub fn run(name: &str, data: &[u8]) -> bool {
    match name {
        "snapshot_bytes" => snapshot_bytes(data),
        "snapshot_structured" => snapshot_structured(data),
        "roundtrip" => roundtrip(data),
        "bytecode_reader" => bytecode_reader(data),
        "differential" => differential(data),
        _ => return false,
    }
    true
}

/// The intake policy of the targets: this runtime's, as `amber validate` applies it.
fn limits() -> Limits {
    thread_local! {
        static LIMITS: Limits = crate::intake::default_limits().expect("the intake policy (a VM for the registry)");
    }
    LIMITS.with(Limits::clone)
}

thread_local! {
    static CATALOG: SourceCatalog = SourceCatalog::default();
    // One VM for every input: each restored task is independent, and the VM must stay usable.
    static VM: amber_luau::Vm = amber_luau::Vm::deterministic().expect("a VM for the fuzz targets");
}

fn resume(bytes: &[u8]) {
    let result = VM.with(|vm| CATALOG.with(|c| safety::resume_untrusted_in(vm, bytes, &limits(), c, MAX_TICKS)));
    if let Err(finding) = result {
        panic!("{finding}");
    }
}

/// Bytes as an untrusted snapshot: decode, validate, and if accepted restore and resume.
pub fn snapshot_bytes(data: &[u8]) {
    resume(data);
}

/// A committed capture, one targeted mutant of it and field-level edits, then as above.
pub fn snapshot_structured(data: &[u8]) {
    let Ok(input) = Structured::from_bytes(data) else { return };
    if let Some(bytes) = CATALOG.with(|c| input.bytes(&limits(), c)) {
        resume(&bytes);
    }
}

/// Decodes re-encode to the same bytes; validation is a pure function of the bytes.
pub fn roundtrip(data: &[u8]) {
    if let Err(e) = CATALOG.with(|c| oracles::roundtrip::check(data, &limits(), c)) {
        panic!("{e}");
    }
}

/// Even first byte: the rest into the bytecode reader. Odd: a generated program, compiled, into
/// the reader, its yield-point maps and the register dataflow.
pub fn bytecode_reader(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    let bytes = if mode % 2 == 0 {
        rest.to_vec()
    } else {
        let source = Program::from_bytes(rest).source();
        amber_luau::compile_bytecode(source.as_bytes(), Default::default()).unwrap_or_default()
    };
    if let Err(e) = oracles::bytecode::check(&bytes) {
        panic!("{e}");
    }
}

/// A generated terminating program persisted at fuzzer-chosen points must agree with its fresh
/// run (the harness's trace oracle).
pub fn differential(data: &[u8]) {
    let Ok(case) = DifferentialCase::arbitrary(&mut Unstructured::new(data)) else { return };
    if let Err(e) = oracles::trace::differential(&case) {
        panic!("{e}");
    }
}

/// Initial seeds for every target (before any campaign minimized them): the committed captures
/// and hostile mutants for the snapshot targets, the corpus scripts' bytecode (mode byte 0) and
/// generated programs (mode byte 1) for the reader, and deterministic random bytes for the
/// generator-driven targets. Returns (target, file name, bytes).
pub fn initial_seeds(corpus: &std::path::Path) -> Vec<(&'static str, String, Vec<u8>)> {
    let mut out = Vec::new();
    let files = |dir: &str| -> Vec<std::path::PathBuf> {
        let mut v: Vec<_> = std::fs::read_dir(corpus.join(dir))
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        v.sort();
        v
    };
    for path in files("snapshots").into_iter().chain(files("hostile")) {
        if path.extension().is_some_and(|e| e == "snap")
            && let Ok(bytes) = std::fs::read(&path)
        {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            out.push(("snapshot_bytes", name.clone(), bytes.clone()));
            out.push(("roundtrip", name, bytes));
        }
    }
    for path in files("scripts") {
        if let Ok(source) = std::fs::read(&path)
            && let Some(bytecode) = amber_luau::compile_bytecode(&source, Default::default())
        {
            let name = path.file_stem().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            out.push(("bytecode_reader", format!("{name}.bytecode"), [&[0u8][..], &bytecode].concat()));
        }
    }
    let mut rng = crate::generators::SplitMix(0x5eed);
    let mut random = |len: usize| -> Vec<u8> { (0..len).map(|_| rng.next_u64() as u8).collect() };
    for k in 0..32 {
        out.push(("bytecode_reader", format!("program-{k}"), [&[1u8][..], &random(64)].concat()));
        out.push(("differential", format!("program-{k}"), random(96)));
        out.push(("snapshot_structured", format!("mutation-{k}"), random(24)));
    }
    out
}
