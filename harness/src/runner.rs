//! Drivers' common core: running a script under a schedule and collecting its trace.

use crate::generators::{Schedule, separate_points};
use crate::oracles::{Ending, Trace, state_digest};
use amber_luau::{
    Budget, CompileError, Outcome, RestoreOptions, Script, SourceCatalog, SuspendSite, Task, Vm, VmError, capture,
    restore,
};
use amber_validator::{Report, encode, validate};
use std::path::Path;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum RunError {
    #[error(transparent)]
    Compile(#[from] CompileError),
    #[error(transparent)]
    Vm(#[from] VmError),
    #[error("capture failed: {0}")]
    Capture(#[from] amber_luau::CaptureError),
    #[error("the validator refused a snapshot the runtime captured:\n{0}")]
    Refused(Report),
    #[error("restore failed: {0}")]
    Restore(#[from] amber_luau::RestoreError),
    #[error("cross-process resume: {0}")]
    Process(String),
    #[error("{0}")]
    Setup(String),
}

/// Called for every slice's output as soon as the slice ends, and for every pre-emption site.
pub trait RunObserver {
    fn output(&mut self, _bytes: &[u8]) {}
    fn preempted(&mut self, _site: Option<&SuspendSite>) {}
    /// Whether the run's end-state digest is wanted: taking it captures the final state, which
    /// costs memory in proportion to that state (`amber run` does without).
    fn wants_digest(&self) -> bool {
        true
    }
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
    /// Snapshots taken and restored.
    pub persists: u64,
    /// Bytes of all snapshots taken.
    pub persisted_bytes: u64,
}

/// A finished run: its trace (what the oracle compares) plus what only people read.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub trace: Trace,
    pub counts: RunCounts,
    /// The traceback of the main thread when the run ended in an error.
    pub traceback: Option<String>,
    /// The last snapshot taken, for divergence reports.
    pub last_snapshot: Option<Vec<u8>>,
}

/// What a run's task may spend: its total budgets and its memory (`None`: unlimited).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunLimits {
    pub task: amber_luau::TaskLimits,
    pub memory_limit: Option<usize>,
}

/// Runs `script` in a fresh deterministic VM until it finishes, errors or is killed, resuming
/// after every pre-emption and every `coroutine.yield` of its main function.
pub fn run_script(script: &Script, schedule: Schedule, observer: &mut dyn RunObserver) -> Result<RunReport, RunError> {
    run_script_limited(script, schedule, RunLimits::default(), observer)
}

/// [`run_script`] with the task under `limits` (a kill ends the run as `Ending::Killed`).
pub fn run_script_limited(
    script: &Script,
    schedule: Schedule,
    limits: RunLimits,
    observer: &mut dyn RunObserver,
) -> Result<RunReport, RunError> {
    let vm = Vm::deterministic()?;
    let options = amber_luau::SpawnOptions { memory_limit: limits.memory_limit, ..Default::default() };
    let mut task = vm.spawn_with(script, options)?;
    task.set_limits(limits.task);
    run_task(&mut task, schedule, observer)
}

/// Runs an existing task (fresh or restored) to its end, pre-empted by `schedule`'s budget.
pub fn run_task(task: &mut Task, schedule: Schedule, observer: &mut dyn RunObserver) -> Result<RunReport, RunError> {
    let mut run = Run { no_digest: !observer.wants_digest(), ..Run::default() };
    let ending = run.until_end(task, schedule.budget(), observer, &mut |_, _| Ok(None))?;
    Ok(run.finish(ending))
}

/// What a run collects as it goes.
#[derive(Default)]
struct Run {
    output: Vec<u8>,
    yields: Vec<String>,
    traceback: Option<String>,
    counts: RunCounts,
    last_snapshot: Option<Vec<u8>>,
    /// The end-state digest of whichever task ran last.
    digest: String,
    /// Leave the digest out (see [`RunObserver::wants_digest`]).
    no_digest: bool,
}

/// What happens at a pre-emption (its 1-based number) or main-function yield: `Some(task)`
/// replaces the running task (a restored copy).
type Hook<'a> = dyn FnMut(&Task, u64) -> Result<Option<(Vm, Task)>, RunError> + 'a;

impl Run {
    fn until_end(
        &mut self,
        task: &mut Task,
        budget: Budget,
        observer: &mut dyn RunObserver,
        at_point: &mut Hook<'_>,
    ) -> Result<Ending, RunError> {
        let mut current: Option<(Vm, Task)> = None;
        loop {
            let t: &mut Task = match &mut current {
                Some((_, t)) => t,
                None => task,
            };
            let outcome = t.resume(budget)?;
            let chunk = t.take_output();
            observer.output(&chunk);
            self.output.extend_from_slice(&chunk);
            if let Some(ending) = self.end(t, &outcome) {
                return Ok(ending);
            }
            let point = match outcome {
                Outcome::Preempted => {
                    self.counts.preemptions += 1;
                    observer.preempted(t.suspend_site().as_ref());
                    Some(self.counts.preemptions)
                }
                Outcome::Yielded(values) => {
                    self.yields.push(values.iter().map(|v| v.to_string()).collect::<Vec<_>>().join("\t"));
                    Some(0)
                }
                _ => None,
            };
            if let Some(point) = point
                && let Some(next) = at_point(t, point)?
            {
                self.collect(t);
                current = Some(next);
            }
        }
    }

    /// Records how the task ended, if `outcome` ended it (`None`: the task goes on).
    fn end(&mut self, t: &Task, outcome: &Outcome) -> Option<Ending> {
        let ending = match outcome {
            Outcome::Preempted | Outcome::Yielded(_) => return None,
            Outcome::Finished(values) => Ending::Returned(values.iter().map(|v| v.to_string()).collect()),
            Outcome::Errored(e) => {
                self.traceback = Some(e.traceback.clone());
                Ending::Error(e.message.clone())
            }
            Outcome::Killed(reason) => Ending::Killed(reason.to_string()),
        };
        self.collect(t);
        Some(ending)
    }

    fn collect(&mut self, t: &Task) {
        let s = t.stats();
        self.counts.ticks += s.ticks;
        self.counts.deferrals += s.deferrals;
        if t.is_done() && !self.no_digest {
            self.digest = end_digest(t);
        }
    }

    fn finish(self, ending: Ending) -> RunReport {
        RunReport {
            trace: Trace { output: self.output, yields: self.yields, ending, digest: self.digest },
            counts: self.counts,
            traceback: self.traceback,
            last_snapshot: self.last_snapshot,
        }
    }
}

/// The digest of a finished task's state (or why it could not be taken: the same in any run).
pub fn end_digest(task: &Task) -> String {
    match capture(task) {
        Ok(s) => state_digest(&s),
        Err(e) => format!("not captured: {}", e.reason),
    }
}

/// One persist: capture, encode, decode and validate (as an untrusted snapshot would be), then
/// restore into a fresh VM.
pub fn persist(task: &Task) -> Result<(Vec<u8>, Vm, Task), RunError> {
    persist_into(task, Vm::deterministic)
}

/// [`persist`], restoring into a VM `make_vm` makes (another base image, for the `upgrade`
/// schedule).
pub fn persist_into(
    task: &Task,
    make_vm: fn() -> Result<Vm, amber_luau::VmError>,
) -> Result<(Vec<u8>, Vm, Task), RunError> {
    let bytes = encode(&capture(task)?);
    let verified =
        validate(&bytes, &crate::intake::default_limits().map_err(RunError::Setup)?, &SourceCatalog::embedded_only())
            .map_err(RunError::Refused)?;
    let vm = make_vm()?;
    let restored = restore(&vm, &verified, RestoreOptions::default())?;
    Ok((bytes, vm, restored))
}

/// How many interrupt ticks an uninterrupted run of `script` counts: its pre-emption points.
pub fn count_points(script: &Script) -> Result<u64, RunError> {
    Ok(run_script(script, Schedule::Fresh, &mut Quiet)?.counts.ticks)
}

/// Most persists one `every:N` run makes: the interval grows for longer runs.
pub const MAX_PERSISTS_PER_RUN: u64 = 200;

/// The `upgrade` schedule persists every this many pre-emptions (like `every:N`).
pub const UPGRADE_INTERVAL: u64 = 89;

/// Runs `script` under a schedule that persists; returns one report per run the schedule makes
/// (schedules that persist at separate points make one run per point).
pub fn run_persisting(
    script: &Script,
    schedule: Schedule,
    points_total: u64,
    amber: &Path,
) -> Result<Vec<RunReport>, RunError> {
    match separate_points(schedule, points_total) {
        Some(points) => points.into_iter().map(|p| run_persisting_at(script, schedule, p, amber)).collect(),
        None => Ok(vec![run_persisting_within(script, schedule, points_total)?]),
    }
}

/// One run persisted once, at pre-emption `at`, and finished by a restored copy (the persist
/// goes through encode, validate and restore as an untrusted snapshot would).
pub fn run_persisted_once(script: &Script, at: u64) -> Result<RunReport, RunError> {
    // Restores(1): one copy, in this process (the child-process path is CrossProcess's).
    run_persisting_at(script, Schedule::Restores(1), at, Path::new("amber"))
}

/// Persisting inside one run: every N-th pre-emption (`every:N`) or every main yield.
fn run_persisting_within(script: &Script, schedule: Schedule, points_total: u64) -> Result<RunReport, RunError> {
    let interval = match schedule {
        Schedule::Every(n) => n.max(points_total.div_ceil(MAX_PERSISTS_PER_RUN)),
        Schedule::Upgrade => UPGRADE_INTERVAL.max(points_total.div_ceil(MAX_PERSISTS_PER_RUN)),
        _ => 1,
    };
    let make_vm = if schedule == Schedule::Upgrade { crate::generators::upgraded_vm } else { Vm::deterministic };
    let budget = if schedule == Schedule::AtYields { schedule.budget() } else { Budget::ticks(interval) };
    let vm = Vm::deterministic()?;
    let mut task = vm.spawn(script)?;
    let mut run = Run::default();
    let mut persists = 0u64;
    let mut bytes_total = 0u64;
    let mut last = None;
    let ending = run.until_end(&mut task, budget, &mut Quiet, &mut |t, point| {
        let due = match schedule {
            Schedule::Every(_) | Schedule::Upgrade => point > 0,
            Schedule::AtYields => true, // every pre-emption of this budget follows a yield
            _ => false,
        };
        if !due {
            return Ok(None);
        }
        let (bytes, vm, restored) = persist_into(t, make_vm)?;
        persists += 1;
        bytes_total += bytes.len() as u64;
        last = Some(bytes);
        Ok(Some((vm, restored)))
    })?;
    run.counts.persists = persists;
    run.counts.persisted_bytes = bytes_total;
    run.last_snapshot = last;
    Ok(run.finish(ending))
}

/// Where [`run_to`] stops a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopAt {
    /// At pre-emption point N (the N-th interrupt tick; a deferred pre-emption stops a little
    /// later, which is still a pre-emption point).
    Point(u64),
    /// Right after the main function's first `coroutine.yield`.
    MainYield,
}

/// What a run stopped by [`run_to`] had done so far.
#[derive(Debug, Clone, Default)]
pub struct Prefix {
    pub output: Vec<u8>,
    pub yields: Vec<String>,
    /// Ticks the task has run.
    pub ticks: u64,
}

/// How [`run_to`] left the task.
#[derive(Debug)]
pub enum Reached {
    /// Suspended at the point, with what it did before.
    At(Prefix),
    /// It ended first; this is its whole run.
    Ended(RunReport),
}

/// Runs `task` until `stop` (in as few slices as possible: main-function yields end slices
/// early), streaming its output to `observer`. The one way drivers get a task to a persist
/// point: `amber persist`, the check's schedules and the sweep.
pub fn run_to(task: &mut Task, stop: StopAt, observer: &mut dyn RunObserver) -> Result<Reached, RunError> {
    let mut run = Run::default();
    loop {
        let budget = match stop {
            StopAt::Point(at) => Budget::ticks(at.saturating_sub(task.stats().ticks).max(1)),
            StopAt::MainYield => Budget::unlimited(),
        };
        let outcome = task.resume(budget)?;
        let chunk = task.take_output();
        observer.output(&chunk);
        run.output.extend(chunk);
        if let Some(ending) = run.end(task, &outcome) {
            return Ok(Reached::Ended(run.finish(ending)));
        }
        let reached = match (&outcome, stop) {
            (Outcome::Preempted, StopAt::Point(at)) => task.stats().ticks + 1 >= at,
            (Outcome::Yielded(_), StopAt::MainYield) => true,
            _ => false,
        };
        if let Outcome::Yielded(v) = &outcome {
            run.yields.push(v.iter().map(|v| v.to_string()).collect::<Vec<_>>().join("\t"));
        }
        if reached {
            return Ok(Reached::At(Prefix { output: run.output, yields: run.yields, ticks: task.stats().ticks }));
        }
    }
}

/// Persisting once, at pre-emption `at`; restored copies (or a child process) finish the run.
fn run_persisting_at(script: &Script, schedule: Schedule, at: u64, amber: &Path) -> Result<RunReport, RunError> {
    let vm = Vm::deterministic()?;
    let mut task = vm.spawn(script)?;
    let Prefix { output: prefix, yields, ticks } = match run_to(&mut task, StopAt::Point(at), &mut Quiet)? {
        Reached::At(prefix) => prefix,
        // The script ended first: nothing left to persist, and its run is this one.
        Reached::Ended(report) => return Ok(report),
    };
    let counts = RunCounts { preemptions: 1, ticks, ..RunCounts::default() };
    if schedule == Schedule::CrossProcess {
        return cross_process(&task, prefix, yields, counts, amber);
    }
    let copies = if let Schedule::Restores(k) = schedule { k.max(1) } else { 1 };
    let bytes = encode(&capture(&task)?);
    let mut reports = Vec::new();
    for _ in 0..copies {
        let verified = validate(
            &bytes,
            &crate::intake::default_limits().map_err(RunError::Setup)?,
            &SourceCatalog::embedded_only(),
        )
        .map_err(RunError::Refused)?;
        let vm = Vm::deterministic()?;
        let mut restored = restore(&vm, &verified, RestoreOptions::default())?;
        let mut run = Run { output: prefix.clone(), yields: yields.clone(), counts, ..Run::default() };
        let ending = run.until_end(&mut restored, Budget::unlimited(), &mut Quiet, &mut |_, _| Ok(None))?;
        run.counts.persists = 1;
        run.counts.persisted_bytes = bytes.len() as u64;
        run.last_snapshot = Some(bytes.clone());
        reports.push(run.finish(ending));
        drop(vm);
    }
    // Every copy must agree with the first; a disagreement is reported as the run's trace.
    let first = reports.remove(0);
    for other in reports {
        if other.trace != first.trace {
            return Ok(other);
        }
    }
    Ok(first)
}

/// Writes the snapshot and finishes the run in a child `amber resume` process.
fn cross_process(
    task: &Task,
    prefix: Vec<u8>,
    yields: Vec<String>,
    counts: RunCounts,
    amber: &Path,
) -> Result<RunReport, RunError> {
    let bytes = encode(&capture(task)?);
    let dir = std::env::temp_dir().join(format!("amber-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| RunError::Process(e.to_string()))?;
    let path = dir.join(format!("{:016x}.snap", bytes.len() as u64 ^ counts.preemptions.rotate_left(20)));
    std::fs::write(&path, &bytes).map_err(|e| RunError::Process(e.to_string()))?;
    let out = std::process::Command::new(amber)
        .arg("resume")
        .arg(&path)
        .arg("--digest")
        .output()
        .map_err(|e| RunError::Process(format!("{}: {e}", amber.display())))?;
    let _ = std::fs::remove_file(&path);
    // `amber resume --digest` reports the rest of the trace on stderr (crate::wire).
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail = crate::wire::read(&stderr).map_err(|e| RunError::Process(format!("{e}: {stderr}")))?;
    let mut yields = yields;
    yields.extend(tail.yields);
    let (ending, digest) = (tail.ending, tail.digest);
    let mut output = prefix;
    output.extend_from_slice(&out.stdout);
    Ok(RunReport {
        trace: Trace { output, yields, ending, digest },
        counts: RunCounts { persists: 1, persisted_bytes: bytes.len() as u64, ..counts },
        traceback: None,
        last_snapshot: Some(bytes),
    })
}

/// Compiles a script file's contents with the chunk name Luau tools use for files (`@path`).
pub fn compile_file(path: &Path, source: &[u8]) -> Result<Script, CompileError> {
    Script::compile(source, &format!("@{}", path.display()))
}
