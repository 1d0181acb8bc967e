//! Oracles: what must agree or hold.
//!
//! - [`trace`]: a run's observable trace, and where two traces first differ (fresh against
//!   persisted-and-resumed runs must agree);
//! - [`digest`]: the canonical digest of the end state that traces carry;
//! - [`roundtrip`]: a snapshot that decodes re-encodes to the same bytes, and validation is a
//!   pure function of the bytes;
//! - [`patterns`]: Amber's pre-emptible matcher returns what Luau's own does, call for call;
//! - [`bytecode`]: the bytecode reader and its yield-point maps are consistent on any input;
//! - [`safety`]: an accepted snapshot, restored and resumed, ends without crashing, trapping,
//!   hanging past its budget or being refused by restore.
//!
//! The drivers (`amber check`, `amber sweep`, the tests, the fuzz targets) call these; none
//! carries a copy.

pub mod bytecode;
pub mod digest;
pub mod patterns;
pub mod roundtrip;
pub mod safety;
pub mod trace;

pub use digest::state_digest;
pub use trace::{Ending, Trace, first_difference, normalize_addresses};
