//! Raw declarations mirroring the shim's C headers, one module per header (`cpp/amber_*.h`).
//! Nothing here is safe to call directly; the safe layer is `vm.rs`, `capture.rs` and
//! `restore.rs`. Only the shim's entry points are declared: they catch every C++ exception, so
//! plain `extern "C"` is right for them (nothing unwinds out).

#![allow(non_camel_case_types)]

mod api;
mod capture;
mod image;
mod matcher;
mod restore;
mod scheduler;
mod types;

pub use api::*;
pub use capture::*;
pub use image::*;
pub use matcher::*;
pub use restore::*;
pub use scheduler::*;
pub use types::*;
