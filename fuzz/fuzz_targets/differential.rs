//! A generated terminating program persisted at fuzzer-chosen points agrees with its fresh run.
//! The body is `amber_harness::targets::differential`; `cargo test` replays corpus/fuzz/differential/ through it.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| amber_harness::targets::differential(data));
