//! A committed capture, a targeted mutant of it and field-level edits of its model, re-encoded canonically, then as snapshot_bytes.
//! The body is `amber_harness::targets::snapshot_structured`; `cargo test` replays corpus/fuzz/snapshot_structured/ through it.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| amber_harness::targets::snapshot_structured(data));
