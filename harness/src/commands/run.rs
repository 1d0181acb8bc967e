//! `amber run`, `amber persist` and `amber resume`: scripts and snapshots run to their end,
//! output streamed to stdout.

use super::{Stop, load_catalog, load_limits, read_file};
use crate::generators::Schedule;
use crate::oracles::Ending;
use crate::runner::{self, Reached, RunError, RunLimits, RunObserver, StopAt};
use amber_luau::SuspendSite;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn read_script(path: &Path) -> Result<amber_luau::Script, Stop> {
    let source = read_file(path)?;
    runner::compile_file(path, &source).map_err(|e| Stop::failed(format!("compile error: {e}")))
}

/// Streams a run's output to stdout, and its pre-emption sites to stderr when asked.
struct Streaming {
    trace_yields: bool,
    /// The end-state digest is wanted (`resume --digest`).
    digest: bool,
}

impl RunObserver for Streaming {
    fn output(&mut self, bytes: &[u8]) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(bytes);
        let _ = out.flush();
    }
    fn wants_digest(&self) -> bool {
        self.digest
    }
    fn preempted(&mut self, site: Option<&SuspendSite>) {
        if self.trace_yields {
            match site {
                Some(s) => eprintln!(
                    "preempt {}:{} proto {} yield-point {} (pc {})",
                    s.chunk, s.line, s.proto_id, s.yield_point, s.pc
                ),
                None => eprintln!("preempt <site unknown>"),
            }
        }
    }
}

pub fn run(path: &Path, preempt_every: Option<u64>, trace_yields: bool, limits: RunLimits) -> Result<ExitCode, Stop> {
    let script = read_script(path)?;
    let schedule = preempt_every.map_or(Schedule::Fresh, Schedule::Preempt);
    Ok(finish(runner::run_script_limited(&script, schedule, limits, &mut Streaming { trace_yields, digest: false })))
}

/// Runs a script to pre-emption point `at` (or its main function's first yield) and writes
/// its state.
pub fn persist(path: &Path, at: Option<u64>, output: &Path, no_embed: bool) -> Result<ExitCode, Stop> {
    let script = read_script(path)?;
    let vm = amber_luau::Vm::deterministic().map_err(Stop::usage)?;
    let mut task = vm.spawn(&script).map_err(Stop::usage)?;
    let stop = at.map_or(StopAt::MainYield, StopAt::Point);
    match runner::run_to(&mut task, stop, &mut Streaming { trace_yields: false, digest: false })
        .map_err(Stop::failed)?
    {
        Reached::At(_) => {}
        Reached::Ended(report) => {
            let what = match report.trace.ending {
                Ending::Error(e) => format!("failed ({e})"),
                Ending::Killed(r) => format!("was killed ({r})"),
                Ending::Returned(_) => "finished".to_string(),
            };
            return Err(Stop::failed(match at {
                Some(n) => {
                    format!("the script {what} after {} pre-emption points, before point {n}", report.counts.ticks)
                }
                None => format!("the script {what} before its main function yielded"),
            }));
        }
    }
    let snapshot = amber_luau::capture_with(&task, amber_luau::CaptureOptions { embed_sources: !no_embed })
        .map_err(Stop::failed)?;
    std::fs::write(output, amber_validator::encode(&snapshot))
        .map_err(|e| Stop::usage(format!("cannot write {}: {e}", output.display())))?;
    Ok(ExitCode::SUCCESS)
}

pub fn resume(
    path: &Path,
    source_dir: Option<PathBuf>,
    preempt_every: Option<u64>,
    limits: Option<PathBuf>,
    run_limits: RunLimits,
    digest: bool,
) -> Result<ExitCode, Stop> {
    let limits = load_limits(limits)?;
    // --memory-limit, else the limits file's max_memory: the validator estimates against it
    // (L009), restore refuses a state that cannot fit, and the task runs under it.
    let memory_limit = run_limits.memory_limit.or(limits.max_memory);
    let limits = amber_validator::Limits { max_memory: memory_limit, ..limits };
    let catalog = load_catalog(source_dir.as_deref())?;
    let bytes = read_file(path)?;
    let vm = amber_luau::Vm::deterministic().map_err(Stop::usage)?;
    let limits = amber_validator::Limits { codecs: vm.codec_names(), ..limits };
    let verified = amber_validator::validate(&bytes, &limits, &catalog)
        .map_err(|report| Stop::failed(format!("{} is refused:\n{report}", path.display())))?;
    let options = amber_luau::RestoreOptions { memory_limit, ..Default::default() };
    let mut task = amber_luau::restore(&vm, &verified, options)
        .map_err(|e| Stop::failed(format!("cannot restore {}: {e}", path.display())))?;
    task.set_limits(run_limits.task);
    let schedule = preempt_every.map_or(Schedule::Fresh, Schedule::Preempt);
    let result = runner::run_task(&mut task, schedule, &mut Streaming { trace_yields: false, digest });
    let tail = match (&result, digest) {
        (Ok(report), true) => Some(crate::wire::write(&crate::wire::Tail {
            yields: report.trace.yields.clone(),
            ending: report.trace.ending.clone(),
            digest: report.trace.digest.clone(),
        })),
        _ => None,
    };
    let code = finish(result);
    // Last on stderr, after anything the run printed there (crate::wire reads the last tail).
    if let Some(tail) = tail {
        eprint!("{tail}");
    }
    Ok(code)
}

/// Exit code and stderr report of a finished run (shared by run and resume).
fn finish(result: Result<runner::RunReport, RunError>) -> ExitCode {
    match result {
        Ok(report) => match report.trace.ending {
            Ending::Returned(_) => ExitCode::SUCCESS,
            Ending::Error(message) => {
                eprintln!("{message}");
                eprintln!("stack traceback:");
                eprint!("{}", report.traceback.unwrap_or_default());
                ExitCode::from(1)
            }
            Ending::Killed(reason) => {
                eprintln!("amber: {reason}");
                ExitCode::from(1)
            }
        },
        Err(RunError::Compile(e)) => {
            eprintln!("amber: compile error: {e}");
            ExitCode::from(1)
        }
        Err(RunError::Vm(e)) => {
            eprintln!("amber: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("amber: {e}");
            ExitCode::from(1)
        }
    }
}
