//! Records what a real ffmpeg publish sends, and writes the fuzz seeds from it.
//!
//! Runs a real hawker-ingest server (accepting every key) behind a TCP proxy that keeps the
//! client-to-server bytes, publishes to the proxy with ffmpeg, then writes
//! `handshake/ffmpeg-c0c1c2.bin` and the seeds in `corpus/ingest_input/` (see README.md).
//! Run from `ingest/fuzz`: `cargo run --example record_seeds`.

use std::path::Path;
use std::sync::{Arc, Mutex};

use hawker_ingest::Limits;
use hawker_ingest_fuzz::{Gate, RAW, REFUSE};
use rml_rtmp::chunk_io::ChunkDeserializer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

const HANDSHAKE: usize = 1 + 1536 + 1536;
const MAX_SEED: usize = 64 * 1024;

fn main() {
    // The seeds are replayed through the harness below, which runs its own runtime.
    let recorded = tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(record());
    println!("recorded {} client bytes", recorded.len());
    assert!(recorded.len() > HANDSHAKE, "ffmpeg sent no chunk stream");
    let (handshake, chunks) = recorded.split_at(HANDSHAKE);
    std::fs::write("handshake/ffmpeg-c0c1c2.bin", handshake).expect("write handshake");

    let messages = message_ends(chunks);
    // The prefix before the first audio, video or data message: connect .. publish.
    let publish_end = messages
        .iter()
        .take_while(|(_, type_id)| ![8, 9, 18].contains(type_id))
        .last()
        .map_or(0, |&(end, _)| end);
    let metadata_end = messages
        .iter()
        .find(|(_, type_id)| *type_id == 18)
        .map_or(publish_end, |&(end, _)| end);
    let capped = messages
        .iter()
        .map(|&(end, _)| end)
        .take_while(|&end| end <= MAX_SEED)
        .last()
        .unwrap_or(0);
    // After the last media message: FCUnpublish, deleteStream.
    let last_media = messages
        .iter()
        .rposition(|(_, type_id)| [8, 9].contains(type_id))
        .expect("media messages");
    let tail = &chunks[messages[last_media].0..];

    let dir = Path::new("corpus/ingest_input");
    std::fs::create_dir_all(dir).expect("corpus dir");
    // Writes of 128 bytes: rml_rtmp handles createStream and publish only after we accepted
    // connect, which happens between reads, so a whole prefix in one read never gets to publish.
    let w128 = 4 << 2;
    let seeds: [(&str, u8, Vec<u8>); 8] = [
        ("ffmpeg-publish-64k", w128, chunks[..capped].to_vec()),
        ("ffmpeg-publish-64k-one-read", 0, chunks[..capped].to_vec()),
        (
            "ffmpeg-connect-publish",
            w128,
            chunks[..publish_end].to_vec(),
        ),
        (
            "ffmpeg-connect-publish-metadata-split7",
            3 << 2,
            chunks[..metadata_end].to_vec(),
        ),
        (
            "ffmpeg-connect-publish-refused",
            REFUSE | w128,
            chunks[..publish_end].to_vec(),
        ),
        (
            "ffmpeg-unpublish",
            w128,
            [&chunks[..publish_end], tail].concat(),
        ),
        ("ffmpeg-raw-handshake-only", RAW, handshake.to_vec()),
        (
            "ffmpeg-raw-handshake-connect-split1",
            RAW | 1 << 2,
            [handshake, &chunks[..publish_end]].concat(),
        ),
    ];
    for (name, flags, body) in seeds {
        let seed = [&[flags][..], &body].concat();
        let outcome = hawker_ingest_fuzz::run(&seed);
        println!("{name}: {} bytes, {outcome:?}", seed.len());
        std::fs::write(dir.join(name), seed).expect("write seed");
    }
}

/// Byte offsets just past each message of the chunk stream, with the message type ids.
fn message_ends(chunks: &[u8]) -> Vec<(usize, u8)> {
    let mut deserializer = ChunkDeserializer::new();
    let mut ends = Vec::new();
    for (i, byte) in chunks.iter().enumerate() {
        let mut next = deserializer.get_next_message(std::slice::from_ref(byte));
        while let Ok(Some(message)) = next {
            if message.type_id == 1 {
                let size = u32::from_be_bytes(message.data[..4].try_into().expect("4 bytes"));
                deserializer
                    .set_max_chunk_size(size as usize)
                    .expect("chunk size");
            }
            ends.push((i + 1, message.type_id));
            next = deserializer.get_next_message(&[]);
        }
    }
    ends
}

async fn record() -> Vec<u8> {
    let server = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let upstream = server.local_addr().expect("addr");
    let shutdown = CancellationToken::new();
    tokio::spawn(hawker_ingest::serve(
        server,
        Arc::new(Gate { refuse: false }),
        Limits::default(),
        shutdown.clone(),
    ));
    let proxy = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = proxy.local_addr().expect("addr").port();
    let recorded = Arc::new(Mutex::new(Vec::new()));
    let keep = recorded.clone();
    let proxying = tokio::spawn(async move {
        let (client, _) = proxy.accept().await.expect("accept");
        let server = TcpStream::connect(upstream).await.expect("connect");
        let (mut client_rd, mut client_wr) = client.into_split();
        let (mut server_rd, mut server_wr) = server.into_split();
        let up = async {
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n @ 1..) = client_rd.read(&mut buf).await {
                keep.lock().expect("lock").extend_from_slice(&buf[..n]);
                if server_wr.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
            let _ = server_wr.shutdown().await;
        };
        let down = async {
            let _ = tokio::io::copy(&mut server_rd, &mut client_wr).await;
            let _ = client_wr.shutdown().await;
        };
        tokio::join!(up, down);
    });
    let status = tokio::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30"])
        .args(["-f", "lavfi", "-i", "sine", "-t", "2"])
        .args(["-c:v", "libx264", "-g", "30", "-c:a", "aac", "-f", "flv"])
        .arg(format!("rtmp://127.0.0.1:{port}/live/fuzz-seed-key"))
        .status()
        .await
        .expect("run ffmpeg");
    assert!(status.success(), "ffmpeg failed: {status}");
    proxying.await.expect("proxy");
    shutdown.cancel();
    recorded.lock().expect("lock").clone()
}
