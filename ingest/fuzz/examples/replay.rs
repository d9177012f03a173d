//! Replays fuzz inputs (seeds, crash artifacts) through the harness on a normal build, with logs:
//! `RUST_LOG=debug cargo run --example replay -- FILE... [--flags HEX]`.

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let mut args = std::env::args().skip(1).peekable();
    let mut flags = None;
    let mut files = Vec::new();
    while let Some(arg) = args.next() {
        if arg == "--flags" {
            let hex = args.next().expect("--flags HEX");
            flags = Some(u8::from_str_radix(&hex, 16).expect("hex flags byte"));
        } else {
            files.push(arg);
        }
    }
    for file in files {
        let mut input = std::fs::read(&file).expect("read input");
        if let (Some(flags), Some(first)) = (flags, input.first_mut()) {
            *first = flags;
        }
        let outcome = hawker_ingest_fuzz::run(&input);
        println!("{file}: {} bytes, {outcome:?}", input.len());
    }
}
