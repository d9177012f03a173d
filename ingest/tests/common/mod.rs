//! A test gate and sink that record what the server does, a server runner, and client helpers.
// Each test binary uses only part of this module.
#![allow(dead_code)]

use std::collections::HashMap;
use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use bytes::Bytes;
use hawker_ingest::{
    EndReason, Limits, MediaSink, Publish, PublishGate, PublishRequest, Refusal, SinkError, serve,
};
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
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
    Video(u32, Bytes),
    Audio(u32, Bytes),
    End(EndReason, Instant),
    Refused(Instant),
}

type Events = mpsc::UnboundedSender<(String, Rec)>;

pub struct TestGate {
    events: Events,
    kicks: Arc<Mutex<HashMap<String, CancellationToken>>>,
}

pub struct TestSink {
    label: String,
    events: Events,
    panic_on_video: bool,
}

impl TestSink {
    fn send(&self, rec: Rec) {
        // The test may have stopped listening; that is not the sink's problem.
        let _ = self.events.send((self.label.clone(), rec));
    }
}

impl MediaSink for TestSink {
    fn video(&mut self, timestamp_ms: u32, data: Bytes) -> Result<(), SinkError> {
        if self.panic_on_video {
            panic!("test sink panics on purpose");
        }
        self.send(Rec::Video(timestamp_ms, data));
        Ok(())
    }

    fn audio(&mut self, timestamp_ms: u32, data: Bytes) -> Result<(), SinkError> {
        self.send(Rec::Audio(timestamp_ms, data));
        Ok(())
    }

    fn end(self, reason: EndReason) {
        self.send(Rec::End(reason, Instant::now()));
    }
}

impl PublishGate for TestGate {
    type Sink = TestSink;

    fn authorize(
        &self,
        request: PublishRequest,
    ) -> impl Future<Output = Result<Publish<TestSink>, Refusal>> + Send {
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
                self.kicks
                    .lock()
                    .expect("kicks")
                    .insert(label.clone(), kick.clone());
                let sink = TestSink {
                    label: label.clone(),
                    events: self.events.clone(),
                    panic_on_video,
                };
                Ok(Publish { sink, kick, label })
            }
            None => {
                let _ = self
                    .events
                    .send(("refused".to_owned(), Rec::Refused(Instant::now())));
                Err(Refusal::BadKey)
            }
        };
        std::future::ready(result)
    }
}

pub struct TestServer {
    pub addr: SocketAddr,
    events: mpsc::UnboundedReceiver<(String, Rec)>,
    inbox: HashMap<String, Vec<Rec>>,
    kicks: Arc<Mutex<HashMap<String, CancellationToken>>>,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl TestServer {
    pub async fn start(limits: Limits) -> Self {
        init_logs();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (tx, events) = mpsc::unbounded_channel();
        let kicks = Arc::new(Mutex::new(HashMap::new()));
        let gate = Arc::new(TestGate {
            events: tx,
            kicks: kicks.clone(),
        });
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(serve(listener, gate, limits, shutdown.clone()));
        Self {
            addr,
            events,
            inbox: HashMap::new(),
            kicks,
            shutdown,
            task,
        }
    }

    pub fn url(&self, key: &str) -> String {
        format!("rtmp://{}/live/{key}", self.addr)
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
        self.wait_until(label, |recs| recs.iter().any(|r| matches!(r, Rec::End(..))))
            .await
    }

    pub fn kick(&self, label: &str) {
        self.kicks.lock().expect("kicks")[label].cancel();
    }

    /// Stops the server, waits for `serve` to return, and gives every record it ever made.
    pub async fn stop(mut self) -> HashMap<String, Vec<Rec>> {
        self.shutdown.cancel();
        timeout(PATIENCE, self.task)
            .await
            .expect("serve returns after shutdown")
            .expect("serve did not panic");
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
            Rec::Video(ts, d) => format!("video@{ts}:{:02x?}", &d[..d.len().min(2)]),
            Rec::Audio(ts, d) => format!("audio@{ts}:{:02x?}", &d[..d.len().min(2)]),
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
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

pub async fn finish(child: tokio::process::Child) -> Exit {
    let output = timeout(PATIENCE, child.wait_with_output())
        .await
        .expect("client exits in time")
        .expect("client ran");
    let at = Instant::now();
    let text = String::from_utf8_lossy(&output.stderr).into_owned()
        + &String::from_utf8_lossy(&output.stdout);
    Exit {
        success: output.status.success(),
        output: text,
        at,
    }
}

pub async fn run(program: &str, args: &[&str]) -> Exit {
    finish(command(program, args).spawn().expect("spawn client")).await
}

/// ffmpeg arguments publishing `seconds` of 320x240 H.264 (with B-frames) + AAC test media.
pub fn ffmpeg_publish_args(
    url: &str,
    seconds: &str,
    realtime: bool,
    video_codec: &[&str],
) -> Vec<String> {
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

pub const H264: &[&str] = &[
    "-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-bf", "2",
];

pub async fn ffmpeg(args: &[String]) -> Exit {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run("ffmpeg", &args).await
}

/// A raw TCP client that completes the RTMP handshake and then does what the test says.
pub async fn handshaken(addr: SocketAddr) -> TcpStream {
    let mut socket = TcpStream::connect(addr).await.expect("connect");
    let mut handshake = Handshake::new(PeerType::Client);
    let c0c1 = handshake.generate_outbound_p0_and_p1().expect("c0c1");
    socket.write_all(&c0c1).await.expect("write c0c1");
    let mut buf = [0u8; 4096];
    loop {
        let n = socket.read(&mut buf).await.expect("read handshake");
        assert!(n > 0, "server closed during the handshake");
        match handshake.process_bytes(&buf[..n]).expect("handshake") {
            HandshakeProcessResult::InProgress { response_bytes } => {
                socket.write_all(&response_bytes).await.expect("write");
            }
            HandshakeProcessResult::Completed { response_bytes, .. } => {
                socket.write_all(&response_bytes).await.expect("write c2");
                return socket;
            }
        }
    }
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
    timeout(PATIENCE, wait)
        .await
        .expect("server closes the connection")
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
    LOGS.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn assert_no_secret_in_logs() {
    let leaked = String::from_utf8_lossy(&logs()).contains(SECRET);
    assert!(!leaked, "a stream key appeared in the logs");
}
