//! Counters for metrics and seller health. Relaxed atomics only: each counter is written by one
//! task (a publish's connection) or bumped with `fetch_add`, and readers take a snapshot that may
//! be a few events apart between fields, which is fine for metrics.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant, SystemTime};

/// The bitrate sample window: [`PublishStats::bitrate_bps`] is measured over at least this long.
pub const BITRATE_WINDOW: Duration = Duration::from_secs(2);

/// One publish's counters. Created by the ingest when a publish is asked for, handed to the gate
/// in [`crate::PublishRequest::stats`] (keep the `Arc` to read it), and updated as media flows.
/// Counting stops when the publish ends; the counters keep their last values.
#[derive(Debug)]
pub struct PublishStats {
    started: Instant,
    started_wall: SystemTime,
    bytes_in: AtomicU64,
    video_frames: AtomicU64,
    audio_frames: AtomicU64,
    keyframes: AtomicU64,
    last_keyframe_interval_ms: AtomicU64,
    discontinuities: AtomicU64,
    dropped: AtomicU64,
    /// The last completed bitrate sample, in bits per second; `u64::MAX` while there is none.
    recent_bps: AtomicU64,
}

/// A plain copy of [`PublishStats`] at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishStatsSnapshot {
    /// Time since the publish was asked for.
    pub uptime: Duration,
    /// Every RTMP byte read on the connection (after TLS decryption), the handshake and the
    /// commands before `publish` included.
    pub bytes_in: u64,
    /// Video tags delivered to the sink (sequence headers included).
    pub video_frames: u64,
    /// Audio tags delivered to the sink (sequence headers included).
    pub audio_frames: u64,
    /// Video keyframes delivered (the AVC sequence header is not one).
    pub keyframes: u64,
    /// Media time between the last two keyframes, in ms; `None` before the second keyframe.
    pub last_keyframe_interval_ms: Option<u64>,
    /// Timestamp jumps (backwards, or forwards by more than `Limits::max_timestamp_jump`) that
    /// were re-based so the sink sees a continuous timeline.
    pub timestamp_discontinuities: u64,
    /// Media tags received but not delivered: a refused codec, or a sink that refused them.
    pub dropped: u64,
    /// See [`PublishStats::bitrate_bps`].
    pub bitrate_bps: u64,
}

impl PublishStats {
    /// New counters, started now. The ingest makes these; a gate only reads them.
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            started_wall: SystemTime::now(),
            bytes_in: AtomicU64::new(0),
            video_frames: AtomicU64::new(0),
            audio_frames: AtomicU64::new(0),
            keyframes: AtomicU64::new(0),
            last_keyframe_interval_ms: AtomicU64::new(u64::MAX),
            discontinuities: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            recent_bps: AtomicU64::new(u64::MAX),
        }
    }

    /// When the publish was asked for (monotonic clock).
    pub fn started_at(&self) -> Instant {
        self.started
    }

    /// When the publish was asked for (wall clock).
    pub fn started_at_system(&self) -> SystemTime {
        self.started_wall
    }

    /// Incoming bitrate in bits per second: over the last completed sample window of at least
    /// [`BITRATE_WINDOW`] (samples are taken at each read), or the average since the start
    /// before the first window completes. Counts all RTMP bytes, so it includes a little protocol
    /// overhead besides the audio and video.
    pub fn bitrate_bps(&self) -> u64 {
        match self.recent_bps.load(Relaxed) {
            u64::MAX => {
                let elapsed = self.started.elapsed().as_secs_f64();
                if elapsed <= 0.0 { 0 } else { (self.bytes_in.load(Relaxed) as f64 * 8.0 / elapsed) as u64 }
            }
            bps => bps,
        }
    }

    pub fn snapshot(&self) -> PublishStatsSnapshot {
        PublishStatsSnapshot {
            uptime: self.started.elapsed(),
            bytes_in: self.bytes_in.load(Relaxed),
            video_frames: self.video_frames.load(Relaxed),
            audio_frames: self.audio_frames.load(Relaxed),
            keyframes: self.keyframes.load(Relaxed),
            last_keyframe_interval_ms: match self.last_keyframe_interval_ms.load(Relaxed) {
                u64::MAX => None,
                ms => Some(ms),
            },
            timestamp_discontinuities: self.discontinuities.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            bitrate_bps: self.bitrate_bps(),
        }
    }

    pub(crate) fn add_bytes(&self, n: u64) {
        self.bytes_in.fetch_add(n, Relaxed);
    }
    pub(crate) fn bytes_in(&self) -> u64 {
        self.bytes_in.load(Relaxed)
    }
    pub(crate) fn video_frame(&self) {
        self.video_frames.fetch_add(1, Relaxed);
    }
    pub(crate) fn audio_frame(&self) {
        self.audio_frames.fetch_add(1, Relaxed);
    }
    pub(crate) fn keyframe(&self, interval_ms: Option<u64>) {
        self.keyframes.fetch_add(1, Relaxed);
        if let Some(ms) = interval_ms {
            self.last_keyframe_interval_ms.store(ms, Relaxed);
        }
    }
    pub(crate) fn discontinuity(&self) {
        self.discontinuities.fetch_add(1, Relaxed);
    }
    pub(crate) fn drop_tag(&self) {
        self.dropped.fetch_add(1, Relaxed);
    }
    pub(crate) fn set_recent_bps(&self, bps: u64) {
        self.recent_bps.store(bps.min(u64::MAX - 1), Relaxed);
    }
}

impl Default for PublishStats {
    fn default() -> Self {
        Self::new()
    }
}

/// Samples the byte counter into [`PublishStats::set_recent_bps`]; owned by the connection.
pub(crate) struct BitrateSampler {
    since: Instant,
    bytes_then: u64,
}

impl BitrateSampler {
    pub(crate) fn new(stats: &PublishStats) -> Self {
        Self { since: Instant::now(), bytes_then: stats.bytes_in() }
    }

    pub(crate) fn tick(&mut self, stats: &PublishStats) {
        let now = Instant::now();
        let elapsed = now.duration_since(self.since);
        if elapsed >= BITRATE_WINDOW {
            let bytes = stats.bytes_in();
            let bits = bytes.saturating_sub(self.bytes_then) as f64 * 8.0;
            stats.set_recent_bps((bits / elapsed.as_secs_f64()) as u64);
            self.since = now;
            self.bytes_then = bytes;
        }
    }
}

/// Why a publish was refused, for [`IngestStats`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum RefusedAs {
    BadKey,
    BadApp,
    Unavailable,
    RateLimited,
}

/// Server-wide counters, shared by every listener of one [`crate::Server`].
#[derive(Debug, Default)]
pub struct IngestStats {
    connections_open: AtomicU64,
    connections_accepted: AtomicU64,
    rejected_total_cap: AtomicU64,
    rejected_per_ip_cap: AtomicU64,
    handshake_failures: AtomicU64,
    publishes_active: AtomicU64,
    publishes_accepted: AtomicU64,
    refused_bad_key: AtomicU64,
    refused_bad_app: AtomicU64,
    refused_unavailable: AtomicU64,
    refused_rate_limited: AtomicU64,
}

/// A plain copy of [`IngestStats`] at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IngestStatsSnapshot {
    /// Connections open now (handshaking, idle or publishing), over all listeners.
    pub connections_open: u64,
    /// Connections accepted and served since start (those closed at once by a cap excluded).
    pub connections_accepted: u64,
    /// Connections closed at once because `Limits::max_connections` was reached.
    pub connections_rejected_total_cap: u64,
    /// Connections closed at once because `Limits::max_connections_per_ip` was reached.
    pub connections_rejected_per_ip_cap: u64,
    /// RTMP or TLS handshakes that failed or timed out.
    pub handshake_failures: u64,
    /// Publishes accepted and not yet ended.
    pub publishes_active: u64,
    /// Publishes accepted since start.
    pub publishes_accepted: u64,
    /// Publishes refused, by reason ([`crate::Refusal`]).
    pub refused_bad_key: u64,
    pub refused_bad_app: u64,
    pub refused_unavailable: u64,
    /// Publishes refused before asking the gate, after too many invalid keys from the address.
    pub refused_rate_limited: u64,
}

impl IngestStats {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn snapshot(&self) -> IngestStatsSnapshot {
        IngestStatsSnapshot {
            connections_open: self.connections_open.load(Relaxed),
            connections_accepted: self.connections_accepted.load(Relaxed),
            connections_rejected_total_cap: self.rejected_total_cap.load(Relaxed),
            connections_rejected_per_ip_cap: self.rejected_per_ip_cap.load(Relaxed),
            handshake_failures: self.handshake_failures.load(Relaxed),
            publishes_active: self.publishes_active.load(Relaxed),
            publishes_accepted: self.publishes_accepted.load(Relaxed),
            refused_bad_key: self.refused_bad_key.load(Relaxed),
            refused_bad_app: self.refused_bad_app.load(Relaxed),
            refused_unavailable: self.refused_unavailable.load(Relaxed),
            refused_rate_limited: self.refused_rate_limited.load(Relaxed),
        }
    }

    pub(crate) fn connection_opened(&self) {
        self.connections_accepted.fetch_add(1, Relaxed);
        self.connections_open.fetch_add(1, Relaxed);
    }
    pub(crate) fn connection_closed(&self) {
        self.connections_open.fetch_sub(1, Relaxed);
    }
    pub(crate) fn rejected_total_cap(&self) {
        self.rejected_total_cap.fetch_add(1, Relaxed);
    }
    pub(crate) fn rejected_per_ip_cap(&self) {
        self.rejected_per_ip_cap.fetch_add(1, Relaxed);
    }
    pub(crate) fn handshake_failed(&self) {
        self.handshake_failures.fetch_add(1, Relaxed);
    }
    pub(crate) fn publish_started(&self) {
        self.publishes_accepted.fetch_add(1, Relaxed);
        self.publishes_active.fetch_add(1, Relaxed);
    }
    pub(crate) fn publish_ended(&self) {
        self.publishes_active.fetch_sub(1, Relaxed);
    }
    pub(crate) fn refused(&self, why: RefusedAs) {
        let counter = match why {
            RefusedAs::BadKey => &self.refused_bad_key,
            RefusedAs::BadApp => &self.refused_bad_app,
            RefusedAs::Unavailable => &self.refused_unavailable,
            RefusedAs::RateLimited => &self.refused_rate_limited,
        };
        counter.fetch_add(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_reflects_updates() {
        let s = PublishStats::new();
        assert_eq!(s.snapshot().last_keyframe_interval_ms, None);
        s.add_bytes(1000);
        s.video_frame();
        s.video_frame();
        s.audio_frame();
        s.keyframe(None);
        s.keyframe(Some(2000));
        s.discontinuity();
        s.drop_tag();
        let snap = s.snapshot();
        assert_eq!(snap.bytes_in, 1000);
        assert_eq!((snap.video_frames, snap.audio_frames, snap.keyframes), (2, 1, 2));
        assert_eq!(snap.last_keyframe_interval_ms, Some(2000));
        assert_eq!((snap.timestamp_discontinuities, snap.dropped), (1, 1));
        assert!(snap.bitrate_bps > 0, "average since start before the first sample");
        s.set_recent_bps(12_345);
        assert_eq!(s.bitrate_bps(), 12_345);
    }

    #[test]
    fn ingest_counters_go_up_and_down() {
        let s = IngestStats::new();
        s.connection_opened();
        s.connection_opened();
        s.connection_closed();
        s.refused(RefusedAs::RateLimited);
        s.publish_started();
        let snap = s.snapshot();
        assert_eq!((snap.connections_open, snap.connections_accepted), (1, 2));
        assert_eq!((snap.refused_rate_limited, snap.publishes_active), (1, 1));
    }
}
