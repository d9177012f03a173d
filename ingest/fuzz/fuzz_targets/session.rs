//! The server session state machine (rml_rtmp::sessions), without the connection. See `src/direct.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hawker_ingest_fuzz::direct::session(data);
});
