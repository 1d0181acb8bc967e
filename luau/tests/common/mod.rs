//! Helpers shared by the capture/restore test binaries.

use amber_luau::{Budget, Outcome, Task};

/// Resumes `task` one tick at a time (passing over main-function yields) until its `k`-th
/// pre-emption; false when the task ended first.
pub fn run_to_preemption(task: &mut Task, k: u64) -> bool {
    let mut seen = 0;
    while seen < k {
        match task.resume(Budget::ticks(1)).unwrap() {
            Outcome::Preempted => seen += 1,
            Outcome::Yielded(_) => {}
            _ => return false,
        }
    }
    true
}
