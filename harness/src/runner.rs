//! Running one script to completion under a schedule, collecting its trace.

use crate::generators::Schedule;
use crate::oracles::{Ending, Trace};
use amber_luau::{CompileError, Outcome, Script, SuspendSite, Task, Vm, VmError};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum RunError {
    #[error(transparent)]
    Compile(#[from] CompileError),
    #[error(transparent)]
    Vm(#[from] VmError),
}

/// Called for every slice's output as soon as the slice ends, and for every pre-emption site.
pub trait RunObserver {
    fn output(&mut self, _bytes: &[u8]) {}
    fn preempted(&mut self, _site: Option<&SuspendSite>) {}
}

/// Observes nothing.
pub struct Quiet;
impl RunObserver for Quiet {}

/// Summary counters of one run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunCounts {
    pub preemptions: u64,
    pub ticks: u64,
    pub deferrals: u64,
}

/// A finished run: its trace (what the oracle compares) plus what only people read.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub trace: Trace,
    pub counts: RunCounts,
    /// The traceback of the main thread when the run ended in an error.
    pub traceback: Option<String>,
}

/// Runs `script` in a fresh VM until it finishes, errors or is killed, resuming after every
/// pre-emption and after every `coroutine.yield` of its main function.
pub fn run_script(script: &Script, schedule: Schedule, observer: &mut dyn RunObserver) -> Result<RunReport, RunError> {
    let vm = Vm::new()?;
    let mut task = vm.spawn(script)?;
    run_task(&mut task, schedule, observer)
}

/// Runs an existing task (fresh or restored) to its end under `schedule`.
pub fn run_task(task: &mut Task, schedule: Schedule, observer: &mut dyn RunObserver) -> Result<RunReport, RunError> {
    let mut output = Vec::new();
    let mut yields = Vec::new();
    let mut traceback = None;
    let budget = schedule.budget();
    let ending = loop {
        let outcome = task.resume(budget)?;
        let chunk = task.take_output();
        observer.output(&chunk);
        output.extend_from_slice(&chunk);
        match outcome {
            Outcome::Preempted => observer.preempted(task.suspend_site().as_ref()),
            Outcome::Yielded(values) => {
                yields.push(values.iter().map(|v| v.to_string()).collect::<Vec<_>>().join("\t"))
            }
            Outcome::Finished(values) => break Ending::Returned(values.iter().map(|v| v.to_string()).collect()),
            Outcome::Errored(e) => {
                traceback = Some(e.traceback);
                break Ending::Error(e.message);
            }
            Outcome::Killed(reason) => break Ending::Killed(reason),
        }
    };
    let stats = task.stats();
    Ok(RunReport {
        trace: Trace { output, yields, ending },
        counts: RunCounts { preemptions: stats.preemptions, ticks: stats.ticks, deferrals: stats.deferrals },
        traceback,
    })
}

/// Compiles a script file's contents with the chunk name Luau tools use for files (`@path`).
pub fn compile_file(path: &std::path::Path, source: &[u8]) -> Result<Script, CompileError> {
    Script::compile(source, &format!("@{}", path.display()))
}
