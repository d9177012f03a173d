//! Inputs that crashed the fuzz target (`ingest/fuzz`), replayed through the fuzz harness itself
//! (the same file, `ingest/fuzz/src/lib.rs`) on every test run: each must run to the end of its
//! connection with no panic, and every accepted publish ended once. A new crash input goes in
//! `ingest/fuzz/regressions/` with its fix.

#[allow(dead_code)]
#[path = "../fuzz/src/lib.rs"]
mod harness;

#[test]
fn inputs_that_once_crashed_the_ingest_run_clean() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/regressions");
    let mut inputs: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "no inputs in {dir}");
    for path in inputs {
        let data = std::fs::read(&path).unwrap();
        let outcome = harness::run(&data);
        println!("{}: {outcome:?}", path.display());
    }
}
