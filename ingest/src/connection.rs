//! One RTMP connection: TLS (for RTMPS), handshake, rml_rtmp session, publish authorization,
//! media forwarding with timestamp sanity, and the publish's counters.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rml_rtmp::handshake::{Handshake, HandshakeError, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionError, ServerSessionEvent, ServerSessionResult,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, sleep_until, timeout, timeout_at};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::alarm::Alarm;
use crate::flv::{self, AudioBody, Tag, UnsupportedCodec, VideoBody};
use crate::per_addr::AddrKey;
use crate::quiet::Quiet;
use crate::server::Context;
use crate::stats::{BitrateSampler, IngestStats, PublishStats, RefusedAs};
use crate::timeline::{Timeline, Track};
use crate::{
    Audio, AudioFrame, EndReason, MediaSink, NextOutput, Publish, PublishGate, PublishRequest, Refusal, SinkError,
    StreamKey, Video, VideoFrame,
};

/// After a refusal: how long we wait for the client to close first, having sent our FIN.
/// Closing while it still sends makes our kernel answer with a RST, which can discard the
/// refusal before the client reads it.
const REFUSAL_LINGER: Duration = Duration::from_millis(100);
/// After an unpublish: how long we wait for the client to close by itself (it does so right after
/// deleteStream). Closing first makes GStreamer's rtmp2sink report "connection closed remotely";
/// a loaded client machine can take a few seconds to get there.
const UNPUBLISH_GRACE: Duration = Duration::from_secs(5);
/// Handshake packets are 1536 bytes; this reads C0+C1 in one go.
const HANDSHAKE_READ: usize = 4096;
/// Timestamp discontinuities are logged at `warn` at most this often per publish (the rest at
/// `debug`), so a publisher with a broken clock cannot flood the log.
const DISCONTINUITY_LOG_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0} timed out")]
    Timeout(&'static str),
    #[error("client closed the connection during the handshake")]
    ClosedInHandshake,
    #[error("handshake: {0}")]
    Handshake(#[from] HandshakeError),
    #[error("TLS handshake: {0}")]
    Tls(std::io::Error),
    #[error("RTMP session: {0}")]
    Session(#[from] ServerSessionError),
    #[error("refused codec: {0}")]
    Codec(#[from] UnsupportedCodec),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("no keyframe within {} s of the publish", .0.as_secs_f32())]
    NoKeyframe(Duration),
}

/// How a connection that did not fail ended.
#[derive(Debug)]
enum Ending {
    /// The client unpublished or closed the socket.
    Unpublished,
    Kicked,
    Shutdown,
    /// We refused a publish or play request, after telling the client why.
    Refused,
}

/// Serves one accepted socket to the end. Runs on its own task; see `server` for panics.
/// Generic over the byte stream so that the fuzz target drives it over an in-memory pipe; with
/// `tls`, the stream is wrapped in TLS first (RTMPS), within the handshake deadline.
pub async fn handle<G: PublishGate, S: AsyncRead + AsyncWrite + Quiet + Unpin>(
    socket: S,
    peer: SocketAddr,
    context: Arc<Context<G>>,
    shutdown: CancellationToken,
    tls: Option<TlsAcceptor>,
) {
    let accepted_at = Instant::now();
    let deadline = accepted_at + context.limits.handshake_timeout;
    let Some(acceptor) = tls else {
        return establish(socket, peer, context, shutdown, accepted_at, deadline).await;
    };
    let accepted = tokio::select! {
        _ = shutdown.cancelled() => return,
        result = timeout_at(deadline, acceptor.accept(socket)) => match result {
            Ok(accepted) => accepted.map_err(ConnectionError::Tls),
            Err(_) => Err(ConnectionError::Timeout("TLS handshake")),
        }
    };
    match accepted {
        Ok(stream) => establish(stream, peer, context, shutdown, accepted_at, deadline).await,
        Err(error) => {
            context.stats.handshake_failed();
            info!(%error, "TLS handshake failed; closing");
        }
    }
}

/// The RTMP handshake by `deadline`, then the session to its end.
async fn establish<G: PublishGate, S: AsyncRead + AsyncWrite + Quiet + Unpin>(
    mut socket: S,
    peer: SocketAddr,
    context: Arc<Context<G>>,
    shutdown: CancellationToken,
    accepted_at: Instant,
    deadline: Instant,
) {
    let handshake = tokio::select! {
        _ = shutdown.cancelled() => return,
        result = timeout_at(deadline, handshake(&mut socket)) => {
            result.unwrap_or(Err(ConnectionError::Timeout("handshake")))
        }
    };
    let (leftover, bytes_read) = match handshake {
        Ok(done) => done,
        Err(error) => {
            context.stats.handshake_failed();
            info!(%error, "handshake failed; closing");
            return;
        }
    };
    let connection = Connection::new(socket, peer, context, shutdown, accepted_at, bytes_read);
    let mut connection = match connection {
        Ok(connection) => connection,
        Err(error) => {
            warn!(%error, "could not start an RTMP session; closing");
            return;
        }
    };
    let result = connection.run(&leftover).await;
    match &result {
        Ok(ending) => info!(?ending, "connection closed"),
        Err(error) => warn!(%error, "connection failed; closing"),
    }
    connection.close(result).await;
}

/// The next tick of `interval` on one clock shared by every connection, so that a wake-up at
/// a tick reads every publisher due then; `None` for a zero interval (read as bytes arrive).
fn next_read_tick(interval: Duration) -> Option<Instant> {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    if interval.is_zero() {
        return None;
    }
    let epoch = *EPOCH.get_or_init(Instant::now);
    let step = interval.as_nanos();
    let next = (Instant::now().duration_since(epoch).as_nanos() / step + 1) * step;
    epoch.checked_add(Duration::from_nanos(u64::try_from(next).ok()?))
}

/// When to read a publisher's socket next (`None`: as bytes arrive): on the next read `tick`,
/// or at `due`, when the media that completes the sink's next output should have arrived. A
/// tick less than an `interval` before `due` is skipped: what it would read only waits for that
/// output. Without ticks (an interval of zero), always as bytes arrive.
fn paced_read_at(now: Instant, tick: Option<Instant>, due: Option<Instant>, interval: Duration) -> Option<Instant> {
    let tick = tick?;
    match due {
        Some(due) if due <= now => None,
        Some(due) if due <= tick + interval => Some(due),
        _ => Some(tick),
    }
}

/// The bytes after the handshake, and how many bytes were read in all.
async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(socket: &mut S) -> Result<(Vec<u8>, u64), ConnectionError> {
    let mut handshake = Handshake::new(PeerType::Server);
    let mut buf = [0u8; HANDSHAKE_READ];
    let mut bytes_read = 0;
    loop {
        let n = socket.read(&mut buf).await?;
        if n == 0 {
            return Err(ConnectionError::ClosedInHandshake);
        }
        bytes_read += n as u64;
        match handshake.process_bytes(&buf[..n])? {
            HandshakeProcessResult::InProgress { response_bytes } => {
                socket.write_all(&response_bytes).await?;
            }
            HandshakeProcessResult::Completed { response_bytes, remaining_bytes } => {
                socket.write_all(&response_bytes).await?;
                return Ok((remaining_bytes, bytes_read));
            }
        }
    }
}

/// The accepted publish of a connection.
struct Active<S: MediaSink> {
    sink: SinkGuard<S>,
    label: String,
    stats: Arc<PublishStats>,
    sampler: BitrateSampler,
    timeline: Timeline,
    /// Until the first keyframe: when the publish is ended for want of one.
    keyframe_deadline: Option<Instant>,
    /// Output timestamp of the last keyframe.
    last_keyframe_ms: Option<u32>,
    last_discontinuity_log: Option<Instant>,
    _counted: ActivePublish,
}

/// Counts the publish in [`IngestStats::publishes_active`] while it lives, panic or not.
struct ActivePublish(Arc<IngestStats>);

impl ActivePublish {
    fn new(stats: Arc<IngestStats>) -> Self {
        stats.publish_started();
        Self(stats)
    }
}

impl Drop for ActivePublish {
    fn drop(&mut self) {
        self.0.publish_ended();
    }
}

impl<S: MediaSink> Active<S> {
    /// The timestamp of a frame of `track` on the publish's sanitised timeline.
    fn timestamp(&mut self, track: Track, raw_ms: u32) -> u32 {
        let (timestamp_ms, discontinuity) = self.timeline.normalize(track, raw_ms);
        if let Some(jump) = discontinuity {
            self.stats.discontinuity();
            let now = Instant::now();
            let quiet = self.last_discontinuity_log.is_some_and(|at| now.duration_since(at) < DISCONTINUITY_LOG_EVERY);
            if quiet {
                debug!(track = ?jump.track, jump_ms = jump.jump_ms, "timestamp discontinuity; re-based");
            } else {
                self.last_discontinuity_log = Some(now);
                warn!(
                    track = ?jump.track,
                    jump_ms = jump.jump_ms,
                    raw_ms,
                    "timestamp discontinuity from the publisher; re-based to continue at {timestamp_ms} ms"
                );
            }
        }
        timestamp_ms
    }

    /// Hands a video tag's content to the sink and counts it.
    fn video(&mut self, raw_ms: u32, body: VideoBody) -> Result<(), SinkError> {
        let (video, keyframe_ms) = match body {
            VideoBody::Config(record) => (Video::Config(record), None),
            VideoBody::Frame { keyframe, cts_ms, data } => {
                let dts_ms = self.timestamp(Track::Video, raw_ms);
                (Video::Frame(VideoFrame { dts_ms, cts_ms, keyframe, nalus: data }), keyframe.then_some(dts_ms))
            }
        };
        let counted = matches!(video, Video::Frame(_));
        let result = self.sink.video(video);
        match &result {
            Ok(()) if counted => {
                self.stats.video_frame();
                if let Some(at) = keyframe_ms {
                    let interval = self.last_keyframe_ms.map(|last| u64::from(at.saturating_sub(last)));
                    self.stats.keyframe(interval);
                    self.last_keyframe_ms = Some(at);
                    self.keyframe_deadline = None;
                }
            }
            Ok(()) => {}
            Err(_) => self.stats.drop_tag(),
        }
        result
    }

    /// A tag too short for what its header announces is dropped; the publish goes on.
    fn malformed(&mut self, track: Track) {
        self.stats.drop_tag();
        debug!(stream = %self.label, ?track, "malformed media tag dropped");
    }

    /// Hands an audio tag's content to the sink and counts it.
    fn audio(&mut self, raw_ms: u32, body: AudioBody) -> Result<(), SinkError> {
        let audio = match body {
            AudioBody::Config(config) => Audio::Config(config),
            AudioBody::Frame(data) => Audio::Frame(AudioFrame { pts_ms: self.timestamp(Track::Audio, raw_ms), data }),
        };
        let counted = matches!(audio, Audio::Frame(_));
        let result = self.sink.audio(audio);
        match &result {
            Ok(()) if counted => self.stats.audio_frame(),
            Ok(()) => {}
            Err(_) => self.stats.drop_tag(),
        }
        result
    }
}

/// Owns the sink so that `end` is called exactly once: by `finish`, or from `Drop` if the
/// connection task unwinds (a panic, in rml_rtmp or in the sink) or is dropped unfinished.
struct SinkGuard<S: MediaSink>(Option<S>);

impl<S: MediaSink> SinkGuard<S> {
    fn video(&mut self, video: Video) -> Result<(), SinkError> {
        self.0.as_mut().map_or(Ok(()), |sink| sink.video(video))
    }

    fn audio(&mut self, audio: Audio) -> Result<(), SinkError> {
        self.0.as_mut().map_or(Ok(()), |sink| sink.audio(audio))
    }

    fn next_output(&self) -> Option<NextOutput> {
        self.0.as_ref().and_then(|sink| sink.next_output())
    }

    fn finish(mut self, reason: EndReason) {
        if let Some(sink) = self.0.take() {
            sink.end(reason);
        }
    }
}

impl<S: MediaSink> Drop for SinkGuard<S> {
    fn drop(&mut self) {
        if let Some(sink) = self.0.take() {
            let why = if std::thread::panicking() { "connection panicked" } else { "connection dropped" };
            sink.end(EndReason::Failed(why.to_owned()));
        }
    }
}

struct Connection<G: PublishGate, S> {
    socket: S,
    peer: SocketAddr,
    context: Arc<Context<G>>,
    shutdown: CancellationToken,
    /// The publish must be accepted by then.
    publish_deadline: Instant,
    session: ServerSession,
    /// Replies of one batch of input, written at once (see `flush`).
    out: Vec<u8>,
    publish: Option<Active<G::Sink>>,
    /// The publish's kick token; before a publish, one nobody cancels.
    kick: CancellationToken,
    /// Bytes read on the connection so far, the handshake included (after TLS).
    bytes_read: u64,
    /// Times the paced reads.
    alarm: Alarm,
}

impl<G: PublishGate, S: AsyncRead + AsyncWrite + Quiet + Unpin> Connection<G, S> {
    fn new(
        socket: S,
        peer: SocketAddr,
        context: Arc<Context<G>>,
        shutdown: CancellationToken,
        accepted_at: Instant,
        bytes_read: u64,
    ) -> Result<Self, ConnectionError> {
        let limits = &context.limits;
        let config = ServerSessionConfig { peer_limits: limits.chunk_limits(), ..ServerSessionConfig::new() };
        let (session, initial) = ServerSession::new(config)?;
        let mut connection = Self {
            socket,
            peer,
            publish_deadline: accepted_at + limits.publish_timeout,
            context,
            shutdown,
            session,
            out: Vec::new(),
            publish: None,
            kick: CancellationToken::new(),
            bytes_read,
            alarm: Alarm::new(),
        };
        connection.queue(initial);
        Ok(connection)
    }

    async fn run(&mut self, leftover: &[u8]) -> Result<Ending, ConnectionError> {
        if let Some(ending) = self.input(leftover).await? {
            return Ok(ending);
        }
        let limits = self.context.limits.clone();
        let context = self.context.clone();
        let buffers = &context.read_buffers;
        let mut filled = false;
        loop {
            let keyframe_deadline = self.publish.as_ref().and_then(|a| a.keyframe_deadline);
            // A publisher's media is read in batches (see `Limits::read_interval`) from its
            // first keyframe on: what comes before (the publish, the configurations, the first
            // frames, which anchor the stream's wall clock) is read as it arrives. So is the
            // media that completes the sink's next output, from when it should have arrived: a
            // read then, and as bytes arrive until the sink has it; once it has, the sink's
            // notice that the output is made, and then its next output, decide. A read that
            // filled the buffer left more waiting, so the next one goes at once.
            let (read_at, making) = match &self.publish {
                Some(active) if active.keyframe_deadline.is_none() && !filled => {
                    let tick = next_read_tick(limits.read_interval);
                    match active.sink.next_output() {
                        Some(NextOutput::Making(made)) if tick.is_some() => (None, Some(made)),
                        next => {
                            let due = match next {
                                Some(NextOutput::MediaBy(due)) => Some(Instant::from_std(due)),
                                _ => None,
                            };
                            (paced_read_at(Instant::now(), tick, due, limits.read_interval), None)
                        }
                    }
                }
                _ => (None, None),
            };
            // Until the read, the publisher's arrivals need not wake anyone.
            if read_at.is_some_and(|at| at > Instant::now()) {
                self.socket.quiet()?;
            }
            let (socket, alarm) = (&mut self.socket, &mut self.alarm);
            // The read buffer is borrowed once bytes wait (see `ReadBuffers`).
            let mut lent = None;
            let paced_read = async {
                if let Some(at) = read_at {
                    alarm.sleep_until(at).await;
                }
                let read = timeout(limits.read_timeout, async {
                    // Bytes first, then a buffer to read them into: waiting holds none.
                    std::future::poll_fn(|cx| socket.poll_read_ready(cx)).await?;
                    socket.read(lent.insert(buffers.take())).await
                });
                match making {
                    // Made (usually before more bytes come): the next output decides when to
                    // read them. Should the sink need more after all, they are read as they come.
                    Some(made) => tokio::select! {
                        biased;
                        () = made.notified() => None,
                        read = read => Some(read),
                    },
                    None => Some(read.await),
                }
            };
            let read = tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => return Ok(Ending::Shutdown),
                _ = self.kick.cancelled() => return Ok(Ending::Kicked),
                _ = sleep_until(self.publish_deadline), if self.publish.is_none() => {
                    return Err(ConnectionError::Timeout("publish"));
                }
                _ = sleep_until(keyframe_deadline.unwrap_or(self.publish_deadline)),
                    if keyframe_deadline.is_some() => {
                    return Err(ConnectionError::NoKeyframe(limits.first_keyframe_timeout));
                }
                read = paced_read => read,
            };
            let n = match read {
                Some(read) => read.map_err(|_| ConnectionError::Timeout("read"))??,
                // The sink made its output: its next one decides when to read.
                None => {
                    lent.into_iter().for_each(|buf| buffers.give(buf));
                    continue;
                }
            };
            // A read is always into a lent buffer.
            let Some(buf) = lent else { continue };
            if n == 0 {
                return Ok(Ending::Unpublished);
            }
            filled = n == buf.len();
            self.bytes_read += n as u64;
            if let Some(active) = self.publish.as_mut() {
                active.stats.add_bytes(n as u64);
                active.sampler.tick(&active.stats);
            }
            let ending = self.input(&buf[..n]).await?;
            buffers.give(buf);
            if let Some(ending) = ending {
                return Ok(ending);
            }
        }
    }

    /// Ends the publish, if any, then the socket.
    async fn close(mut self, result: Result<Ending, ConnectionError>) {
        let reason = match &result {
            Ok(Ending::Unpublished) => EndReason::Unpublished,
            Ok(Ending::Kicked) => EndReason::Kicked,
            Ok(Ending::Shutdown) => EndReason::Failed("server shutting down".to_owned()),
            Ok(Ending::Refused) => EndReason::Failed("client made a request we refuse".to_owned()),
            Err(ConnectionError::Codec(codec)) => EndReason::RefusedCodec(codec.clone()),
            Err(error) => EndReason::Failed(error.to_string()),
        };
        if let Some(active) = self.publish.take() {
            active.sink.finish(reason);
        }
        match result {
            Ok(Ending::Refused) => wait_for_client_close(self.socket, true, REFUSAL_LINGER).await,
            Ok(Ending::Unpublished) => wait_for_client_close(self.socket, false, UNPUBLISH_GRACE).await,
            _ => {}
        }
    }

    async fn input(&mut self, bytes: &[u8]) -> Result<Option<Ending>, ConnectionError> {
        let results = self.session.handle_input(bytes)?;
        let ending = self.handle_results(results).await?;
        self.flush().await?;
        Ok(ending)
    }

    async fn handle_results(&mut self, results: Vec<ServerSessionResult>) -> Result<Option<Ending>, ConnectionError> {
        for result in results {
            match result {
                ServerSessionResult::OutboundResponse(packet) => self.out.extend_from_slice(&packet.bytes),
                ServerSessionResult::RaisedEvent(event) => {
                    if let Some(ending) = self.on_event(event).await? {
                        return Ok(Some(ending));
                    }
                }
                ServerSessionResult::UnhandleableMessageReceived(payload) => {
                    debug!(type_id = payload.type_id, "ignoring RTMP message");
                }
            }
        }
        Ok(None)
    }

    /// Queues the replies of `accept_request`/`reject_request`, which are packets only.
    fn queue(&mut self, results: Vec<ServerSessionResult>) {
        for result in results {
            if let ServerSessionResult::OutboundResponse(packet) = result {
                self.out.extend_from_slice(&packet.bytes);
            }
        }
    }

    /// Writes the queued replies in one write: several small writes meet the client's delayed
    /// ACK and stall each reply by ~40 ms (measured on nginx-rtmp, xiu and ffmpeg).
    async fn flush(&mut self) -> Result<(), ConnectionError> {
        if self.out.is_empty() {
            return Ok(());
        }
        // The flush matters for TLS: it pushes out records rustls still holds.
        let write = async {
            self.socket.write_all(&self.out).await?;
            self.socket.flush().await
        };
        timeout(self.context.limits.read_timeout, write).await.map_err(|_| ConnectionError::Timeout("write"))??;
        self.out.clear();
        Ok(())
    }

    // Events carry the stream key: never log an event whole, nor the app name whole (a key
    // pasted into OBS's server URL, `rtmp://host/live/KEY`, arrives inside it).
    async fn on_event(&mut self, event: ServerSessionEvent) -> Result<Option<Ending>, ConnectionError> {
        match event {
            ServerSessionEvent::ConnectionRequested { request_id, app_name } => {
                debug!(app = %LoggedApp(&app_name), "connect");
                let replies = self.session.accept_request(request_id)?;
                self.queue(replies);
            }
            ServerSessionEvent::PublishStreamRequested { request_id, app_name, stream_key, .. } => {
                return self.on_publish(request_id, app_name, StreamKey::new(stream_key)).await;
            }
            ServerSessionEvent::PublishStreamFinished { .. } => {
                return Ok(Some(Ending::Unpublished));
            }
            ServerSessionEvent::UnhandleableAmf0Command { command_name, .. } => {
                // rml_rtmp leaves FCUnpublish to us; releaseStream, FCPublish and the like need no answer.
                if command_name == "FCUnpublish" && self.publish.is_some() {
                    return Ok(Some(Ending::Unpublished));
                }
                debug!(command = %command_name, "ignoring command");
            }
            ServerSessionEvent::VideoDataReceived { data, timestamp, .. } => {
                self.on_media(Track::Video, timestamp.value, data)?;
            }
            ServerSessionEvent::AudioDataReceived { data, timestamp, .. } => {
                self.on_media(Track::Audio, timestamp.value, data)?;
            }
            ServerSessionEvent::PlayStreamRequested { request_id, .. } => {
                warn!("refusing a play request: this server only ingests");
                let replies =
                    self.session.reject_request(request_id, "NetStream.Play.Failed", "playback is not served here")?;
                self.queue(replies);
                return Ok(Some(Ending::Refused));
            }
            ServerSessionEvent::StreamMetadataChanged { .. } => debug!("stream metadata received"),
            _ => {}
        }
        Ok(None)
    }

    async fn on_publish(
        &mut self,
        request_id: u32,
        app: String,
        stream_key: StreamKey,
    ) -> Result<Option<Ending>, ConnectionError> {
        if self.publish.is_some() {
            warn!("refusing a second publish on one connection");
            let replies = self.session.reject_request(request_id, "NetStream.Publish.BadName", "already publishing")?;
            self.queue(replies);
            return Ok(None);
        }
        let addr = AddrKey::of(self.peer.ip());
        // Behind a load balancer every publisher has its address: no limit per address.
        let limited = !self.context.limits.is_shared_address(self.peer.ip());
        let stats = Arc::new(PublishStats::new());
        stats.add_bytes(self.bytes_read);
        let request = PublishRequest { app: app.clone(), stream_key, peer: self.peer, stats: stats.clone() };
        let gate = self.context.gate.clone();
        if limited && let Some(retry_after) = self.context.key_failures.blocked(addr, Instant::now()) {
            let refusal = Refusal::RateLimited { retry_after };
            gate.refused_without_asking(&request, &refusal);
            return self.refuse(request_id, &app, refusal);
        }
        let authorization = tokio::select! {
            _ = self.shutdown.cancelled() => return Ok(Some(Ending::Shutdown)),
            result = timeout_at(self.publish_deadline, gate.authorize(request)) => {
                result.map_err(|_| ConnectionError::Timeout("publish authorization"))?
            }
        };
        match authorization {
            Ok(publish) => {
                self.accept(request_id, publish, stats)?;
                Ok(None)
            }
            Err(refusal) => {
                if limited && refusal == Refusal::BadKey {
                    self.context.key_failures.record(addr, Instant::now());
                }
                self.refuse(request_id, &app, refusal)
            }
        }
    }

    /// Tells the client why its publish is refused; the connection then closes.
    fn refuse(&mut self, request_id: u32, app: &str, refusal: Refusal) -> Result<Option<Ending>, ConnectionError> {
        warn!(app = %LoggedApp(app), %refusal, "publish refused");
        self.context.stats.refused(match refusal {
            Refusal::BadKey => RefusedAs::BadKey,
            Refusal::BadApp => RefusedAs::BadApp,
            Refusal::Unavailable => RefusedAs::Unavailable,
            Refusal::RateLimited { .. } => RefusedAs::RateLimited,
        });
        let replies = self.session.reject_request(request_id, status_code(&refusal), &refusal.to_string())?;
        self.queue(replies);
        Ok(Some(Ending::Refused))
    }

    fn accept(
        &mut self,
        request_id: u32,
        publish: Publish<G::Sink>,
        stats: Arc<PublishStats>,
    ) -> Result<(), ConnectionError> {
        // Guard the sink before anything can fail, so `end` is called even then.
        let sink = SinkGuard(Some(publish.sink));
        tracing::Span::current().record("stream", publish.label.as_str());
        info!("publish accepted");
        self.kick = publish.kick;
        let limits = &self.context.limits;
        self.publish = Some(Active {
            sink,
            label: publish.label,
            sampler: BitrateSampler::new(&stats),
            stats,
            timeline: Timeline::new(limits.max_timestamp_jump),
            keyframe_deadline: Some(Instant::now() + limits.first_keyframe_timeout),
            last_keyframe_ms: None,
            last_discontinuity_log: None,
            _counted: ActivePublish::new(self.context.stats.clone()),
        });
        let replies = self.session.accept_request(request_id)?;
        self.queue(replies);
        Ok(())
    }

    fn on_media(&mut self, track: Track, timestamp_ms: u32, data: Bytes) -> Result<(), ConnectionError> {
        // rml_rtmp raises media only on a stream in the publishing state, i.e. after `accept`.
        let Some(active) = self.publish.as_mut() else {
            return Ok(());
        };
        let refused = |active: &mut Active<G::Sink>, codec: UnsupportedCodec| {
            active.stats.drop_tag();
            warn!("refusing codec {codec} on stream {}", active.label);
            ConnectionError::from(codec)
        };
        let delivered = match track {
            Track::Video => match flv::parse_video(&data).map_err(|c| refused(active, c))? {
                Tag::Media(body) => active.video(timestamp_ms, body),
                Tag::Empty => Ok(()),
                Tag::Malformed => {
                    active.malformed(track);
                    return Ok(());
                }
            },
            Track::Audio => match flv::parse_audio(&data).map_err(|c| refused(active, c))? {
                Tag::Media(body) => active.audio(timestamp_ms, body),
                Tag::Empty => Ok(()),
                Tag::Malformed => {
                    active.malformed(track);
                    return Ok(());
                }
            },
        };
        Ok(delivered?)
    }
}

/// The `onStatus` code of a refused publish. Clients show the description, not the code.
fn status_code(refusal: &Refusal) -> &'static str {
    match refusal {
        Refusal::BadKey | Refusal::BadApp => "NetStream.Publish.BadName",
        Refusal::RateLimited { .. } => "NetStream.Publish.Rejected",
        Refusal::Unavailable => "NetStream.Failed",
    }
}

/// Reads and discards until the client closes, for at most `patience`, optionally after sending
/// our FIN, so that our close does not reset a connection the client is still using.
async fn wait_for_client_close<S: AsyncRead + AsyncWrite + Unpin>(mut socket: S, fin_first: bool, patience: Duration) {
    let drain = async {
        if fin_first {
            socket.shutdown().await?;
        }
        let mut scratch = [0u8; 4096];
        while socket.read(&mut scratch).await? > 0 {}
        Ok::<_, std::io::Error>(())
    };
    // Errors and the deadline both just mean: close now.
    let _ = timeout(patience, drain).await;
}

/// An RTMP app name as logged: its first path segment only, and only when it is short; what
/// follows, or a long first segment, may be a stream key.
struct LoggedApp<'a>(&'a str);

impl std::fmt::Display for LoggedApp<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (first, rest) = self.0.split_once('/').unwrap_or((self.0, ""));
        let first = if first.chars().count() <= 16 { first } else { "(redacted)" };
        match rest {
            "" => f.write_str(first),
            _ => write!(f, "{first}/(redacted)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tick_is_skipped_for_an_output_due_before_the_tick_after_it() {
        let interval = Duration::from_millis(200);
        let now = Instant::now();
        let tick = now + Duration::from_millis(50);
        let at = |ms: u64| Some(now + Duration::from_millis(ms));
        // Nothing due: the tick.
        assert_eq!(paced_read_at(now, Some(tick), None, interval), Some(tick));
        // Due before the tick, or after it but before the next one: read then, not on the tick.
        assert_eq!(paced_read_at(now, Some(tick), at(30), interval), at(30));
        assert_eq!(paced_read_at(now, Some(tick), at(180), interval), at(180));
        assert_eq!(paced_read_at(now, Some(tick), at(250), interval), at(250));
        // Due later: the tick, and the instant is looked at again after it.
        assert_eq!(paced_read_at(now, Some(tick), at(251), interval), Some(tick));
        // Due already: read as bytes arrive.
        assert_eq!(paced_read_at(now, Some(tick), Some(now), interval), None);
        // No ticks (an interval of zero): always as bytes arrive.
        assert_eq!(paced_read_at(now, None, at(30), Duration::ZERO), None);
        assert_eq!(paced_read_at(now, None, None, Duration::ZERO), None);
    }
}
