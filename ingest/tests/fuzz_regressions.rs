//! Inputs that crashed a fuzz target (`ingest/fuzz`), replayed through the same harness
//! functions on every test run: `regressions/<target>/` holds each target's. Each must run with
//! no panic and its target's properties holding (for `ingest_input`: every accepted publish
//! ended once). A new crash input goes in its target's folder with its fix.

#[allow(dead_code)]
#[path = "../fuzz/src/lib.rs"]
mod harness;

type Target = fn(&[u8]);

const TARGETS: [(&str, Target); 6] = [
    ("ingest_input", |data| {
        harness::run(data);
    }),
    ("chunk_decoder", harness::direct::chunk_decoder),
    ("amf0", harness::direct::amf0),
    ("message", harness::direct::message),
    ("session", harness::direct::session),
    ("handshake", harness::direct::handshake),
];

#[test]
fn inputs_that_once_crashed_a_fuzz_target_run_clean() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/regressions");
    let mut replayed = 0;
    for entry in std::fs::read_dir(root).unwrap() {
        let dir = entry.unwrap().path();
        let name = dir.file_name().unwrap().to_str().unwrap().to_owned();
        let Some((_, target)) = TARGETS.iter().find(|(target, _)| *target == name) else {
            panic!("{} is not a fuzz target's folder", dir.display());
        };
        let mut inputs: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
        inputs.sort();
        for path in inputs {
            println!("{name}: {}", path.display());
            target(&std::fs::read(&path).unwrap());
            replayed += 1;
        }
    }
    assert!(replayed > 0, "no inputs in {root}");
}

/// The seeds too: every committed seed runs clean through its target (the chunk-stream
/// targets share `ingest_input`'s).
#[test]
fn the_seeds_run_clean_through_every_target() {
    let corpus = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus");
    for (target, run) in TARGETS {
        let dir = match target {
            "chunk_decoder" | "session" => "ingest_input",
            other => other,
        };
        let seeds: Vec<_> = std::fs::read_dir(format!("{corpus}/{dir}")).unwrap().map(|e| e.unwrap().path()).collect();
        assert!(!seeds.is_empty(), "{target}: no seeds");
        for path in seeds {
            run(&std::fs::read(&path).unwrap());
        }
    }
}
