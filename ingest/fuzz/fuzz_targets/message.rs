//! RTMP message parsing (rml_rtmp::messages): a type byte, then the payload. See `src/direct.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hawker_ingest_fuzz::direct::message(data);
});
