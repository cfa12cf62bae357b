//! The `lines` target; its body, shared with the corpus replay test of the
//! main crate, is in `fuzz/harness.rs`.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::lines(data));
