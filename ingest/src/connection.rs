//! One RTMP connection: handshake, rml_rtmp session, publish authorization, media forwarding.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rml_rtmp::handshake::{Handshake, HandshakeError, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionError, ServerSessionEvent, ServerSessionResult,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep_until, timeout, timeout_at};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::chunks::{ChunkError, ChunkGuard};
use crate::flv::{self, Tag, UnsupportedCodec};
use crate::{
    EndReason, Limits, MediaSink, Publish, PublishGate, PublishRequest, Refusal, SinkError,
    StreamKey,
};

/// After a refusal: how long we wait for the client to close first, having sent our FIN.
/// Closing while it still sends makes our kernel answer with a RST, which can discard the
/// refusal before the client reads it.
const REFUSAL_LINGER: Duration = Duration::from_millis(100);
/// After an unpublish: how long we wait for the client to close by itself (it does so right after
/// deleteStream). Closing first makes GStreamer's rtmp2sink report "connection closed remotely".
const UNPUBLISH_GRACE: Duration = Duration::from_secs(2);
/// Handshake packets are 1536 bytes; this reads C0+C1 in one go.
const HANDSHAKE_READ: usize = 4096;

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
    #[error("chunk stream: {0}")]
    Chunk(#[from] ChunkError),
    #[error("RTMP session: {0}")]
    Session(#[from] ServerSessionError),
    #[error("refused codec: {0}")]
    Codec(#[from] UnsupportedCodec),
    #[error(transparent)]
    Sink(#[from] SinkError),
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
pub async fn handle<G: PublishGate>(
    mut socket: TcpStream,
    peer: SocketAddr,
    gate: Arc<G>,
    limits: Arc<Limits>,
    shutdown: CancellationToken,
) {
    let accepted_at = Instant::now();
    let handshake = tokio::select! {
        _ = shutdown.cancelled() => return,
        result = timeout(limits.handshake_timeout, handshake(&mut socket)) => {
            result.unwrap_or(Err(ConnectionError::Timeout("handshake")))
        }
    };
    let leftover = match handshake {
        Ok(leftover) => leftover,
        Err(error) => {
            info!(%error, "handshake failed; closing");
            return;
        }
    };
    let mut connection = match Connection::new(socket, peer, gate, limits, shutdown, accepted_at) {
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

async fn handshake(socket: &mut TcpStream) -> Result<Vec<u8>, ConnectionError> {
    let mut handshake = Handshake::new(PeerType::Server);
    let mut buf = [0u8; HANDSHAKE_READ];
    loop {
        let n = socket.read(&mut buf).await?;
        if n == 0 {
            return Err(ConnectionError::ClosedInHandshake);
        }
        match handshake.process_bytes(&buf[..n])? {
            HandshakeProcessResult::InProgress { response_bytes } => {
                socket.write_all(&response_bytes).await?;
            }
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => {
                socket.write_all(&response_bytes).await?;
                return Ok(remaining_bytes);
            }
        }
    }
}

/// The accepted publish of a connection.
struct Active<S: MediaSink> {
    sink: SinkGuard<S>,
    label: String,
}

/// Owns the sink so that `end` is called exactly once: by `finish`, or from `Drop` if the
/// connection task unwinds (a panic, in rml_rtmp or in the sink) or is dropped unfinished.
struct SinkGuard<S: MediaSink>(Option<S>);

impl<S: MediaSink> SinkGuard<S> {
    fn video(&mut self, timestamp_ms: u32, data: Bytes) -> Result<(), SinkError> {
        self.0
            .as_mut()
            .map_or(Ok(()), |sink| sink.video(timestamp_ms, data))
    }

    fn audio(&mut self, timestamp_ms: u32, data: Bytes) -> Result<(), SinkError> {
        self.0
            .as_mut()
            .map_or(Ok(()), |sink| sink.audio(timestamp_ms, data))
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
            let why = if std::thread::panicking() {
                "connection panicked"
            } else {
                "connection dropped"
            };
            sink.end(EndReason::Failed(why.to_owned()));
        }
    }
}

#[derive(Clone, Copy)]
enum MediaKind {
    Video,
    Audio,
}

struct Connection<G: PublishGate> {
    socket: TcpStream,
    peer: SocketAddr,
    gate: Arc<G>,
    limits: Arc<Limits>,
    shutdown: CancellationToken,
    /// The publish must be accepted by then.
    publish_deadline: Instant,
    session: ServerSession,
    chunks: ChunkGuard,
    /// Replies of one batch of input, written at once (see `flush`).
    out: Vec<u8>,
    publish: Option<Active<G::Sink>>,
    /// The publish's kick token; before a publish, one nobody cancels.
    kick: CancellationToken,
}

impl<G: PublishGate> Connection<G> {
    fn new(
        socket: TcpStream,
        peer: SocketAddr,
        gate: Arc<G>,
        limits: Arc<Limits>,
        shutdown: CancellationToken,
        accepted_at: Instant,
    ) -> Result<Self, ConnectionError> {
        let (session, initial) = ServerSession::new(ServerSessionConfig::new())?;
        let mut connection = Self {
            socket,
            peer,
            publish_deadline: accepted_at + limits.publish_timeout,
            chunks: ChunkGuard::new(limits.max_message_bytes, limits.max_chunk_size),
            gate,
            limits,
            shutdown,
            session,
            out: Vec::new(),
            publish: None,
            kick: CancellationToken::new(),
        };
        connection.queue(initial);
        Ok(connection)
    }

    async fn run(&mut self, leftover: &[u8]) -> Result<Ending, ConnectionError> {
        if let Some(ending) = self.input(leftover).await? {
            return Ok(ending);
        }
        let mut buf = vec![0u8; self.limits.max_buffered_bytes.max(1)];
        loop {
            let n = tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => return Ok(Ending::Shutdown),
                _ = self.kick.cancelled() => return Ok(Ending::Kicked),
                _ = sleep_until(self.publish_deadline), if self.publish.is_none() => {
                    return Err(ConnectionError::Timeout("publish"));
                }
                read = timeout(self.limits.read_timeout, self.socket.read(&mut buf)) => {
                    read.map_err(|_| ConnectionError::Timeout("read"))??
                }
            };
            if n == 0 {
                return Ok(Ending::Unpublished);
            }
            if let Some(ending) = self.input(&buf[..n]).await? {
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
            Err(error) => EndReason::Failed(error.to_string()),
        };
        if let Some(active) = self.publish.take() {
            active.sink.finish(reason);
        }
        match result {
            Ok(Ending::Refused) => wait_for_client_close(self.socket, true, REFUSAL_LINGER).await,
            Ok(Ending::Unpublished) => {
                wait_for_client_close(self.socket, false, UNPUBLISH_GRACE).await
            }
            _ => {}
        }
    }

    async fn input(&mut self, bytes: &[u8]) -> Result<Option<Ending>, ConnectionError> {
        self.chunks.inspect(bytes)?;
        let results = self.session.handle_input(bytes)?;
        let ending = self.handle_results(results).await?;
        self.flush().await?;
        Ok(ending)
    }

    async fn handle_results(
        &mut self,
        results: Vec<ServerSessionResult>,
    ) -> Result<Option<Ending>, ConnectionError> {
        for result in results {
            match result {
                ServerSessionResult::OutboundResponse(packet) => {
                    self.out.extend_from_slice(&packet.bytes)
                }
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
        timeout(self.limits.read_timeout, self.socket.write_all(&self.out))
            .await
            .map_err(|_| ConnectionError::Timeout("write"))??;
        self.out.clear();
        Ok(())
    }

    // Events carry the stream key: never log an event whole.
    async fn on_event(
        &mut self,
        event: ServerSessionEvent,
    ) -> Result<Option<Ending>, ConnectionError> {
        match event {
            ServerSessionEvent::ConnectionRequested {
                request_id,
                app_name,
            } => {
                debug!(app = %app_name, "connect");
                let replies = self.session.accept_request(request_id)?;
                self.queue(replies);
            }
            ServerSessionEvent::PublishStreamRequested {
                request_id,
                app_name,
                stream_key,
                ..
            } => {
                return self
                    .on_publish(request_id, app_name, StreamKey::new(stream_key))
                    .await;
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
            ServerSessionEvent::VideoDataReceived {
                data, timestamp, ..
            } => {
                self.on_media(MediaKind::Video, timestamp.value, data)?;
            }
            ServerSessionEvent::AudioDataReceived {
                data, timestamp, ..
            } => {
                self.on_media(MediaKind::Audio, timestamp.value, data)?;
            }
            ServerSessionEvent::PlayStreamRequested { request_id, .. } => {
                warn!("refusing a play request: this server only ingests");
                let replies = self.session.reject_request(
                    request_id,
                    "NetStream.Play.Failed",
                    "playback is not served here",
                )?;
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
            let replies = self.session.reject_request(
                request_id,
                "NetStream.Publish.BadName",
                "already publishing",
            )?;
            self.queue(replies);
            return Ok(None);
        }
        let request = PublishRequest {
            app: app.clone(),
            stream_key,
            peer: self.peer,
        };
        let authorization = tokio::select! {
            _ = self.shutdown.cancelled() => return Ok(Some(Ending::Shutdown)),
            result = timeout_at(self.publish_deadline, self.gate.authorize(request)) => {
                result.map_err(|_| ConnectionError::Timeout("publish authorization"))?
            }
        };
        match authorization {
            Ok(publish) => {
                self.accept(request_id, publish)?;
                Ok(None)
            }
            Err(refusal) => {
                warn!(%app, %refusal, "publish refused");
                let replies = self.session.reject_request(
                    request_id,
                    status_code(&refusal),
                    &refusal.to_string(),
                )?;
                self.queue(replies);
                Ok(Some(Ending::Refused))
            }
        }
    }

    fn accept(
        &mut self,
        request_id: u32,
        publish: Publish<G::Sink>,
    ) -> Result<(), ConnectionError> {
        // Guard the sink before anything can fail, so `end` is called even then.
        let sink = SinkGuard(Some(publish.sink));
        tracing::Span::current().record("stream", publish.label.as_str());
        info!("publish accepted");
        self.kick = publish.kick;
        self.publish = Some(Active {
            sink,
            label: publish.label,
        });
        let replies = self.session.accept_request(request_id)?;
        self.queue(replies);
        Ok(())
    }

    fn on_media(
        &mut self,
        kind: MediaKind,
        timestamp_ms: u32,
        data: Bytes,
    ) -> Result<(), ConnectionError> {
        // rml_rtmp raises media only on a stream in the publishing state, i.e. after `accept`.
        let Some(active) = self.publish.as_mut() else {
            return Ok(());
        };
        let check = match kind {
            MediaKind::Video => flv::check_video(&data),
            MediaKind::Audio => flv::check_audio(&data),
        };
        match check {
            Ok(Tag::Empty) => Ok(()),
            Ok(Tag::Media) => Ok(match kind {
                MediaKind::Video => active.sink.video(timestamp_ms, data),
                MediaKind::Audio => active.sink.audio(timestamp_ms, data),
            }?),
            Err(codec) => {
                warn!("refusing codec {codec} on stream {}", active.label);
                Err(codec.into())
            }
        }
    }
}

/// The `onStatus` code of a refused publish. Clients show the description, not the code.
fn status_code(refusal: &Refusal) -> &'static str {
    match refusal {
        Refusal::BadKey | Refusal::Busy | Refusal::BadApp => "NetStream.Publish.BadName",
        Refusal::Unavailable => "NetStream.Failed",
    }
}

/// Reads and discards until the client closes, for at most `patience`, optionally after sending
/// our FIN, so that our close does not reset a connection the client is still using.
async fn wait_for_client_close(mut socket: TcpStream, fin_first: bool, patience: Duration) {
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
