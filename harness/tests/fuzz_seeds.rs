//! Replays every committed fuzz seed (`corpus/fuzz/<target>/`) through the target's own body
//! (`amber_harness::targets`), on stable Rust without libFuzzer: each must run without a
//! finding (a panic here is the finding, with the seed's path). And the replay is not vacuous:
//! the snapshot targets' seeds reach restore and resume, not only the validator's refusals.

use amber_harness::generators::structured::Structured;
use amber_harness::oracles::safety::{self, Verdict};
use amber_harness::{intake, targets};
use amber_luau::SourceCatalog;
use std::path::{Path, PathBuf};

fn seeds(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus/fuzz").join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    files
}

#[test]
fn every_seed_of_every_target_replays_clean() {
    for target in targets::TARGETS {
        let files = seeds(target);
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

/// How the seeds of a snapshot target fare: (refused, accepted and resumed to an end).
fn verdicts(snapshots: impl Iterator<Item = Vec<u8>>) -> (usize, usize) {
    let (limits, catalog) = (intake::default_limits().unwrap(), SourceCatalog::default());
    let (mut refused, mut resumed) = (0, 0);
    for bytes in snapshots {
        match safety::resume_untrusted(&bytes, &limits, &catalog, targets::MAX_TICKS) {
            Ok(Verdict::Refused) => refused += 1,
            Ok(Verdict::Ended(_)) => resumed += 1,
            Err(finding) => panic!("{finding}"),
        }
    }
    (refused, resumed)
}

#[test]
fn snapshot_seeds_reach_both_verdicts() {
    let (refused, resumed) = verdicts(seeds("snapshot_bytes").iter().map(|f| std::fs::read(f).expect("readable")));
    assert!(refused > 0 && resumed > 0, "snapshot_bytes seeds: {refused} refused, {resumed} resumed");

    let (limits, catalog) = (intake::default_limits().unwrap(), SourceCatalog::default());
    let structured = seeds("snapshot_structured")
        .iter()
        .filter_map(|f| Structured::from_bytes(&std::fs::read(f).expect("readable")).ok())
        .filter_map(|s| s.bytes(&limits, &catalog))
        .collect::<Vec<_>>();
    let (refused, resumed) = verdicts(structured.into_iter());
    assert!(refused > 0 && resumed > 0, "snapshot_structured seeds: {refused} refused, {resumed} resumed");
}
