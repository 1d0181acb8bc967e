//! The committed snapshot corpus (regenerate with `scripts/gen-corpus.sh`):
//! - every capture in corpus/snapshots is accepted (no false positives);
//! - every mutant in corpus/hostile is refused with the code its mutation class must produce,
//!   and is exactly what that mutation of its source capture gives (reproducible).

use amber_harness::generators::mutations;
use amber_harness::intake::default_limits;
use amber_luau::SourceCatalog;
use amber_validator::{Code, encode, validate};
use std::path::{Path, PathBuf};

fn corpus(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("corpus").join(dir)
}

#[test]
fn every_committed_capture_is_accepted() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus("snapshots"))
        .expect("corpus/snapshots")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "snap"))
        .collect();
    files.sort();
    assert!(files.len() >= 100, "corpus/snapshots has {} captures; run scripts/gen-corpus.sh", files.len());
    let scripts: std::collections::BTreeSet<String> =
        files.iter().filter_map(|p| p.file_name()?.to_str()?.split('.').next().map(str::to_string)).collect();
    let corpus_scripts = std::fs::read_dir(corpus("scripts")).expect("corpus/scripts").count();
    assert_eq!(scripts.len(), corpus_scripts, "every corpus script has captures");
    for f in &files {
        let bytes = std::fs::read(f).expect("readable");
        if let Err(report) = validate(&bytes, &default_limits().unwrap(), &SourceCatalog::embedded_only()) {
            panic!("{} is a capture of the runtime, yet refused:\n{report}", f.display());
        }
    }
}

struct Row {
    file: String,
    snapshot: String,
    class: String,
    index: usize,
    expect: Code,
}

fn manifest() -> Vec<Row> {
    let text = std::fs::read_to_string(corpus("hostile").join("manifest.tsv")).expect("corpus/hostile/manifest.tsv");
    text.lines()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            let (class, index) = f[2].split_once(':').expect("CLASS:INDEX");
            Row {
                file: f[0].to_string(),
                snapshot: f[1].to_string(),
                class: class.to_string(),
                index: index.parse().expect("an index"),
                expect: *Code::ALL
                    .iter()
                    .find(|c| c.as_str() == f[3])
                    .unwrap_or_else(|| panic!("unknown code {}", f[3])),
            }
        })
        .collect()
}

#[test]
fn every_hostile_mutant_is_refused_with_its_code() {
    let rows = manifest();
    assert!(rows.len() >= 300, "corpus/hostile has {} mutants", rows.len());
    let mut codes = std::collections::BTreeSet::new();
    for row in &rows {
        let bytes = std::fs::read(corpus("hostile").join(&row.file)).expect("readable");
        match validate(&bytes, &default_limits().unwrap(), &SourceCatalog::embedded_only()) {
            Ok(_) => panic!("{} ({}) was accepted; it must be refused with {}", row.file, row.class, row.expect),
            Err(report) => assert!(
                report.codes().contains(&row.expect),
                "{} ({}): expected {}, got:\n{report}",
                row.file,
                row.class,
                row.expect
            ),
        }
        codes.insert(row.expect);
    }
    // The frame, yield-point and register-type families are all represented.
    for code in [
        Code::StatusFrames,
        Code::FrameFunction,
        Code::CFrameRole,
        Code::FrameGeometry,
        Code::ThreadTop,
        Code::YieldPointOutOfRange,
        Code::YieldPointKind,
        Code::SignatureMismatch,
        Code::RegisterType,
        Code::MisplacedPosition,
        Code::OpenUpvalueRegister,
        Code::CClosureUpvalues,
        Code::DuplicatePermanent,
        Code::ResumeCycle,
    ] {
        assert!(codes.contains(&code), "no hostile mutant expects {code}");
    }
}

#[test]
fn every_hostile_mutant_is_what_its_mutation_gives() {
    let mut by_snapshot: std::collections::BTreeMap<String, Vec<Row>> = Default::default();
    for row in manifest() {
        by_snapshot.entry(row.snapshot.clone()).or_default().push(row);
    }
    for (snapshot, rows) in by_snapshot {
        let bytes = std::fs::read(corpus("snapshots").join(&snapshot)).expect("the source capture");
        let verified =
            validate(&bytes, &default_limits().unwrap(), &SourceCatalog::embedded_only()).expect("a valid capture");
        let all = mutations::mutants_of(&verified, None);
        for row in rows {
            let m = all
                .iter()
                .filter(|m| m.class == row.class)
                .nth(row.index)
                .unwrap_or_else(|| panic!("{snapshot} has no {}:{}", row.class, row.index));
            assert_eq!(m.expect, Some(row.expect), "{}: the class's expectation changed", row.file);
            let stored = std::fs::read(corpus("hostile").join(&row.file)).expect("readable");
            assert!(
                encode(&m.snapshot) == stored,
                "{} differs from {}:{} of {snapshot}; run scripts/gen-corpus.sh",
                row.file,
                row.class,
                row.index
            );
        }
    }
}
