//! One fuzz input = one RTMP client connection to hawker-ingest. Input layout: see `src/lib.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hawker_ingest_fuzz::run(data);
});
