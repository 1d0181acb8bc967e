//! `amber run` and `amber resume` under the limits a host sets: memory (--memory-limit, the
//! limits file's max_memory), total ticks and wall-clock time, and the process's own address
//! space (ulimit -v): every ending is a clean exit with a reason, never a panic or a signal.

use std::path::PathBuf;
use std::process::{Command, Output};

const BOMB: &str = r#"local t = {} for i = 1, 1e7 do t[i] = string.rep("x", 1e5) .. i end"#;

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("amber-limits-cli-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn script(name: &str, src: &str) -> String {
    let path = dir().join(name);
    std::fs::write(&path, src).unwrap();
    path.display().to_string()
}

fn amber(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_amber")).args(args).output().expect("amber runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn run_kills_at_each_limit_with_its_reason() {
    let bomb = script("bomb.luau", BOMB);
    let out = amber(&["run", &bomb, "--memory-limit", "64MiB"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("memory limit of 67108864 bytes"), "{}", stderr(&out));

    let spin = script("spin.luau", "local n = 0 while true do n += 1 end");
    let out = amber(&["run", &spin, "--max-ticks", "500000"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("total budget of 500000 ticks"), "{}", stderr(&out));
    let out = amber(&["run", &spin, "--max-seconds", "0.2"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("wall-clock budget"), "{}", stderr(&out));

    for bad in [["--memory-limit", "lots"], ["--memory-limit", "0"], ["--max-seconds", "-1"], ["--max-ticks", "0"]] {
        let out = amber(&["run", &spin, bad[0], bad[1]]);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", stderr(&out));
    }
}

#[test]
fn resume_refuses_a_state_that_cannot_fit_and_limits_the_rest() {
    let src = "local t = {} for i = 1, 200 do t[i] = string.rep('z', 20000) .. i end coroutine.yield() print(#t)\nwhile true do end";
    let path = script("big.luau", src);
    let snap = dir().join("big.snap").display().to_string();
    assert_eq!(amber(&["persist", &path, "--at-yield", "-o", &snap]).status.code(), Some(0));

    let out = amber(&["resume", &snap, "--memory-limit", "1MiB"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("L009"), "{}", stderr(&out));
    // The limits file's max_memory does the same.
    let limits = dir().join("limits.toml");
    std::fs::write(&limits, "max_memory = \"1MiB\"\n").unwrap();
    let out = amber(&["resume", &snap, "--limits", limits.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("L009"), "{}", stderr(&out));
    // With room it resumes, and its loop ends at the tick budget.
    let out = amber(&["resume", &snap, "--memory-limit", "64MiB", "--max-ticks", "100000"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200\n");
    assert!(stderr(&out).contains("total budget"), "{}", stderr(&out));
}

/// Under any address-space limit, the memory bomb ends in a clean error (exit 1 with "not
/// enough memory" or a memory-limit kill), never a panic (101) or a signal.
#[test]
fn no_address_space_limit_makes_amber_panic_or_crash() {
    let bomb = script("bomb2.luau", BOMB);
    for kib in [120_000u64, 250_000, 500_000, 1_000_000] {
        for extra in [&[][..], &["--memory-limit", "64MiB"][..]] {
            let mut cmd = Command::new("bash");
            cmd.arg("-c")
                .arg(format!("ulimit -v {kib}; exec \"$0\" run \"$1\" {}", extra.join(" ")))
                .arg(env!("CARGO_BIN_EXE_amber"))
                .arg(&bomb);
            let out = cmd.output().expect("bash runs");
            let code = out.status.code();
            assert!(
                matches!(code, Some(1) | Some(2)),
                "ulimit -v {kib} {extra:?}: exit {code:?} (signal {:?})\n{}",
                std::os::unix::process::ExitStatusExt::signal(&out.status),
                stderr(&out)
            );
            let text = stderr(&out);
            assert!(text.contains("memory") && !text.contains("panicked"), "ulimit -v {kib} {extra:?}: {text}");
        }
    }
}

#[test]
fn check_fails_a_runaway_script_instead_of_stalling() {
    let spin = script("runaway.luau", "print('start') while true do end");
    let report = dir().join("check-report");
    let out = amber(&[
        "check",
        &spin,
        "--schedule",
        "preempt:1",
        "--max-ticks",
        "200000",
        "--report",
        report.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("FAILED") || stdout.contains("killed"), "{stdout}");
    let summary = std::fs::read_to_string(report.join("summary.md")).unwrap();
    assert!(summary.contains("total budget of 200000 ticks"), "{summary}");
}

/// Pattern matching is pre-empted between its steps, so a catastrophic pattern ends at the tick
/// budget (it used to run until the deferral cap), and at the time budget.
#[test]
fn a_catastrophic_pattern_ends_at_the_budgets() {
    let bad = script("catastrophic.luau", r#"print(string.find(("a"):rep(26), ("a?"):rep(26) .. ("a"):rep(26)))"#);
    let out = amber(&["run", &bad, "--preempt-every", "1000", "--max-ticks", "300000"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("total budget of 300000 ticks"), "{}", stderr(&out));
    let out = amber(&["run", &bad, "--max-seconds", "0.5"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("wall-clock budget"), "{}", stderr(&out));
}
