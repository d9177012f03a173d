//! The server's side of the RTMP handshake (rml_rtmp::handshake). See `src/direct.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hawker_ingest_fuzz::direct::handshake(data);
});
