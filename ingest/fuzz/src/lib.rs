//! The fuzz harness: feeds one input to hawker-ingest's real connection code (handshake,
//! rml_rtmp session, AMF commands, publish gate, codec checks, sink) over an in-memory pipe
//! instead of a TCP socket, and checks what reaches the sink. The RTMP core's own targets are in
//! [`direct`].
//!
//! Input layout: one flags byte, then the bytes the client sends.
//! - [`RAW`] clear (the usual case): the harness first sends [`CLIENT_HANDSHAKE`], a C0+C1+C2
//!   recorded from ffmpeg, and the input is the chunk stream after the handshake. The fuzzer then
//!   spends its time on chunks and commands instead of rediscovering a 3073-byte handshake.
//! - [`RAW`] set: the input is everything the client sends, handshake included (fuzzes the
//!   handshake itself).
//! - [`REFUSE`] set: the gate refuses every publish (else it accepts every one).
//! - Bits 2..=4 pick the write size ([`WRITE_SIZES`]): the input reaches the server in pieces of
//!   that size, so reads split chunk headers and payloads at different places.

pub mod direct;

use std::cell::RefCell;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use hawker_ingest::{
    Audio, EndReason, Limits, MediaSink, Publish, PublishGate, PublishRequest, Refusal, SinkError, Video,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

pub const RAW: u8 = 0x01;
pub const REFUSE: u8 = 0x02;
pub const WRITE_SIZES: [usize; 8] = [usize::MAX, 1, 2, 7, 128, 1000, 4096, 65536];

/// C0 + C1 + C2 as ffmpeg sent them (recorded by `examples/record_seeds.rs`).
pub static CLIENT_HANDSHAKE: &[u8] = include_bytes!("../handshake/ffmpeg-c0c1c2.bin");

/// What one run delivered to the sink.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub accepted: usize,
    pub refused: usize,
    pub video: usize,
    pub audio: usize,
    pub ends: Vec<EndReason>,
}

thread_local! {
    /// What the current run delivered. Per thread: the runtime runs on the calling thread, and
    /// the regression tests run inputs on several threads at once.
    static OUTCOME: RefCell<Outcome> = RefCell::default();
}

fn record(f: impl FnOnce(&mut Outcome)) {
    OUTCOME.with(|outcome| f(&mut outcome.borrow_mut()));
}

/// Accepts (or refuses) every publish, whatever its key and application.
pub struct Gate {
    pub refuse: bool,
}

impl PublishGate for Gate {
    type Sink = Sink;

    fn authorize(&self, _request: PublishRequest) -> impl Future<Output = Result<Publish<Sink>, Refusal>> + Send {
        let result = if self.refuse {
            record(|o| o.refused += 1);
            Err(Refusal::BadKey)
        } else {
            record(|o| o.accepted += 1);
            Ok(Publish { sink: Sink, kick: CancellationToken::new(), label: "fuzz".to_owned() })
        };
        std::future::ready(result)
    }
}

/// Checks that only what the ingest promises reaches a sink, and counts it.
pub struct Sink;

impl MediaSink for Sink {
    fn video(&mut self, video: Video) -> Result<(), SinkError> {
        // flv.rs forwards AVC only, parsed: a non-empty configuration or a non-empty frame.
        match video {
            Video::Config(record) => assert!(!record.is_empty(), "empty AVC configuration reached the sink"),
            Video::Frame(frame) => assert!(!frame.nalus.is_empty(), "empty AVC frame reached the sink"),
        }
        record(|o| o.video += 1);
        Ok(())
    }

    fn audio(&mut self, audio: Audio) -> Result<(), SinkError> {
        match audio {
            Audio::Config(config) => assert!(!config.is_empty(), "empty AAC configuration reached the sink"),
            Audio::Frame(frame) => assert!(!frame.data.is_empty(), "empty AAC frame reached the sink"),
        }
        record(|o| o.audio += 1);
        Ok(())
    }

    fn end(self, reason: EndReason) {
        record(|o| o.ends.push(reason));
    }
}

thread_local! {
    static RUNTIME: RefCell<tokio::runtime::Runtime> = RefCell::new(
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("tokio runtime"),
    );
}

/// Runs one fuzz input to the end of its connection, and returns what the sink saw.
/// Panics if the ingest panics, or if a publish was not ended exactly once.
pub fn run(data: &[u8]) -> Outcome {
    let Some((&flags, input)) = data.split_first() else {
        return Outcome::default();
    };
    record(|o| *o = Outcome::default());
    RUNTIME.with(|rt| rt.borrow().block_on(drive(flags, input)));
    let outcome = OUTCOME.with(|outcome| std::mem::take(&mut *outcome.borrow_mut()));
    assert_eq!(outcome.accepted, outcome.ends.len(), "every accepted publish ends exactly once: {outcome:?}");
    outcome
}

async fn drive(flags: u8, input: &[u8]) {
    let write_size = WRITE_SIZES[usize::from(flags >> 2) & 7];
    let (client, server) = tokio::io::duplex(64 * 1024);
    let gate = Arc::new(Gate { refuse: flags & REFUSE != 0 });
    let peer = SocketAddr::from(([127, 0, 0, 1], 50_000));
    // Reads as bytes arrive: batched reads would wait real time and merge the pieces that
    // `write_size` splits.
    let limits = Limits { read_interval: std::time::Duration::ZERO, ..Limits::default() };
    let serve = hawker_ingest::serve_stream(server, peer, gate, Arc::new(limits), CancellationToken::new());
    let (mut from_server, mut to_server) = tokio::io::split(client);
    let send = async move {
        if flags & RAW == 0 && to_server.write_all(CLIENT_HANDSHAKE).await.is_err() {
            return;
        }
        for piece in input.chunks(write_size) {
            if to_server.write_all(piece).await.is_err() {
                return; // The server closed the connection.
            }
            // Let the server read this piece on its own.
            tokio::task::yield_now().await;
        }
        let _ = to_server.shutdown().await;
    };
    let receive = async move {
        let mut scratch = vec![0u8; 16 * 1024];
        while let Ok(n) = from_server.read(&mut scratch).await {
            if n == 0 {
                break;
            }
        }
    };
    tokio::join!(serve, send, receive);
}
