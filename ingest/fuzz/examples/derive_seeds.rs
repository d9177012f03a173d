//! Derives the direct targets' seeds from the recorded connection seeds (`corpus/ingest_input`):
//! each whole message of their chunk streams becomes a `message` seed (type byte + payload), each
//! AMF0 command or data payload an `amf0` seed, and the recorded client handshake a `handshake`
//! seed. The chunk-stream targets (`chunk_decoder`, `session`) use `corpus/ingest_input` as is.
//! Run from `ingest/fuzz`: `cargo run --example derive_seeds`.

use std::collections::BTreeSet;
use std::fs;

use rml_rtmp::chunk_io::ChunkDeserializer;

fn main() {
    let mut messages = BTreeSet::new();
    let mut amf0 = BTreeSet::new();
    let mut seeds: Vec<_> = fs::read_dir("corpus/ingest_input").expect("corpus").map(|e| e.expect("entry").path()).collect();
    seeds.sort();
    for path in seeds {
        let data = fs::read(&path).expect("seed");
        let Some((&flags, input)) = data.split_first() else { continue };
        if flags & hawker_ingest_fuzz::RAW != 0 {
            continue; // carries its own handshake
        }
        let mut deserializer = ChunkDeserializer::new();
        let mut next = input;
        while let Ok(Some(message)) = deserializer.get_next_message(next) {
            next = &[];
            if message.type_id == 1 && message.data.len() == 4 {
                let size = u32::from_be_bytes([message.data[0], message.data[1], message.data[2], message.data[3]]);
                if deserializer.set_max_chunk_size(size as usize).is_err() {
                    break;
                }
            }
            // Media messages are many and alike: keep a few short ones of each type.
            let of_type = messages.iter().filter(|seed: &&Vec<u8>| seed.first() == Some(&message.type_id)).count();
            if message.data.len() <= 4096 && of_type < 4 {
                let mut seed = vec![message.type_id];
                seed.extend_from_slice(&message.data);
                messages.insert(seed);
            }
            match message.type_id {
                18 | 20 => amf0.insert(message.data.to_vec()),
                15 | 17 => amf0.insert(message.data.get(1..).unwrap_or_default().to_vec()),
                _ => false,
            };
        }
    }
    let mut handshake = vec![0u8];
    handshake.extend_from_slice(hawker_ingest_fuzz::CLIENT_HANDSHAKE);
    write("message", messages);
    write("amf0", amf0);
    write("handshake", BTreeSet::from([handshake]));
}

fn write(target: &str, seeds: BTreeSet<Vec<u8>>) {
    let dir = format!("corpus/{target}");
    fs::create_dir_all(&dir).expect("corpus dir");
    for (i, seed) in seeds.iter().enumerate() {
        fs::write(format!("{dir}/seed-{i:03}"), seed).expect("write seed");
    }
    println!("{dir}: {} seeds", seeds.len());
}
