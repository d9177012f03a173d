//! Builds the npm player library (hls.js, installed by `make web` from the registry) into the
//! binary, so the pages need nothing at run time but hawker itself.

use std::path::{Path, PathBuf};

const HLS_JS: &str = "web/node_modules/hls.js/dist/hls.min.js";

fn main() {
    println!("cargo:rerun-if-changed={HLS_JS}");
    println!("cargo:rerun-if-changed=web/package-lock.json");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("hls.min.js");
    if Path::new(HLS_JS).exists() {
        std::fs::copy(HLS_JS, &out).expect("copying hls.js");
    } else {
        // The pages then fall back to the browser's own HLS (Safari) and say so elsewhere.
        println!("cargo:warning=hls.js is not installed (run `make web`): the pages will lack their player");
        std::fs::write(&out, "").expect("writing the empty hls.js placeholder");
    }
}
