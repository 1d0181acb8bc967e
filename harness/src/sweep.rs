//! The hostile-mutation sweep: proof by execution that an accepted snapshot cannot crash, trap,
//! hang or corrupt the VM.
//!
//! Every script is captured at several points; every capture must be accepted (no false
//! positives) and is mutated by every class of [`crate::generators::mutations`]; every mutant
//! is validated as untrusted bytes; every accepted one is restored and resumed to its end under
//! a tick budget in a child process (`amber sweep-worker`), so a crash, a Luau assertion trap or
//! a hang is a finding with the mutant saved, never a dead test runner.

use crate::generators::mutations::{self, Mutant};
use crate::oracles::safety::{self, Verdict};
use crate::runner::compile_file;
use amber_luau::SourceCatalog;
use amber_luau::{Budget, Outcome, Script, Vm, capture};
use amber_validator::diagnostics::Code;
use amber_validator::{Limits, encode, validate};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Options {
    pub scripts: Vec<PathBuf>,
    /// Captures per script at evenly spaced pre-emption points (plus up to two at yields).
    pub points: u32,
    /// Tick budget of each resumed mutant.
    pub max_ticks: u64,
    /// Wall-clock seconds a worker may spend on one mutant before it counts as a hang.
    pub hang_seconds: u64,
    pub jobs: usize,
    /// Where accepted mutants are staged and findings saved.
    pub report: PathBuf,
    /// The `amber` binary that runs the workers.
    pub amber: PathBuf,
    /// Keep every n-th mutant only (1: all), for quick runs.
    pub stride: usize,
}

/// A mutant that broke a promise.
#[derive(Debug, Clone)]
pub struct Finding {
    /// crash (a signal), trap (a Luau assertion), asan (an AddressSanitizer report), hang,
    /// panic, restore-refused, false-positive or expectation.
    pub kind: &'static str,
    pub script: String,
    pub class: &'static str,
    pub detail: String,
    pub message: String,
    /// Where the mutant's bytes were saved.
    pub saved: Option<PathBuf>,
}

#[derive(Debug, Default)]
pub struct Summary {
    pub scripts: usize,
    pub captures: usize,
    pub mutants: usize,
    pub accepted: usize,
    pub refused_by_code: BTreeMap<String, usize>,
    pub outcomes: BTreeMap<String, usize>,
    pub by_class: BTreeMap<&'static str, (usize, usize)>,
    pub findings: Vec<Finding>,
    pub seconds: f64,
}

struct Staged {
    path: PathBuf,
    script: String,
    class: &'static str,
    detail: String,
}

/// Captures of a script: at `points` evenly spaced pre-emptions, and after its first yields.
pub fn captures(script: &Script, points: u32) -> Result<Vec<Vec<u8>>, String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let total = crate::runner::count_points(script).map_err(|e| err(&e))?;
    let mut out = Vec::new();
    for k in 0..u64::from(points) {
        let at = 1 + k * total / u64::from(points.max(1));
        let vm = Vm::deterministic().map_err(|e| err(&e))?;
        let mut task = vm.spawn(script).map_err(|e| err(&e))?;
        loop {
            let left = at.saturating_sub(task.stats().ticks).max(1);
            match task.resume(Budget::ticks(left)).map_err(|e| err(&e))? {
                Outcome::Preempted if task.stats().ticks + 1 >= at => {
                    out.push(encode(&capture(&task).map_err(|e| err(&e))?));
                    break;
                }
                Outcome::Preempted | Outcome::Yielded(_) => {}
                _ => break,
            }
        }
    }
    // Right after a coroutine yields (its resumer pre-empted at its next interrupt): yielded
    // threads with frames inside coroutine.yield.
    let vm = Vm::deterministic().map_err(|e| err(&e))?;
    let mut task = vm.spawn(script).map_err(|e| err(&e))?;
    let mut taken = 0;
    while taken < 2 {
        match task.resume(Budget::unlimited().with_preemption_after_yields()).map_err(|e| err(&e))? {
            Outcome::Preempted | Outcome::Yielded(_) => {
                out.push(encode(&capture(&task).map_err(|e| err(&e))?));
                taken += 1;
            }
            _ => break,
        }
    }
    Ok(out)
}

/// Runs the sweep. `progress` is called with (done, total) as accepted mutants are resumed.
pub fn run(opts: &Options, progress: &mut dyn FnMut(&str, usize, usize)) -> Result<Summary, String> {
    let started = Instant::now();
    let stage = opts.report.join("staged");
    std::fs::create_dir_all(&stage).map_err(|e| format!("{}: {e}", stage.display()))?;
    let catalog = SourceCatalog::default();
    let limits = crate::intake::default_limits()?;
    let mut summary = Summary { scripts: opts.scripts.len(), ..Summary::default() };
    let mut staged: Vec<Staged> = Vec::new();
    for (n, path) in opts.scripts.iter().enumerate() {
        progress("capturing and validating mutants", n, opts.scripts.len());
        let name = path.display().to_string();
        let source = std::fs::read(path).map_err(|e| format!("{name}: {e}"))?;
        let script = compile_file(path, &source).map_err(|e| format!("{name}: {e}"))?;
        for bytes in captures(&script, opts.points).map_err(|e| format!("{name}: {e}"))? {
            summary.captures += 1;
            let verified = match validate(&bytes, &limits, &catalog) {
                Ok(v) => v,
                Err(report) => {
                    let saved = save(&opts.report, "false-positive", &name, summary.captures, &bytes);
                    summary.findings.push(Finding {
                        kind: "false-positive",
                        script: name.clone(),
                        class: "capture",
                        detail: "a capture of the runtime".into(),
                        message: report.to_string(),
                        saved,
                    });
                    continue;
                }
            };
            let mut seen = 0usize;
            let mut failed: Option<String> = None;
            mutations::for_each_mutant(&verified, &mut |m| {
                seen += 1;
                if failed.is_some() || !(seen - 1).is_multiple_of(opts.stride.max(1)) {
                    return;
                }
                if let Err(e) = judge(opts, &stage, &catalog, &limits, &name, m, &mut summary, &mut staged) {
                    failed = Some(e);
                }
            });
            if let Some(e) = failed {
                return Err(e);
            }
        }
    }
    resume_all(opts, &staged, &mut summary, progress)?;
    let _ = std::fs::remove_dir_all(&stage);
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// Validates one mutant: tallies a refusal, stages an accepted one for resuming, and records a
/// mutant whose class expects a code it did not get.
#[allow(clippy::too_many_arguments)]
fn judge(
    opts: &Options,
    stage: &Path,
    catalog: &SourceCatalog,
    limits: &Limits,
    name: &str,
    m: Mutant,
    summary: &mut Summary,
    staged: &mut Vec<Staged>,
) -> Result<(), String> {
    let name = name.to_string();
    summary.mutants += 1;
    let Mutant { class, detail, expect, snapshot } = m;
    let bytes = encode(&snapshot);
    let entry = summary.by_class.entry(class).or_default();
    entry.0 += 1;
    match validate(&bytes, limits, catalog) {
        Err(report) => {
            for code in unique_codes(&report.codes()) {
                *summary.refused_by_code.entry(code.as_str().to_string()).or_default() += 1;
            }
            if let Some(code) = expect
                && !report.codes().contains(&code)
            {
                summary.findings.push(Finding {
                    kind: "expectation",
                    script: name.clone(),
                    class,
                    detail,
                    message: format!("expected {code}, got: {report}"),
                    saved: save(&opts.report, "expectation", &name, summary.mutants, &bytes),
                });
            }
        }
        Ok(_) => {
            entry.1 += 1;
            summary.accepted += 1;
            if let Some(code) = expect {
                summary.findings.push(Finding {
                    kind: "expectation",
                    script: name.clone(),
                    class,
                    detail: detail.clone(),
                    message: format!("expected {code}, but the validator accepted it"),
                    saved: save(&opts.report, "expectation", &name, summary.mutants, &bytes),
                });
            }
            let path = stage.join(format!("{:06}.snap", staged.len()));
            std::fs::write(&path, &bytes).map_err(|e| format!("{}: {e}", path.display()))?;
            staged.push(Staged { path, script: name.clone(), class, detail });
        }
    }
    Ok(())
}

fn unique_codes(codes: &[Code]) -> Vec<Code> {
    let mut v = codes.to_vec();
    v.sort();
    v.dedup();
    v
}

fn save(report: &Path, kind: &str, script: &str, n: usize, bytes: &[u8]) -> Option<PathBuf> {
    let dir = report.join("findings");
    std::fs::create_dir_all(&dir).ok()?;
    let stem: String = Path::new(script).file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let path = dir.join(format!("{kind}-{stem}-{n}.snap"));
    std::fs::write(&path, bytes).ok()?;
    Some(path)
}

/// Resumes every staged mutant in worker processes, `jobs` at a time, each worker taking a
/// contiguous share and being restarted after the mutant that killed it.
fn resume_all(
    opts: &Options,
    staged: &[Staged],
    summary: &mut Summary,
    progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<(), String> {
    let jobs = opts.jobs.max(1);
    let chunk = staged.len().div_ceil(jobs).max(1);
    let (tx, rx) = mpsc::channel::<(usize, Result<String, Finding>)>();
    std::thread::scope(|scope| {
        for (w, share) in staged.chunks(chunk).enumerate() {
            let tx = tx.clone();
            scope.spawn(move || worker_loop(opts, w * chunk, share, &tx));
        }
        drop(tx);
        let mut done = 0;
        for (_, result) in rx {
            done += 1;
            progress("resuming accepted mutants", done, staged.len());
            match result {
                Ok(outcome) => *summary.outcomes.entry(outcome).or_default() += 1,
                Err(finding) => {
                    *summary.outcomes.entry(finding.kind.to_string()).or_default() += 1;
                    summary.findings.push(finding);
                }
            }
        }
    });
    Ok(())
}

/// Drives one worker process over `share` (global indices from `first`), restarting it after a
/// mutant that crashed or hung.
fn worker_loop(opts: &Options, first: usize, share: &[Staged], tx: &mpsc::Sender<(usize, Result<String, Finding>)>) {
    let mut next = 0;
    while next < share.len() {
        let list = opts.report.join(format!("worker-{first}-{next}.list"));
        let text: String = share[next..].iter().map(|s| format!("{}\n", s.path.display())).collect();
        if std::fs::write(&list, text).is_err() {
            return;
        }
        let child = Command::new(&opts.amber)
            .arg("sweep-worker")
            .arg(&list)
            .arg("--max-ticks")
            .arg(opts.max_ticks.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => {
                for (k, s) in share[next..].iter().enumerate() {
                    let _ = tx.send((
                        first + next + k,
                        Err(finding(s, "crash", format!("cannot start the worker: {e}"), None)),
                    ));
                }
                return;
            }
        };
        let stdout = child.stdout.take();
        let (lines_tx, lines_rx) = mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            if let Some(out) = stdout {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if lines_tx.send(line).is_err() {
                        break;
                    }
                }
            }
        });
        let mut current: Option<usize> = None;
        let mut hung = false;
        loop {
            match lines_rx.recv_timeout(Duration::from_secs(opts.hang_seconds)) {
                Ok(line) => {
                    if let Some(k) = line.strip_prefix("begin ").and_then(|k| k.parse::<usize>().ok()) {
                        current = Some(k);
                    } else if let Some(rest) = line.strip_prefix("end ") {
                        let (k, outcome) = rest.split_once(' ').unwrap_or((rest, ""));
                        if let Ok(k) = k.parse::<usize>() {
                            let s = &share[next + k];
                            let result = match outcome.split_once(' ') {
                                Some(("restore-refused", why)) => {
                                    Err(finding(s, "restore-refused", why.to_string(), Some(&s.path)))
                                }
                                Some(("panic", why)) => Err(finding(s, "panic", why.to_string(), Some(&s.path))),
                                _ => Ok(outcome.split(' ').next().unwrap_or("").to_string()),
                            };
                            if result.is_err() {
                                keep(opts, s);
                            }
                            let _ = tx.send((first + next + k, result));
                        }
                        current = None;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    hung = true;
                    let _ = child.kill();
                    break;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        let status = child.wait();
        let _ = reader.join();
        let mut stderr = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
        }
        let _ = std::fs::remove_file(&list);
        match current {
            None => return, // the worker finished its share
            Some(k) => {
                let s = &share[next + k];
                let (kind, message) = if hung {
                    ("hang", format!("no progress for {} s", opts.hang_seconds))
                } else {
                    let how = match &status {
                        Ok(st) => describe_exit(st),
                        Err(e) => e.to_string(),
                    };
                    let tail: String = stderr
                        .lines()
                        .rev()
                        .take(6)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect::<Vec<_>>()
                        .join("\n");
                    let kind = if stderr.contains("AddressSanitizer") {
                        "asan"
                    } else if tail.contains("Assertion") || how.contains("SIGILL") || how.contains("SIGABRT") {
                        "trap"
                    } else {
                        "crash"
                    };
                    (kind, format!("{how}\n{tail}"))
                };
                let saved = keep(opts, s);
                let _ = tx.send((first + next + k, Err(finding(s, kind, message, saved.as_deref()))));
                next += k + 1;
            }
        }
    }
}

fn finding(s: &Staged, kind: &'static str, message: String, saved: Option<&Path>) -> Finding {
    Finding {
        kind,
        script: s.script.clone(),
        class: s.class,
        detail: s.detail.clone(),
        message,
        saved: saved.map(Path::to_path_buf),
    }
}

/// Copies a staged mutant out of the staging area (which is removed at the end).
fn keep(opts: &Options, s: &Staged) -> Option<PathBuf> {
    let dir = opts.report.join("findings");
    std::fs::create_dir_all(&dir).ok()?;
    let to = dir.join(s.path.file_name()?);
    std::fs::copy(&s.path, &to).ok()?;
    let _ = std::fs::write(to.with_extension("txt"), format!("{}\n{}\n{}\n", s.script, s.class, s.detail));
    Some(to)
}

fn describe_exit(status: &std::process::ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            let name = match sig {
                4 => "SIGILL",
                6 => "SIGABRT",
                7 => "SIGBUS",
                8 => "SIGFPE",
                9 => "SIGKILL",
                11 => "SIGSEGV",
                _ => "a signal",
            };
            return format!("killed by {name} ({sig})");
        }
    }
    format!("exited with {status}")
}

/// The worker: validates, restores and resumes each listed snapshot in turn, reporting
/// `begin K` before and `end K OUTCOME` after each on stdout (flushed), so the driver knows
/// which one killed it.
pub fn worker(list: &Path, max_ticks: u64) -> Result<(), String> {
    let text = std::fs::read_to_string(list).map_err(|e| format!("{}: {e}", list.display()))?;
    let catalog = SourceCatalog::default();
    let limits = crate::intake::default_limits()?;
    let stdout = std::io::stdout();
    for (k, line) in text.lines().enumerate() {
        {
            let mut out = stdout.lock();
            let _ = writeln!(out, "begin {k}");
            let _ = out.flush();
        }
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            resume_one(Path::new(line), &catalog, &limits, max_ticks)
        }))
        .unwrap_or_else(|p| {
            let why = p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()));
            format!("panic {}", why.unwrap_or_default().replace('\n', " "))
        });
        let mut out = stdout.lock();
        let _ = writeln!(out, "end {k} {outcome}");
        let _ = out.flush();
    }
    Ok(())
}

fn resume_one(path: &Path, catalog: &SourceCatalog, limits: &Limits, max_ticks: u64) -> String {
    let Ok(bytes) = std::fs::read(path) else { return "unreadable".into() };
    match safety::resume_untrusted(&bytes, limits, catalog, max_ticks) {
        Ok(Verdict::Refused) => "refused".into(),
        Ok(Verdict::Ended(how)) => how.into(),
        Err(finding) => format!("restore-refused {}", finding.replace('\n', " ")),
    }
}

/// Writes `summary.md` to the report directory and returns it.
pub fn write_report(opts: &Options, s: &Summary) -> std::io::Result<String> {
    use std::fmt::Write as _;
    let mut md = String::new();
    let _ = writeln!(md, "# Hostile-mutation sweep\n");
    let resumed: usize = s.outcomes.values().sum();
    let _ = writeln!(
        md,
        "Build: {} profile, Luau assertions {}.\n",
        if cfg!(debug_assertions) { "debug" } else { "release" },
        if amber_luau::LUAU_ASSERTIONS { "on" } else { "off" }
    );
    let _ = writeln!(
        md,
        "{} scripts, {} captures, {} mutants: {} refused, {} accepted, {} resumed in child processes ({} ticks each at most); {} findings; {:.1} s.\n",
        s.scripts,
        s.captures,
        s.mutants,
        s.mutants - s.accepted,
        s.accepted,
        resumed,
        opts.max_ticks,
        s.findings.len(),
        s.seconds
    );
    let _ = writeln!(md, "## Accepted mutants, how they ended\n\n| outcome | mutants |\n|---|---:|");
    for (k, v) in &s.outcomes {
        let _ = writeln!(md, "| {k} | {v} |");
    }
    let _ = writeln!(md, "\n## Mutants by class\n\n| class | mutants | accepted |\n|---|---:|---:|");
    for (k, (n, a)) in &s.by_class {
        let _ = writeln!(md, "| {k} | {n} | {a} |");
    }
    let _ = writeln!(md, "\n## Refusals by code\n\n| code | mutants |\n|---|---:|");
    for (k, v) in &s.refused_by_code {
        let _ = writeln!(md, "| {k} | {v} |");
    }
    let _ = writeln!(md, "\n## Findings\n");
    if s.findings.is_empty() {
        let _ = writeln!(md, "None.");
    }
    for f in &s.findings {
        let _ = writeln!(
            md,
            "- **{}** {} `{}` {}: {}{}",
            f.kind,
            f.script,
            f.class,
            f.detail,
            f.message.lines().next().unwrap_or_default(),
            f.saved.as_ref().map_or(String::new(), |p| format!(" (saved: {})", p.display()))
        );
    }
    std::fs::create_dir_all(&opts.report)?;
    std::fs::write(opts.report.join("summary.md"), &md)?;
    Ok(md)
}
