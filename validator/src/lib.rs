//! amber-validator: the security boundary of Amber.
//!
//! Pure Rust with no `unsafe` and no C++: everything that reads untrusted bytes lives here and
//! builds in seconds, so it can be fuzzed fast. This crate holds the Luau bytecode reader and its
//! yield-point maps; the snapshot model, binary format and checks arrive with later issues.

#![forbid(unsafe_code)]

pub mod bytecode;
pub mod reader;
