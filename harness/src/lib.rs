//! amber-harness: the `amber` command line and the runners behind it.
//!
//! Kept apart as in wasmtime's `crates/fuzzing`:
//! - [`generators`]: what to run (corpus discovery, schedules) and what to mutate
//!   ([`generators::mutations`]);
//! - [`oracles`]: what must agree (the observable trace of a run and its comparison);
//! - drivers: the CLI (`main.rs`), the differential [`check`], the hostile-mutation [`sweep`]
//!   and the tests, which combine the two.

#[cfg(feature = "cli")]
pub mod check;
#[cfg(feature = "cli")]
pub mod commands;
#[cfg(feature = "cli")]
pub mod fuzz_report;
pub mod generators;
pub mod inspect;
pub mod intake;
pub mod oracles;
pub mod runner;
pub mod sarif;
pub mod sweep;
pub mod targets;
pub mod wire;
