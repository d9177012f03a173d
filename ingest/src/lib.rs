//! RTMP ingest: accepts publishers (OBS, ffmpeg, GStreamer), asks a [`PublishGate`] whether
//! their stream key may publish, and hands the media to the [`MediaSink`] the gate returns.
//!
//! This crate knows sockets and the RTMP protocol (rml_rtmp is the sans-IO core), nothing of
//! databases, HTTP or GStreamer: the composition root plugs those in through the two traits.
//!
//! A [`Server`] serves RTMP ([`Server::serve`]) and RTMPS ([`Server::serve_tls`], with a
//! [`load_tls_config`] or [`generate_self_signed`] certificate) listeners that share its caps,
//! its invalid-key limiter and its [`IngestStats`]. Every publish gets a [`PublishStats`].

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

mod alarm;
mod connection;
mod flv;
mod limits;
mod per_addr;
mod proxy_protocol;
mod quiet;
mod read_buffers;
mod server;
mod stats;
mod timeline;
mod tls;

pub use flv::UnsupportedCodec;
pub use limits::Limits;
#[doc(hidden)]
pub use quiet::Quiet;
pub use server::{Server, serve, serve_tls};
pub use stats::{BITRATE_WINDOW, IngestStats, IngestStatsSnapshot, PublishStats, PublishStatsSnapshot};
pub use tls::{TlsError, generate_self_signed, load_tls_config};
/// The rustls this crate is built with, for [`rustls::ServerConfig`].
pub use tokio_rustls::rustls;

/// Serves one already-connected byte stream exactly as [`serve`] serves each accepted TCP socket
/// (handshake, rml_rtmp session, gate, codec checks, sink), without the accept loop
/// and its per-connection panic isolation. For the fuzz target in `ingest/fuzz`; not a stable API.
#[doc(hidden)]
pub async fn serve_stream<G, S>(
    stream: S,
    peer: SocketAddr,
    gate: std::sync::Arc<G>,
    limits: std::sync::Arc<Limits>,
    shutdown: CancellationToken,
) where
    G: PublishGate,
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Quiet + Unpin,
{
    let context = server::Context::new(gate, limits, std::sync::Arc::new(IngestStats::new()));
    connection::handle(stream, peer, std::sync::Arc::new(context), shutdown, None).await
}

/// A stream key as received in `publish`. Its `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct StreamKey(String);

impl StreamKey {
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for StreamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StreamKey(<redacted>)")
    }
}

/// What a publisher asked for.
#[derive(Debug, Clone)]
pub struct PublishRequest {
    /// The RTMP application (`live` in `rtmp://host:1935/live`).
    pub app: String,
    pub stream_key: StreamKey,
    pub peer: SocketAddr,
    /// This publish's counters, updated by the ingest as media flows (if it is accepted). Keep
    /// the `Arc` to show them.
    pub stats: std::sync::Arc<PublishStats>,
}

/// Why a publish is refused. Sent to the client as an `onStatus` error, then the socket closes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Unknown key, or a key whose stream may not publish now.
    #[error("invalid stream key")]
    BadKey,
    /// The RTMP application is not one we serve.
    #[error("unknown application")]
    BadApp,
    /// Something on our side failed; the client may retry.
    #[error("server unavailable")]
    Unavailable,
    /// Too many invalid keys from the client's address recently (see
    /// `Limits::bad_key_max_failures`). Made by the ingest itself, before asking the gate, or
    /// by a gate that counts them over several servers.
    #[error(
        "too many invalid stream keys from this address; retry in {} s",
        whole_seconds(.retry_after)
    )]
    RateLimited { retry_after: std::time::Duration },
}

/// Seconds, rounded up, at least 1: "retry in 0 s" would invite a retry that fails.
fn whole_seconds(d: &std::time::Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

/// An accepted publish: where the media goes, and how the rest of the system ends it.
pub struct Publish<S> {
    pub sink: S,
    /// Cancelled by the system (stream ended, key reset): the connection closes at once.
    pub kick: CancellationToken,
    /// A non-secret name for log lines (the stream id).
    pub label: String,
}

/// Decides whether a key may publish. Declared here, implemented by the composition root.
pub trait PublishGate: Send + Sync + 'static {
    type Sink: MediaSink;
    fn authorize(&self, request: PublishRequest) -> impl Future<Output = Result<Publish<Self::Sink>, Refusal>> + Send;
    /// A publish the ingest refused itself, without asking (`Refusal::RateLimited`): the gate
    /// may tell the key's owner why. Must return at once; the refusal is sent regardless.
    fn refused_without_asking(&self, _request: &PublishRequest, _refusal: &Refusal) {}
}

/// Why a publish ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    /// The publisher sent deleteStream / FCUnpublish or closed the socket cleanly.
    Unpublished,
    /// Kicked through [`Publish::kick`].
    Kicked,
    /// The publisher sent a codec we do not package (not H.264 / AAC).
    RefusedCodec(UnsupportedCodec),
    /// The connection failed: timeout, protocol error, limit, sink error.
    Failed(String),
}

#[derive(Debug, thiserror::Error)]
#[error("media sink refused data: {0}")]
pub struct SinkError(pub String);

/// H.264 video as a publisher sends it, parsed out of its FLV framing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Video {
    /// The AVCDecoderConfigurationRecord (FLV's AVC sequence header): SPS, PPS and the size of
    /// the NAL unit length prefixes. Comes before the first frame, and again if it changes.
    Config(Bytes),
    Frame(VideoFrame),
}

/// One coded picture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoFrame {
    /// Decode time, ms, on the publish's sanitised timeline (non-decreasing).
    pub dts_ms: u32,
    /// Presentation time minus decode time, ms (B-frames make it positive).
    pub cts_ms: i32,
    /// An IDR picture: a segment may start here.
    pub keyframe: bool,
    /// One access unit: NAL units, each prefixed with its length (AVC format).
    pub nalus: Bytes,
}

/// AAC audio as a publisher sends it, parsed out of its FLV framing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audio {
    /// The AudioSpecificConfig (FLV's AAC sequence header).
    Config(Bytes),
    Frame(AudioFrame),
}

/// One raw AAC frame (1024 samples).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioFrame {
    /// Presentation time, ms, on the same timeline as the video.
    pub pts_ms: u32,
    pub data: Bytes,
}

/// What a sink's next output waits for (see [`MediaSink::next_output`]).
#[derive(Debug, Clone)]
pub enum NextOutput {
    /// The publisher's media that completes it should have arrived by this instant: the
    /// ingest reads then and from then on as bytes arrive, before that on its read ticks, less
    /// those within an interval of it. An instant already past: as bytes arrive, now.
    MediaBy(std::time::Instant),
    /// The media given completes it and the sink is making it: once this is notified the
    /// ingest asks again, instead of reading the bytes that arrive after it (until then, it
    /// reads them as they arrive: the sink may need more after all).
    Making(std::sync::Arc<tokio::sync::Notify>),
}

/// Receives one publish session's media, in arrival order. Methods must not block for long:
/// they run on the connection's task.
pub trait MediaSink: Send + 'static {
    fn video(&mut self, video: Video) -> Result<(), SinkError>;
    fn audio(&mut self, audio: Audio) -> Result<(), SinkError>;
    /// What the sink's next output (for the packager, an LL-HLS part or a segment) waits for,
    /// which decides when the ingest reads the publisher's bytes (see
    /// [`Limits::read_interval`]), so that batching reads does not delay that output. `None`:
    /// no output is waiting on the media.
    fn next_output(&self) -> Option<NextOutput> {
        None
    }
    /// Called exactly once, when the publish ends for any reason.
    fn end(self, reason: EndReason);
}
