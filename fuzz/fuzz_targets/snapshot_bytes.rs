//! Bytes as an untrusted snapshot: decode, validate, restore and resume if accepted.
//! The body is `amber_harness::targets::snapshot_bytes`; `cargo test` replays corpus/fuzz/snapshot_bytes/ through it.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| amber_harness::targets::snapshot_bytes(data));
