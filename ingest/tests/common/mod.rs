//! A test gate and sink that record what the server does, a server runner, and client helpers.
// Each test binary uses only part of this module.
#![allow(dead_code)]

use std::collections::HashMap;
use std::future::Future;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::process::Stdio;
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use bytes::Bytes;
use hawker_ingest::{
    Audio, EndReason, IngestStats, Limits, MediaSink, NextOutput, Publish, PublishGate, PublishRequest, PublishStats,
    Refusal, Server, SinkError, Video,
};
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::rml_amf0::Amf0Value;
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult, PublishRequestType,
};
use rml_rtmp::time::RtmpTimestamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};
use tokio_util::sync::CancellationToken;

/// Every key the tests use contains this, so the log check can look for it.
pub const SECRET: &str = "S3CR3T";
/// Upper bound on any single wait; a test hitting it has failed.
pub const PATIENCE: Duration = Duration::from_secs(30);

pub fn good_key(label: &str) -> String {
    format!("good-key-{SECRET}-{label}")
}

pub fn panic_key(label: &str) -> String {
    format!("panic-key-{SECRET}-{label}")
}

#[derive(Debug, Clone)]
pub enum Rec {
    Video(Video),
    Audio(Audio),
    End(EndReason, Instant),
    Refused(Instant),
}

type Events = mpsc::UnboundedSender<(String, Rec)>;

type StatsTable = Arc<Mutex<HashMap<String, Arc<PublishStats>>>>;

/// When each publish's frames reached its sink, by label.
type ArrivalTable = Arc<Mutex<HashMap<String, Vec<Instant>>>>;

/// What each publish's sink says of its next output, by label (none: `None`).
type NextOutputTable = Arc<Mutex<HashMap<String, NextOutput>>>;

pub struct TestGate {
    events: Events,
    kicks: Arc<Mutex<HashMap<String, CancellationToken>>>,
    stats: StatsTable,
    arrivals: ArrivalTable,
    next_outputs: NextOutputTable,
}

pub struct TestSink {
    label: String,
    events: Events,
    panic_on_video: bool,
    arrivals: ArrivalTable,
    next_outputs: NextOutputTable,
}

impl TestSink {
    fn arrived(&self) {
        self.arrivals.lock().expect("arrivals").entry(self.label.clone()).or_default().push(Instant::now());
    }

    fn send(&self, rec: Rec) {
        // The test may have stopped listening; that is not the sink's problem.
        let _ = self.events.send((self.label.clone(), rec));
    }
}

impl MediaSink for TestSink {
    fn video(&mut self, video: Video) -> Result<(), SinkError> {
        if self.panic_on_video {
            panic!("test sink panics on purpose");
        }
        self.arrived();
        self.send(Rec::Video(video));
        Ok(())
    }

    fn audio(&mut self, audio: Audio) -> Result<(), SinkError> {
        self.arrived();
        self.send(Rec::Audio(audio));
        Ok(())
    }

    fn next_output(&self) -> Option<NextOutput> {
        self.next_outputs.lock().expect("next outputs").get(&self.label).cloned()
    }

    fn end(self, reason: EndReason) {
        self.send(Rec::End(reason, Instant::now()));
    }
}

impl PublishGate for TestGate {
    type Sink = TestSink;

    fn authorize(&self, request: PublishRequest) -> impl Future<Output = Result<Publish<TestSink>, Refusal>> + Send {
        let key = request.stream_key.expose();
        let accepted = [("good-key", false), ("panic-key", true)]
            .into_iter()
            .find_map(|(kind, panics)| {
                let label = key.strip_prefix(&format!("{kind}-{SECRET}-"))?;
                Some((label.to_owned(), panics))
            })
            .filter(|_| request.app == "live");
        let result = match accepted {
            Some((label, panic_on_video)) => {
                let kick = CancellationToken::new();
                self.kicks.lock().expect("kicks").insert(label.clone(), kick.clone());
                self.stats.lock().expect("stats").insert(label.clone(), request.stats.clone());
                let (events, arrivals, next_outputs) =
                    (self.events.clone(), self.arrivals.clone(), self.next_outputs.clone());
                let sink = TestSink { label: label.clone(), events, panic_on_video, arrivals, next_outputs };
                Ok(Publish { sink, kick, label })
            }
            None => {
                let _ = self.events.send(("refused".to_owned(), Rec::Refused(Instant::now())));
                Err(Refusal::BadKey)
            }
        };
        std::future::ready(result)
    }
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub stats: Arc<IngestStats>,
    tls: bool,
    events: mpsc::UnboundedReceiver<(String, Rec)>,
    inbox: HashMap<String, Vec<Rec>>,
    kicks: Arc<Mutex<HashMap<String, CancellationToken>>>,
    publish_stats: StatsTable,
    arrivals: ArrivalTable,
    next_outputs: NextOutputTable,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
    /// Holds the self-signed certificate of an RTMPS server.
    _cert_dir: Option<tempfile::TempDir>,
}

impl TestServer {
    pub async fn start(limits: Limits) -> Self {
        Self::start_with(limits, false).await
    }

    /// An RTMPS server with a fresh self-signed certificate.
    pub async fn start_tls(limits: Limits) -> Self {
        Self::start_with(limits, true).await
    }

    async fn start_with(limits: Limits, tls: bool) -> Self {
        init_logs();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (tx, events) = mpsc::unbounded_channel();
        let kicks = Arc::new(Mutex::new(HashMap::new()));
        let publish_stats = StatsTable::default();
        let arrivals = ArrivalTable::default();
        let next_outputs = NextOutputTable::default();
        let gate = Arc::new(TestGate {
            events: tx,
            kicks: kicks.clone(),
            stats: publish_stats.clone(),
            arrivals: arrivals.clone(),
            next_outputs: next_outputs.clone(),
        });
        let shutdown = CancellationToken::new();
        let server = Server::new(gate, limits);
        let stats = server.stats();
        let (task, cert_dir) = if tls {
            let dir = tempfile::tempdir().expect("tempdir");
            let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
            hawker_ingest::generate_self_signed(&cert, &key, &["127.0.0.1".to_owned()])
                .expect("self-signed certificate");
            let config = hawker_ingest::load_tls_config(&cert, &key).expect("TLS config");
            let task = tokio::spawn(server.serve_tls(listener, Arc::new(config), shutdown.clone()));
            (task, Some(dir))
        } else {
            (tokio::spawn(server.serve(listener, shutdown.clone())), None)
        };
        Self {
            addr,
            stats,
            tls,
            events,
            inbox: HashMap::new(),
            kicks,
            publish_stats,
            arrivals,
            next_outputs,
            shutdown,
            task,
            _cert_dir: cert_dir,
        }
    }

    pub fn url(&self, key: &str) -> String {
        let scheme = if self.tls { "rtmps" } else { "rtmp" };
        format!("{scheme}://{}/live/{key}", self.addr)
    }

    /// The counters the gate was handed for the publish `label`.
    pub fn publish_stats(&self, label: &str) -> Arc<PublishStats> {
        self.publish_stats.lock().expect("stats")[label].clone()
    }

    /// When each frame (video or audio) of the publish `label` reached its sink.
    pub fn frame_arrivals(&self, label: &str) -> Vec<Instant> {
        self.arrivals.lock().expect("arrivals").get(label).cloned().unwrap_or_default()
    }

    /// What the sink of the publish `label` says of its next output from now on.
    pub fn set_next_output(&self, label: &str, next: NextOutput) {
        self.next_outputs.lock().expect("next outputs").insert(label.to_owned(), next);
    }

    /// Waits until the server-wide counters satisfy `done`.
    pub async fn wait_for_stats(&self, done: impl Fn(&hawker_ingest::IngestStatsSnapshot) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let snapshot = self.stats.snapshot();
            if done(&snapshot) {
                return;
            }
            assert!(Instant::now() < deadline, "stats never got there: {snapshot:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the records of `label` satisfy `done`, and returns them.
    pub async fn wait_until(&mut self, label: &str, done: impl Fn(&[Rec]) -> bool) -> Vec<Rec> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let recs = self.inbox.get(label).map(Vec::as_slice).unwrap_or_default();
            if done(recs) {
                return recs.to_vec();
            }
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some((l, rec))) => self.inbox.entry(l).or_default().push(rec),
                Ok(None) => panic!("event channel closed while waiting for {label}"),
                Err(_) => panic!("timed out waiting for {label}; have {:?}", summary(recs)),
            }
        }
    }

    pub async fn wait_for_end(&mut self, label: &str) -> Vec<Rec> {
        self.wait_until(label, |recs| recs.iter().any(|r| matches!(r, Rec::End(..)))).await
    }

    pub fn kick(&self, label: &str) {
        self.kicks.lock().expect("kicks")[label].cancel();
    }

    /// Stops the server, waits for `serve` to return, and gives every record it ever made.
    pub async fn stop(mut self) -> HashMap<String, Vec<Rec>> {
        self.shutdown.cancel();
        timeout(PATIENCE, self.task).await.expect("serve returns after shutdown").expect("serve did not panic");
        while let Ok((label, rec)) = self.events.try_recv() {
            self.inbox.entry(label).or_default().push(rec);
        }
        assert_no_secret_in_logs();
        self.inbox
    }
}

pub fn summary(recs: &[Rec]) -> Vec<String> {
    recs.iter()
        .map(|r| match r {
            Rec::Video(Video::Config(_)) => "video config".to_owned(),
            Rec::Video(Video::Frame(f)) => format!("video@{}{}", f.dts_ms, if f.keyframe { " key" } else { "" }),
            Rec::Audio(Audio::Config(_)) => "audio config".to_owned(),
            Rec::Audio(Audio::Frame(f)) => format!("audio@{}", f.pts_ms),
            Rec::End(reason, _) => format!("end:{reason:?}"),
            Rec::Refused(_) => "refused".to_owned(),
        })
        .collect()
}

pub fn ends(recs: &[Rec]) -> Vec<EndReason> {
    recs.iter()
        .filter_map(|r| match r {
            Rec::End(reason, _) => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

pub fn end_time(recs: &[Rec]) -> Instant {
    recs.iter()
        .find_map(|r| match r {
            Rec::End(_, at) => Some(*at),
            _ => None,
        })
        .expect("an end record")
}

// ---- clients ----

pub struct Exit {
    pub success: bool,
    pub output: String,
    pub at: Instant,
}

pub fn command(program: &str, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    cmd
}

pub async fn finish(child: tokio::process::Child) -> Exit {
    let output = timeout(PATIENCE, child.wait_with_output()).await.expect("client exits in time").expect("client ran");
    let at = Instant::now();
    let text = String::from_utf8_lossy(&output.stderr).into_owned() + &String::from_utf8_lossy(&output.stdout);
    Exit { success: output.status.success(), output: text, at }
}

pub async fn run(program: &str, args: &[&str]) -> Exit {
    finish(command(program, args).spawn().expect("spawn client")).await
}

/// ffmpeg arguments publishing `seconds` of 320x240 H.264 (with B-frames) + AAC test media.
pub fn ffmpeg_publish_args(url: &str, seconds: &str, realtime: bool, video_codec: &[&str]) -> Vec<String> {
    let mut args: Vec<&str> = vec!["-hide_banner", "-loglevel", "error", "-nostdin"];
    if realtime {
        args.push("-re");
    }
    args.extend([
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=30",
        "-f",
        "lavfi",
        "-i",
        "sine=sample_rate=44100",
        "-t",
        seconds,
    ]);
    args.extend(video_codec);
    args.extend(["-c:a", "aac", "-f", "flv", url]);
    args.into_iter().map(str::to_owned).collect()
}

pub const H264: &[&str] = &["-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-bf", "2"];

pub async fn ffmpeg(args: &[String]) -> Exit {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run("ffmpeg", &args).await
}

/// A raw TCP client that completes the RTMP handshake and then does what the test says.
pub async fn handshaken(addr: SocketAddr) -> TcpStream {
    let socket = TcpStream::connect(addr).await.expect("connect");
    try_handshake(socket).await.expect("server closed during the handshake")
}

/// Connects to `server` from the local address `source` (any 127.x works on Linux loopback).
pub async fn connect_from(server: SocketAddr, source: &str) -> TcpStream {
    let source: IpAddr = source.parse().expect("source ip");
    let socket = TcpSocket::new_v4().expect("socket");
    socket.bind(SocketAddr::new(source, 0)).expect("bind source");
    socket.connect(server).await.expect("connect")
}

/// The client side of the RTMP handshake; `None` if the server closes first.
pub async fn try_handshake(mut socket: TcpStream) -> Option<TcpStream> {
    let mut handshake = Handshake::new(PeerType::Client);
    let c0c1 = handshake.generate_outbound_p0_and_p1().expect("c0c1");
    socket.write_all(&c0c1).await.ok()?;
    let mut buf = [0u8; 4096];
    loop {
        let n = timeout(PATIENCE, socket.read(&mut buf)).await.expect("handshake in time").ok()?;
        if n == 0 {
            return None;
        }
        match handshake.process_bytes(&buf[..n]).expect("handshake") {
            HandshakeProcessResult::InProgress { response_bytes } => {
                socket.write_all(&response_bytes).await.ok()?;
            }
            HandshakeProcessResult::Completed { response_bytes, .. } => {
                socket.write_all(&response_bytes).await.ok()?;
                return Some(socket);
            }
        }
    }
}

/// A hand-driven publisher (rml_rtmp's client session) that sends the tags a test chooses.
pub struct RawPublisher {
    pub socket: TcpStream,
    session: ClientSession,
}

/// AVC sequence header, keyframe and inter frame, and AAC config and frame tag bodies (their
/// payloads are not real H.264/AAC: the ingest does not decode them).
pub const AVC_HEADER: &[u8] = &[0x17, 0x00, 0, 0, 0, 1, 0x64, 0, 0x1f];
pub const AVC_KEY: &[u8] = &[0x17, 0x01, 0, 0, 0, 0, 0, 0, 2, 0x65, 0x88];
pub const AVC_INTER: &[u8] = &[0x27, 0x01, 0, 0, 0, 0, 0, 0, 2, 0x41, 0x9a];
pub const AAC_HEADER: &[u8] = &[0xAF, 0x00, 0x12, 0x10];
pub const AAC_FRAME: &[u8] = &[0xAF, 0x01, 0x21, 0x00, 0x49];

impl RawPublisher {
    /// Connects (app `live`) and publishes `key` on a handshaken socket. `Err` carries the
    /// server's refusal description, or says the server closed the connection.
    pub async fn publish(socket: TcpStream, key: &str) -> Result<Self, String> {
        let (session, initial) = ClientSession::new(ClientSessionConfig::new()).expect("session");
        let mut publisher = Self { socket, session };
        publisher.send_results(initial).await?;
        let connect = publisher.session.request_connection("live".to_owned()).expect("connect request");
        publisher.send_results(vec![connect]).await?;
        let mut buf = [0u8; 4096];
        loop {
            let n = timeout(PATIENCE, publisher.socket.read(&mut buf))
                .await
                .expect("server answers in time")
                .map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("closed by the server".to_owned());
            }
            let results = publisher.session.handle_input(&buf[..n]).map_err(|e| format!("{e:?}"))?;
            for result in results {
                match result {
                    ClientSessionResult::OutboundResponse(packet) => publisher.write(&packet.bytes).await?,
                    ClientSessionResult::RaisedEvent(event) => match event {
                        ClientSessionEvent::ConnectionRequestAccepted => {
                            let publish = publisher
                                .session
                                .request_publishing(key.to_owned(), PublishRequestType::Live)
                                .expect("publish request");
                            publisher.send_results(vec![publish]).await?;
                        }
                        ClientSessionEvent::PublishRequestAccepted => return Ok(publisher),
                        ClientSessionEvent::ConnectionRequestRejected { description } => {
                            return Err(description);
                        }
                        ClientSessionEvent::UnknownTransactionResultReceived { additional_values, .. } => {
                            return Err(description(&additional_values));
                        }
                        ClientSessionEvent::UnhandleableOnStatusCode { code } => return Err(code),
                        _ => {}
                    },
                    ClientSessionResult::UnhandleableMessageReceived(_) => {}
                }
            }
        }
    }

    pub async fn video(&mut self, timestamp: u32, body: &'static [u8]) -> Result<(), String> {
        let result = self
            .session
            .publish_video_data(Bytes::from_static(body), RtmpTimestamp::new(timestamp), false)
            .expect("video");
        self.send_results(vec![result]).await
    }

    pub async fn audio(&mut self, timestamp: u32, body: &'static [u8]) -> Result<(), String> {
        let result = self
            .session
            .publish_audio_data(Bytes::from_static(body), RtmpTimestamp::new(timestamp), false)
            .expect("audio");
        self.send_results(vec![result]).await
    }

    async fn send_results(&mut self, results: Vec<ClientSessionResult>) -> Result<(), String> {
        for result in results {
            if let ClientSessionResult::OutboundResponse(packet) = result {
                self.write(&packet.bytes).await?;
            }
        }
        Ok(())
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.socket.write_all(bytes).await.map_err(|e| e.to_string())
    }
}

/// The `description` of the status object in an `_error` reply.
fn description(values: &[Amf0Value]) -> String {
    values
        .iter()
        .find_map(|v| match v {
            Amf0Value::Object(properties) => match properties.get("description") {
                Some(Amf0Value::Utf8String(d)) => Some(d.clone()),
                _ => None,
            },
            _ => None,
        })
        .unwrap_or_else(|| format!("refused: {values:?}"))
}

/// Reads and discards until the server closes the connection; returns when it did.
pub async fn closed_by_server(socket: &mut TcpStream) -> Instant {
    let mut buf = [0u8; 4096];
    let wait = async {
        // A reset also means closed.
        while let Ok(n) = socket.read(&mut buf).await
            && n > 0
        {}
        Instant::now()
    };
    timeout(PATIENCE, wait).await.expect("server closes the connection")
}

// ---- logs: captured for every test, and checked never to contain a key ----

static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct CaptureWriter;

impl Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        logs().extend_from_slice(buf);
        eprint!("{}", String::from_utf8_lossy(buf));
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn init_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(|| CaptureWriter)
            .init();
    });
}

/// The captured logs; a test that failed while holding the lock must not fail every other test.
fn logs() -> std::sync::MutexGuard<'static, Vec<u8>> {
    LOGS.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn assert_no_secret_in_logs() {
    let leaked = String::from_utf8_lossy(&logs()).contains(SECRET);
    assert!(!leaked, "a stream key appeared in the logs");
}
