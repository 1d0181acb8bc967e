//! The `amber` binary, driven as a user would drive it.

use amber_harness::generators;
use std::path::PathBuf;
use std::process::{Command, Output};

fn amber(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_amber")).args(args).output().expect("amber runs")
}

fn corpus() -> PathBuf {
    generators::default_corpus_dir()
}

fn corpus_scripts() -> Vec<PathBuf> {
    generators::discover_scripts(&[corpus()]).unwrap()
}

#[test]
fn every_corpus_script_prints_the_same_preempted_at_every_tick() {
    let scripts = corpus_scripts();
    assert!(scripts.len() >= 12, "the corpus has at least 12 scripts");
    for path in scripts {
        let p = path.to_str().unwrap();
        let every_tick = amber(&["run", p, "--preempt-every", "1"]);
        let rarely = amber(&["run", p, "--preempt-every", "1000000"]);
        assert_eq!(every_tick.status.code(), Some(0), "{p}: {}", String::from_utf8_lossy(&every_tick.stderr));
        assert_eq!(rarely.status.code(), Some(0), "{p}");
        assert!(!every_tick.stdout.is_empty(), "{p} prints something");
        assert_eq!(every_tick.stdout, rarely.stdout, "{p}: output differs when pre-empted at every tick");
    }
}

fn temp_script(name: &str, body: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("amber-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    path
}

#[test]
fn a_failing_script_exits_1_with_message_and_traceback() {
    let path = temp_script("fails.luau", "print('before')\nlocal function f() error('it broke') end\nf()\n");
    let out = amber(&["run", path.to_str().unwrap(), "--preempt-every", "3"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "before\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("it broke"), "{err}");
    assert!(err.contains("stack traceback:") && err.contains("function f"), "{err}");
}

#[test]
fn a_compile_error_exits_1_naming_file_and_line() {
    let path = temp_script("syntax.luau", "local x = \n\nlocal = 3\n");
    let out = amber(&["run", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("syntax.luau:3:"), "{err}");
}

#[test]
fn usage_and_io_errors_exit_2() {
    assert_eq!(amber(&["run", "/nonexistent/script.luau"]).status.code(), Some(2));
    assert_eq!(amber(&["run"]).status.code(), Some(2));
    assert_eq!(amber(&["run", "x.luau", "--preempt-every", "0"]).status.code(), Some(2));
    assert_eq!(amber(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(amber(&["check", "--schedule", "sometimes"]).status.code(), Some(2));
}

#[test]
fn trace_yields_prints_one_line_per_preemption() {
    let path = temp_script("loop.luau", "local s = 0\nfor i = 1, 5 do\n  s += i\nend\nprint(s)\n");
    let out = amber(&["run", path.to_str().unwrap(), "--preempt-every", "1", "--trace-yields"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "15\n");
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    // Five FORNLOOP back edges, the CALL to print and the RETURN: each line names the chunk, a
    // line, the proto and the yield-point index.
    assert!(lines.len() >= 6, "{err}");
    for line in &lines {
        assert!(line.starts_with("preempt @") && line.contains(" proto 0 yield-point "), "{line}");
    }
}

#[test]
fn check_persists_and_writes_its_report() {
    let report = std::env::temp_dir().join(format!("amber-check-report-{}", std::process::id()));
    let out = amber(&[
        "check",
        corpus().join("closures_upvalues.luau").to_str().unwrap(),
        corpus().join("coroutines_nested.luau").to_str().unwrap(),
        "--schedule",
        "every:5",
        "--schedule",
        "random:7:4",
        "--jobs",
        "2",
        "--report",
        report.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("0 failing"), "{text}");
    let summary = std::fs::read_to_string(report.join("summary.md")).unwrap();
    assert!(summary.contains("| every:5 |") && summary.contains("agrees"), "{summary}");
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report.join("results.json")).unwrap()).unwrap();
    assert_eq!(results["failing"], 0);
    assert!(results["persists"].as_u64().unwrap() > 10);
    let chart = std::fs::read_to_string(report.join("chart.svg")).unwrap();
    assert!(
        chart.starts_with("<svg") && chart.contains("closures_upvalues") && chart.contains("<rect"),
        "{chart:.200}"
    );
}

#[test]
fn check_reports_a_divergence_with_artifacts() {
    // A script whose output depends on a table address diverges between runs: the harness
    // normalises tostring's address form, but not an address turned into a number.
    let dir = std::env::temp_dir().join(format!("amber-check-diverge-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("address.luau");
    // The address is taken after the snapshot, in a restored VM, while the original VM still
    // holds its own objects: the last hex digits differ.
    std::fs::write(&script, "local s = 0 for i = 1, 200 do s += i end local t = {} print(tostring(t):sub(-6), s)\n")
        .unwrap();
    let report = dir.join("report");
    let out =
        amber(&["check", script.to_str().unwrap(), "--schedule", "restores:2", "--report", report.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("DIVERGES"), "{text}");
    let div = report.join("divergences").join("address.luau-restores_2");
    assert!(std::fs::read_to_string(div.join("first-difference.txt")).unwrap().contains("expected: out: "));
    assert!(
        div.join("snapshot.snap").exists() && div.join("fresh.trace").exists() && div.join("resumed.trace").exists()
    );
    assert!(std::fs::read_to_string(div.join("reproduce.sh")).unwrap().contains("--schedule restores:2"));
    let summary = std::fs::read_to_string(report.join("summary.md")).unwrap();
    assert!(summary.contains("DIVERGES at trace line 1"), "{summary}");
}

#[test]
fn nil_valued_keys_are_not_state_under_frequent_persists() {
    // The regression of corpus/scripts/digest_nil_keys.luau: every:13 restores late in the
    // run, where the fresh run's collector has already turned `c`'s key into a dead key.
    let report = std::env::temp_dir().join(format!("amber-check-nil-keys-{}", std::process::id()));
    let script = corpus().join("digest_nil_keys.luau");
    let out = amber(&[
        "check",
        script.to_str().unwrap(),
        "--schedule",
        "every:13",
        "--schedule",
        "every:50",
        "--schedule",
        "every:200",
        "--report",
        report.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(text.matches("agrees").count(), 3, "{text}");
}

#[test]
fn exhaustive_max_raises_the_exhaustive_cap() {
    let report = std::env::temp_dir().join(format!("amber-check-exh-{}", std::process::id()));
    let script = temp_script("exh.luau", "local s = 0 for i = 1, 40 do s += i end print(s)\n");
    let run = |max: &str| {
        let out = amber(&[
            "check",
            script.to_str().unwrap(),
            "--schedule",
            "exhaustive",
            "--exhaustive-max",
            max,
            "--report",
            report.to_str().unwrap(),
        ]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(run("10").contains("skipped"), "a cap below the script's points skips it");
    assert!(run("1000").contains("agrees"), "a cap above them runs one persist per point");
}

#[test]
fn mutate_lists_its_classes_without_a_snapshot() {
    let out =
        std::process::Command::new(env!("CARGO_BIN_EXE_amber")).args(["mutate", "--list-classes"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.lines().count() >= 30 && text.contains("table.layout"), "{text}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_amber")).args(["mutate"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "a snapshot is required without --list-classes");
}
