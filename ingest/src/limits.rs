use std::time::Duration;

use rml_rtmp::chunk_io::ChunkLimits;

/// Bounds on what one connection, and all of them together, may cost the server.
///
/// Memory per connection is bounded by about `max_buffered_bytes + max_message_bytes`:
/// the read buffer, plus the partial messages the RTMP core (`rml_rtmp`, ours) is assembling,
/// whose buffers together never exceed `max_message_bytes` (see [`Limits::chunk_limits`]).
/// Messages and chunk sizes above the caps are refused by the core from their chunk headers,
/// before it allocates for them.
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
    /// A publisher's socket is read at most once per this interval (a buffer-full read is
    /// followed at once), on ticks shared by every connection: one wake-up then reads every
    /// publisher's media that arrived since, instead of one per frame (an encoder sends each
    /// frame as it is made, 50 to 80 a second). The bytes wait in the kernel's socket buffer,
    /// not in ours. From when the media that completes the sink's next output should have
    /// arrived ([`crate::MediaSink::next_output`]) until the sink has it, and until the
    /// publish's first keyframe, the socket is read as bytes arrive: batching delays a part,
    /// by at most an interval, only when its media comes earlier than predicted (measured: a
    /// few ms at the median). A tick less than an interval before that instant is skipped: its
    /// media would only wait for that output (with LL-HLS parts of one interval, the reads
    /// then follow the parts; one stream's CPU 0.85x, `cargo bench --bench streams --
    /// --versus`).
    /// Zero: always as bytes arrive. The default, 200 ms, is one LL-HLS part at the default
    /// part target: the kernel holds at most about two intervals of a publisher's media
    /// (150 KB at 3 Mb/s). SRS's merged read (`mr`) batches the same way, always, by a
    /// configured latency.
    pub read_interval: Duration,
    /// Size of the per-connection read buffer: the most bytes read from the socket and handed to
    /// the session at once.
    pub max_buffered_bytes: usize,
    /// Connections open at once, publishing or not. Over it, new connections are closed at once.
    /// Shared by every listener of one [`crate::Server`].
    pub max_connections: usize,
    /// Connections open at once from one address (an IPv4 address or an IPv6 /64). Over it, new
    /// connections from that address are closed at once (logged once a minute per address).
    pub max_connections_per_ip: usize,
    /// Invalid stream keys (the gate said [`crate::Refusal::BadKey`]) an address may try within
    /// `bad_key_window`; once reached, its publishes are refused at once, without asking the gate,
    /// until the oldest of them leaves the window. 0 disables the limit.
    pub bad_key_max_failures: u32,
    pub bad_key_window: Duration,
    /// Addresses remembered for `bad_key_max_failures`; over it, the stalest are forgotten.
    pub bad_key_max_addresses: usize,
    /// A timestamp moving forward by more than this in one tag is a discontinuity, re-based so the
    /// sink sees a continuous timeline (as is any backward step of more than 100 ms in a track).
    pub max_timestamp_jump: Duration,
    /// A publish must send a video keyframe within this of being accepted, or it is ended.
    pub first_keyframe_timeout: Duration,
    /// Trusted proxies: the per-address limits (connections, invalid keys) do not apply to
    /// their own address, which every publisher behind them shares; they may open a
    /// connection with a PROXY protocol header (v1 or v2) naming the client, whose address
    /// is then limited and logged. A PROXY header from any other peer is refused.
    pub shared_addresses: Vec<ipnet::IpNet>,
}

/// Largest command or data message (AMF) accepted. Real ones are a few hundred bytes (OBS's
/// `onMetaData` about 1 KB); decoded AMF values take several times their encoded length.
pub const MAX_AMF_MESSAGE: usize = 64 * 1024;

impl Limits {
    /// What the RTMP core lets a client make it hold.
    pub fn chunk_limits(&self) -> ChunkLimits {
        ChunkLimits {
            max_message_bytes: self.max_message_bytes,
            max_amf_message_bytes: MAX_AMF_MESSAGE,
            max_chunk_size: usize::try_from(self.max_chunk_size).unwrap_or(usize::MAX),
        }
    }

    /// Whether `ip` is a load balancer's, shared by the publishers behind it.
    pub fn is_shared_address(&self, ip: std::net::IpAddr) -> bool {
        self.shared_addresses.iter().any(|net| net.contains(&ip))
    }
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
            read_interval: Duration::from_millis(200),
            max_connections: 1000,
            max_connections_per_ip: 20,
            bad_key_max_failures: 5,
            bad_key_window: Duration::from_secs(60),
            bad_key_max_addresses: 10_000,
            max_timestamp_jump: Duration::from_secs(5),
            first_keyframe_timeout: Duration::from_secs(10),
            shared_addresses: Vec::new(),
        }
    }
}
