//! Bytes (or a generated program, compiled) into the bytecode reader, its yield-point maps and the register dataflow.
//! The body is `amber_harness::targets::bytecode_reader`; `cargo test` replays corpus/fuzz/bytecode_reader/ through it.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| amber_harness::targets::bytecode_reader(data));
