//! Proof by execution: the hostile-mutation sweep over the whole bundled corpus. Every capture is
//! accepted, every mutant whose class determines a code gets it, and every accepted mutant is
//! restored and resumed to its end (or its tick budget) in a child process, with Luau's
//! assertions on (test builds define LUAU_ENABLE_ASSERT): zero crashes, traps, panics, hangs or
//! restore refusals. A finding fails the test with the mutant saved under the report directory.

use std::process::Command;

#[test]
fn no_accepted_mutant_crashes_traps_hangs_or_panics() {
    let report = std::env::temp_dir().join(format!("amber-sweep-{}", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_amber"))
        .args(["sweep", "--points", "2", "--hang-seconds", "60", "--report"])
        .arg(&report)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("amber sweep runs");
    let summary = String::from_utf8_lossy(&out.stdout);
    println!("{summary}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "the sweep has findings (saved under {}):\n{summary}", report.display());
    // The sweep is not vacuous: thousands of mutants, most of the accepted ones resumed to an end.
    let line = summary.lines().find(|l| l.contains(" mutants: ")).expect("the summary line");
    let number = |after: &str| -> usize {
        let at = line.find(after).expect("a count");
        line[..at].rsplit(|c: char| !c.is_ascii_digit()).next().unwrap_or("0").parse().unwrap_or(0)
    };
    assert!(number(" mutants:") >= 5000, "{line}");
    assert!(number(" accepted") >= 1000, "{line}");
    let _ = std::fs::remove_dir_all(&report);
}
