//! Replays every committed fuzz seed (`corpus/fuzz/<target>/`) through the target's own body
//! (`amber_harness::targets`), on stable Rust without libFuzzer: each must run without a
//! finding (a panic here is the finding, with the seed's path).

use amber_harness::targets;
use std::path::Path;

#[test]
fn every_seed_of_every_target_replays_clean() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus/fuzz");
    for target in targets::TARGETS {
        let dir = root.join(target);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("entry").path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{target} has no seeds");
        for f in &files {
            let data = std::fs::read(f).expect("readable");
            let outcome = std::panic::catch_unwind(|| targets::run(target, &data));
            match outcome {
                Ok(known) => assert!(known, "{target} is not a target"),
                Err(_) => panic!("{target}: the seed {} is a finding", f.display()),
            }
        }
    }
}
