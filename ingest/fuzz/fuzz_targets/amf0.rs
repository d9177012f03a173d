//! The AMF0 decoder (rml_amf0): no panic, and decoded values round-trip. See `src/direct.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hawker_ingest_fuzz::direct::amf0(data);
});
