//! The `wire` target: partial answers and positions as nodes send them;
//! its body, shared with the corpus replay test, is in `fuzz/harness.rs`.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::wire(data));
