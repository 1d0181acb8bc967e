//! The promise of the validator, as an oracle: an accepted snapshot, restored into a fresh VM
//! and resumed, ends (finishes, fails, is killed or spends its tick budget) without crashing,
//! tripping one of Luau's assertions, hanging or being refused by restore's own checks. Crashes
//! and traps end the process; drivers run this in a child process (`amber sweep`) or under a
//! fuzzer that catches them. A hang shows as a slice that never returns (the fuzzer's timeout,
//! the sweep's watchdog).

use amber_luau::{Budget, Outcome, RestoreOptions, Vm, restore};
use amber_validator::{Limits, ScriptCatalog, validate};

/// How an untrusted snapshot fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The validator refused it.
    Refused,
    /// Accepted, restored and resumed until it ended this way: `finished`, `errored`,
    /// `killed`, `budget` (the tick budget ran out) or `not-resumable` (a restored task that
    /// had already ended).
    Ended(&'static str),
}

/// Ticks per slice while resuming (pre-empting often exercises the restored state's resumes).
const SLICE: u64 = 1000;

/// Validates, restores and resumes `bytes` for at most `max_ticks` ticks. `Err` is a finding:
/// something the validator accepted that restore refused, or no VM to try it in.
pub fn resume_untrusted(
    bytes: &[u8],
    limits: &Limits,
    catalog: &dyn ScriptCatalog,
    max_ticks: u64,
) -> Result<Verdict, String> {
    let vm = Vm::deterministic().map_err(|e| format!("no VM to restore into: {e}"))?;
    resume_untrusted_in(&vm, bytes, limits, catalog, max_ticks)
}

/// [`resume_untrusted`] in an existing VM, which must stay usable for the next snapshot (a
/// fuzzer reuses one VM for every input).
pub fn resume_untrusted_in(
    vm: &Vm,
    bytes: &[u8],
    limits: &Limits,
    catalog: &dyn ScriptCatalog,
    max_ticks: u64,
) -> Result<Verdict, String> {
    let Ok(verified) = validate(bytes, limits, catalog) else { return Ok(Verdict::Refused) };
    let mut task = restore(vm, &verified, RestoreOptions::default())
        .map_err(|e| format!("restore refused a snapshot the validator accepted: {e}"))?;
    loop {
        if task.stats().ticks >= max_ticks {
            return Ok(Verdict::Ended("budget"));
        }
        match task.resume(Budget::ticks(SLICE)) {
            Ok(Outcome::Preempted) | Ok(Outcome::Yielded(_)) => {
                let _ = task.take_output();
            }
            Ok(Outcome::Finished(_)) => return Ok(Verdict::Ended("finished")),
            Ok(Outcome::Errored(_)) => return Ok(Verdict::Ended("errored")),
            Ok(Outcome::Killed(_)) => return Ok(Verdict::Ended("killed")),
            Err(_) => return Ok(Verdict::Ended("not-resumable")),
        }
    }
}
