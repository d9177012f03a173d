use std::time::Duration;

/// Bounds on what one connection, and all of them together, may cost the server.
///
/// Memory per connection is bounded by about `max_buffered_bytes + max_message_bytes`:
/// the read buffer, plus the one partial message rml_rtmp may be assembling. Messages and chunk
/// sizes above the caps are refused from their chunk headers, before rml_rtmp allocates for them.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The RTMP handshake (C0 to C2) must complete within this.
    pub handshake_timeout: Duration,
    /// Idle deadline of every socket read and write after the handshake.
    pub read_timeout: Duration,
    /// From accept to an accepted `publish`: bounds clients that connect and then only keep the
    /// connection alive (pings, acks) without ever publishing. Also bounds `PublishGate::authorize`.
    pub publish_timeout: Duration,
    /// Largest RTMP message accepted, as announced in its chunk header. A 4 MiB keyframe is
    /// already far above what a live encoder sends.
    pub max_message_bytes: usize,
    /// Largest `SetChunkSize` accepted. 64 KiB is SRS's cap too; OBS and ffmpeg use 4096.
    pub max_chunk_size: u32,
    /// Size of the per-connection read buffer: the most bytes read from the socket and handed to
    /// the session at once.
    pub max_buffered_bytes: usize,
    /// Connections open at once, publishing or not. Over it, new connections are closed at once.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(10),
            publish_timeout: Duration::from_secs(10),
            max_message_bytes: 4 * 1024 * 1024,
            max_chunk_size: 64 * 1024,
            max_buffered_bytes: 64 * 1024,
            max_connections: 1000,
        }
    }
}
