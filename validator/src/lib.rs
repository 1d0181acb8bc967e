//! amber-validator: the security boundary of Amber.
//!
//! Pure Rust with no `unsafe` and no C++: everything that reads untrusted bytes lives here and
//! builds in seconds, so it can be fuzzed fast. It holds the Luau bytecode reader and its
//! yield-point maps, the snapshot model and binary format, and the checks.

#![forbid(unsafe_code)]

mod bits;
pub mod bytecode;
pub mod contract;
pub mod diagnostics;
pub mod limits;
pub mod reader;
pub mod snapshot;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod validate;

pub use diagnostics::{Code, Diagnostic, Family, ObjectPath, Report, Severity};
pub use limits::{Limits, ObjectSizes, PermanentKind, RuntimeIdentity, estimate_memory};
pub use snapshot::format::{decode, encode};
pub use snapshot::{Snapshot, SnapshotView, Value};
pub use validate::{
    CallFrame, CallFrameKind, CatalogEntry, PreparedScript, ScriptCatalog, ThreadLayout, Verified, VerifiedScript,
    validate, validate_model, validate_view,
};
