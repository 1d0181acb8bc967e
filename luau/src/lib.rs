//! amber-luau: the patched Luau runtime of Amber.
//!
//! Layers, as in `mlua`: [`ffi`] mirrors the C declarations of our host shim
//! (`cpp/amber_*.h`, one header per C++ file); [`Vm`], [`Script`] and [`Task`] are the safe API over it. No raw pointer
//! appears in the public API.
//!
//! Pre-emption: a [`Budget`] counts VM interrupt ticks (never the garbage collector's calls), so
//! the same script with the same budget always stops at the same instruction. See
//! `docs/SCHEDULER.md` for the exact rules.

mod address;
mod capture;
mod catalog;
pub mod ffi;
mod flags;
mod globals;
mod host;
mod matcher;
mod memory;
mod permanents;
mod restore;
mod script;
mod vm;

/// Whether this build's Luau checks its own assertions (`LUAU_ENABLE_ASSERT`: debug builds, so
/// every test; a violated one traps, which the hostile-mutation sweep counts as a finding).
pub const LUAU_ASSERTIONS: bool = matches!(env!("AMBER_LUAU_ASSERTIONS").as_bytes(), b"on");

pub use capture::{CaptureError, CaptureOptions, LUAU_VERSION, LiveFrame, capture, capture_with, live_frames};
pub use catalog::SourceCatalog;
pub use flags::FeatureFlags;
pub use host::{HostFunction, HostLibrary, VmOptions};
pub use matcher::{LabResult, MatcherLab};
pub use memory::{estimate_memory, memory_model};
pub use permanents::PermanentRegistry;
pub use restore::{RestoreError, RestoreOptions, restore, runtime_identity};
pub use script::{CompileError, CompilerSettings, Script, ScriptHash, compile_bytecode};
pub use vm::{
    Budget, KillReason, Outcome, ProtoIdentity, ScriptError, SpawnOptions, SuspendSite, TIME_CHECK_TICKS, Task,
    TaskLimits, TaskStats, UserdataCodec, Value, Vm, VmError,
};
