//! Whatever decodes re-encodes to the same bytes, and validation is a pure function of them.
//! The body is `amber_harness::targets::roundtrip`; `cargo test` replays corpus/fuzz/roundtrip/ through it.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| amber_harness::targets::roundtrip(data));
