//! The RTMP chunk decoder (rml_rtmp::chunk_io): split invariance and the memory bound. See `src/direct.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hawker_ingest_fuzz::direct::chunk_decoder(data);
});
