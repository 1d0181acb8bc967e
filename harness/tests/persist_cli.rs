//! `amber persist` and `amber resume` across two processes: output before the snapshot plus
//! output after resuming must equal a fresh run's output, for every corpus script.

use amber_harness::generators;
use std::path::PathBuf;
use std::process::{Command, Output};

fn amber(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_amber")).args(args).output().expect("amber runs")
}

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("amber-persist-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn corpus_scripts() -> Vec<PathBuf> {
    generators::discover_scripts(&[generators::default_corpus_dir()]).unwrap()
}

#[test]
fn every_corpus_script_resumes_in_another_process() {
    let snap = dir().join("corpus.snap");
    let snap = snap.to_str().unwrap();
    for path in corpus_scripts() {
        let p = path.to_str().unwrap();
        // The CPU-heavy scripts run for millions of ticks: persisting near their start is enough.
        let fresh = amber(&["run", p]);
        assert_eq!(fresh.status.code(), Some(0), "{p}");
        let mut persisted = 0;
        for n in [1u64, 3, 7, 60, 900, 20_000] {
            let first = amber(&["persist", p, "--at", &n.to_string(), "-o", snap]);
            if first.status.code() == Some(1) && String::from_utf8_lossy(&first.stderr).contains("finished") {
                break; // the script ended before the n-th pre-emption
            }
            assert_eq!(first.status.code(), Some(0), "{p} at {n}: {}", String::from_utf8_lossy(&first.stderr));
            let second = amber(&["resume", snap]);
            assert_eq!(second.status.code(), Some(0), "{p} at {n}: {}", String::from_utf8_lossy(&second.stderr));
            let mut both = first.stdout.clone();
            both.extend_from_slice(&second.stdout);
            assert_eq!(String::from_utf8_lossy(&both), String::from_utf8_lossy(&fresh.stdout), "{p} persisted at {n}");
            persisted += 1;
        }
        assert!(persisted >= 2, "{p}: persisted at only {persisted} points");
    }
}

#[test]
fn sources_can_stay_out_of_the_snapshot() {
    let d = dir();
    let sources = d.join("src");
    std::fs::create_dir_all(&sources).unwrap();
    let script = sources.join("count.luau");
    std::fs::write(&script, "for i = 1, 5 do print(i) end\n").unwrap();
    let snap = d.join("noembed.snap");
    let (script, snap) = (script.to_str().unwrap(), snap.to_str().unwrap());
    let first = amber(&["persist", script, "--at", "4", "-o", snap, "--no-embed-source"]);
    assert_eq!(first.status.code(), Some(0));
    // Without the source the snapshot is refused, naming the rule.
    let refused = amber(&["resume", snap]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("S001"), "{}", String::from_utf8_lossy(&refused.stderr));
    let second = amber(&["resume", snap, "--source-dir", sources.to_str().unwrap()]);
    assert_eq!(second.status.code(), Some(0), "{}", String::from_utf8_lossy(&second.stderr));
    let mut both = first.stdout.clone();
    both.extend_from_slice(&second.stdout);
    assert_eq!(String::from_utf8_lossy(&both), "1\n2\n3\n4\n5\n");
    // A source whose hash does not match is refused.
    let other = d.join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("count.luau"), "for i = 1, 6 do print(i) end\n").unwrap();
    assert_eq!(amber(&["resume", snap, "--source-dir", other.to_str().unwrap()]).status.code(), Some(1));
}

#[test]
fn persist_at_yield_and_usage_errors() {
    let d = dir();
    let script = d.join("yields.luau");
    std::fs::write(&script, "print('a') coroutine.yield() print('b')\n").unwrap();
    let snap = d.join("yield.snap");
    let (script, snap) = (script.to_str().unwrap(), snap.to_str().unwrap());
    let first = amber(&["persist", script, "--at-yield", "-o", snap]);
    assert_eq!(first.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&first.stdout), "a\n");
    let second = amber(&["resume", snap, "--preempt-every", "1"]);
    assert_eq!(String::from_utf8_lossy(&second.stdout), "b\n");
    // The script ends before the requested pre-emption: exit 1 with a message.
    let late = amber(&["persist", script, "--at", "100000", "-o", snap]);
    assert_eq!(late.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&late.stderr).contains("finished"));
    // Neither --at nor --at-yield, or both: usage errors.
    assert_eq!(amber(&["persist", script, "-o", snap]).status.code(), Some(2));
    assert_eq!(amber(&["persist", script, "--at", "1", "--at-yield", "-o", snap]).status.code(), Some(2));
    assert_eq!(amber(&["resume", "/nonexistent.snap"]).status.code(), Some(2));
    let garbage = d.join("garbage.snap");
    std::fs::write(&garbage, b"AMBRSNAP\x01garbage").unwrap();
    let out = amber(&["resume", garbage.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refused"));
}

/// A 10 MB gsub pre-empted every 1000th tick, persisted mid-match (the matcher's C frame on top),
/// and resumed in another process: the same result as an uninterrupted run.
#[test]
fn a_long_gsub_persists_mid_match_and_resumes_in_another_process() {
    let src = dir().join("gsub10mb.luau");
    std::fs::write(
        &src,
        r#"local s = string.rep("lorem ipsum dolor sit amet, ", 375000)
local r, n = s:gsub("(%a+) (%a+)", "%2 %1")
print(#s, #r, n, r:sub(1, 40), r:sub(-30))
"#,
    )
    .unwrap();
    let src = src.to_str().unwrap();
    let fresh = amber(&["run", src]);
    assert_eq!(fresh.status.code(), Some(0), "{}", String::from_utf8_lossy(&fresh.stderr));
    let every = amber(&["run", src, "--preempt-every", "1000"]);
    assert_eq!(every.stdout, fresh.stdout);
    let snap = dir().join("gsub10mb.snap");
    let snap = snap.to_str().unwrap();
    let first = amber(&["persist", src, "--at", "3000000", "-o", snap]);
    assert_eq!(first.status.code(), Some(0), "{}", String::from_utf8_lossy(&first.stderr));
    let shape = amber(&["inspect", snap]);
    let shape = String::from_utf8_lossy(&shape.stdout);
    assert!(shape.contains("pre-empted") && shape.contains("frame 1: C"), "not mid-match:\n{shape}");
    let second = amber(&["resume", snap]);
    assert_eq!(second.status.code(), Some(0), "{}", String::from_utf8_lossy(&second.stderr));
    let mut both = first.stdout.clone();
    both.extend_from_slice(&second.stdout);
    assert_eq!(String::from_utf8_lossy(&both), String::from_utf8_lossy(&fresh.stdout));
}
