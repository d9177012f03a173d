//! The end-to-end harness: runs the built `hawker` binary on free loopback ports with a
//! temporary data dir, and real publishers (ffmpeg, GStreamer) and readers (ffprobe, m3u8-rs).
#![allow(dead_code)] // each test file uses its own part of the harness

pub mod balancer;
pub mod events;
pub mod hls;
pub mod openapi;
pub mod postgres;
pub mod rtmp;

#[allow(unused_imports)] // the benches use other parts
pub use hls::validate_hls;
pub mod s3;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const HAWKER: &str = env!("CARGO_BIN_EXE_hawker");
/// The servers' log filter unless `HAWKER_TEST_LOG` says otherwise.
const TEST_LOG: &str = "info,hawker_api::engagement=debug,hawker_api::http::engagement=debug";

/// A bench's `--name value` argument; `None` when absent or not a `T`.
pub fn arg<T: std::str::FromStr>(name: &str) -> Option<T> {
    let args: Vec<String> = std::env::args().collect();
    let at = args.iter().position(|a| a == name)?;
    args.get(at + 1)?.parse().ok()
}

/// The binary to run: this build's, or for a bench's before/after comparison `HAWKER_BIN`.
pub fn hawker_bin() -> String {
    std::env::var("HAWKER_BIN").unwrap_or_else(|_| HAWKER.to_owned())
}

/// Where a player's HTTP requests go: one node, or the load balancer in front of several.
pub trait Web {
    fn url(&self, path: &str) -> String;
    fn client(&self) -> &reqwest::Client;

    async fn fetch(&self, path_or_url: &str) -> reqwest::Response {
        let url = if path_or_url.starts_with("http") { path_or_url.to_owned() } else { self.url(path_or_url) };
        self.client().get(url).send().await.expect("HTTP GET")
    }

    async fn fetch_text(&self, path: &str) -> (u16, String) {
        let response = self.fetch(path).await;
        (response.status().as_u16(), response.text().await.unwrap())
    }
}

impl Web for Server {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.http)
    }

    fn client(&self) -> &reqwest::Client {
        &self.client
    }
}

/// A JSON API call to `url`; returns (status, body: the JSON, or the text as a string).
pub async fn call_json(
    client: &reqwest::Client,
    (method, url): (&str, &str),
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = client.request(method.parse().unwrap(), url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("HTTP request");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    openapi::check_response(method, url, status, &body);
    (status, body)
}

pub struct Server {
    child: Child,
    pub data_dir: tempfile::TempDir,
    pub http: String,
    pub rtmp: String,
    pub rtmps: Option<String>,
    log: Arc<Mutex<String>>,
    pub client: reqwest::Client,
    /// PostgreSQL, when started with `--database-url`: the CLI commands go there too.
    pub database_url: Option<String>,
}

/// Runs `hawker` with the given arguments on `data_dir` and returns its stdout.
pub fn hawker_cli(data_dir: &Path, args: &[&str]) -> String {
    let out = Command::new(hawker_bin()).arg("--data-dir").arg(data_dir).args(args).output().expect("run hawker");
    assert!(out.status.success(), "hawker {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

impl Server {
    /// A server with an empty data dir (it seeds its demo data on first start).
    pub fn start_empty() -> Self {
        Self::start_in(tempfile::tempdir().expect("tempdir"), &[])
    }

    pub fn start_with(extra: &[&str]) -> Self {
        Self::start_in(tempfile::tempdir().expect("tempdir"), extra)
    }

    pub fn start_in(data_dir: tempfile::TempDir, extra: &[&str]) -> Self {
        Self::start_bin(&hawker_bin(), data_dir, extra)
    }

    /// A server from binary `bin` (a bench's before/after comparison in one run).
    pub fn start_bin(bin: &str, data_dir: tempfile::TempDir, extra: &[&str]) -> Self {
        let mut child = Command::new(bin)
            .arg("--data-dir")
            .arg(data_dir.path())
            .args(["serve", "--http", "127.0.0.1:0", "--rtmp", "127.0.0.1:0", "--public-host", "127.0.0.1"])
            .args(extra)
            // Viewer sessions at debug: a failing count shows how it moved.
            .env("RUST_LOG", std::env::var("HAWKER_TEST_LOG").unwrap_or_else(|_| TEST_LOG.into()))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start hawker serve");
        let log = Arc::new(Mutex::new(String::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        for pipe in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let log = log.clone();
            let ready_tx = ready_tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    if line.contains("hawker ready") {
                        let _ = ready_tx.send(line.clone());
                    }
                    let mut log = log.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }
        let ready = ready_rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("hawker did not become ready; log:\n{}", log.lock().unwrap()));
        // The ready line's fields, as text (`http=…`) or as JSON (`--log-format json`).
        let json: Option<serde_json::Value> = serde_json::from_str(&ready).ok();
        let field = |name: &str| -> Option<String> {
            if let Some(json) = &json {
                return json[name].as_str().map(str::to_owned);
            }
            let start = ready.find(&format!(" {name}="))? + name.len() + 2;
            Some(ready[start..].split_whitespace().next()?.to_owned())
        };
        let (http, rtmp) = (field("http").expect("http address"), field("rtmp").expect("rtmp address"));
        Server {
            child,
            data_dir,
            http: format!("http://{http}"),
            rtmp: format!("rtmp://{rtmp}/live"),
            rtmps: field("rtmps").map(|addr| format!("rtmps://{addr}/live")),
            log,
            client: reqwest::Client::new(),
            database_url: extra.iter().position(|a| *a == "--database-url").map(|i| extra[i + 1].to_owned()),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the server with SIGKILL (no shutdown of any kind, as a crash) and hands back its
    /// data dir, for another `Server::start_in` on it.
    pub fn kill_hard(mut self) -> tempfile::TempDir {
        let _ = self.child.kill(); // SIGKILL on Unix
        let _ = self.child.wait();
        std::mem::replace(&mut self.data_dir, tempfile::tempdir().expect("tempdir"))
    }

    /// Stops the server with SIGTERM (a clean shutdown), asserts it exits successfully within
    /// `within`, and hands back its data dir.
    pub fn stop(mut self, within: Duration) -> tempfile::TempDir {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "the server exited with {status}:\n{}", self.log());
                break;
            }
            assert!(Instant::now() < deadline, "the server did not stop within {within:?}:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        std::mem::replace(&mut self.data_dir, tempfile::tempdir().expect("tempdir"))
    }

    /// Waits for the server to exit (after a signal sent by the test) and returns how.
    pub fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the server did not exit within {within:?}:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `host:port` of the RTMP listener.
    pub fn rtmp_addr(&self) -> String {
        self.rtmp.trim_start_matches("rtmp://").trim_end_matches("/live").to_owned()
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Runs a `hawker` CLI command on this server's database.
    pub fn cli(&self, args: &[&str]) -> String {
        match &self.database_url {
            Some(url) => hawker_cli(self.data_dir.path(), &[&["--database-url", url.as_str()], args].concat()),
            None => hawker_cli(self.data_dir.path(), args),
        }
    }

    pub fn user(&self, name: &str, role: &str) -> String {
        self.cli(&["user", "create", "--name", name, "--role", role]).trim().to_owned()
    }

    /// A user's id, from `GET /me` with its token.
    pub async fn user_id(&self, token: &str) -> String {
        let (status, me) = self.call("GET", "/api/v1/me", Some(token), None).await;
        assert_eq!(status, 200, "{me}");
        me["id"].as_str().expect("an id").to_owned()
    }

    /// An admin links the shop to the seller (tokens of all three), as the API does it.
    pub async fn link_shop(&self, admin: &str, shop: &str, seller: &str) {
        let (shop_id, seller_id) = (self.user_id(shop).await, self.user_id(seller).await);
        let path = format!("/api/v1/shops/{shop_id}/sellers/{seller_id}");
        let (status, body) = self.call("PUT", &path, Some(admin), None).await;
        assert_eq!(status, 204, "{body}");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.http)
    }

    /// A JSON API call; returns (status, body).
    pub async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
        call_json(&self.client, (method, &self.url(path)), token, body).await
    }

    pub async fn create_stream(&self, token: &str, title: &str) -> Value {
        let (status, body) = self.call("POST", "/api/v1/streams", Some(token), Some(json!({ "title": title }))).await;
        assert_eq!(status, 201, "{body}");
        body
    }

    pub async fn stream(&self, id: &str, token: Option<&str>) -> Value {
        let (status, body) = self.call("GET", &format!("/api/v1/streams/{id}"), token, None).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    pub async fn wait_for_status(&self, id: &str, want: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let body = self.stream(id, None).await;
            if body["status"] == want {
                return;
            }
            assert!(Instant::now() < deadline, "stream {id} is {} after {within:?}, wanted {want}", body["status"]);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn get(&self, path_or_url: &str) -> reqwest::Response {
        let url = if path_or_url.starts_with("http") { path_or_url.to_owned() } else { self.url(path_or_url) };
        self.client.get(url).send().await.expect("HTTP GET")
    }

    pub async fn get_text(&self, path: &str) -> (u16, String) {
        let response = self.get(path).await;
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// Every stream key issued must be absent from everything the server printed to its log.
    pub fn assert_log_free_of(&self, secrets: &[&str]) {
        let log = self.log();
        for secret in secrets {
            assert!(!secret.is_empty());
            assert!(!log.contains(secret), "a secret appeared in the server log");
        }
    }

    /// Path of a stored object in the local media folder.
    pub fn media_path(&self, playback_id: &str) -> PathBuf {
        self.data_dir.path().join("media/streams").join(playback_id)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// User + system CPU seconds a process has used so far (the benches' CPU figures), to the
/// nanosecond: its CPU-time clock (every thread, ended ones included). `/proc`'s utime and
/// stime count 10 ms ticks, 3 to 5 % of a one-stream round; they are the fallback.
pub fn cpu_seconds(pid: u32) -> f64 {
    let mut clock: libc::clockid_t = 0;
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: both pointers are to locals that outlive the calls.
    let read = unsafe {
        libc::clock_getcpuclockid(pid as libc::pid_t, &mut clock) == 0 && libc::clock_gettime(clock, &mut now) == 0
    };
    if read {
        return now.tv_sec as f64 + now.tv_nsec as f64 / 1e9;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("proc stat");
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// ffmpeg publishing generated H.264 (keyframe every 2 s, B-frames on) + AAC in real time.
/// ffmpeg's stderr for a one-second publish to `url` (a refused one shows the server's reason).
pub async fn publish_output(url: &str) -> String {
    let out = tokio::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=10", "-t", "1"])
        .args(["-c:v", "libx264", "-f", "flv", url])
        .output()
        .await
        .expect("ffmpeg runs");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn ffmpeg_publish(url: &str, seconds: u32) -> tokio::process::Child {
    ffmpeg_publish_gop(url, seconds, 60)
}

/// The same with a keyframe every `gop` frames (30 fps).
pub fn ffmpeg_publish_gop(url: &str, seconds: u32, gop: u32) -> tokio::process::Child {
    let gop = gop.to_string();
    tokio::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &seconds.to_string()])
        .args(["-c:v", "libx264", "-preset", "veryfast", "-bf", "2", "-g", &gop, "-keyint_min", &gop])
        .args(["-sc_threshold", "0", "-pix_fmt", "yuv420p", "-b:v", "800k"])
        .args(["-c:a", "aac", "-b:a", "96k", "-f", "flv", url])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start ffmpeg")
}

/// GStreamer's rtmp2sink publishing H.264 (B-frames on) + AAC, live.
pub fn gst_publish(url: &str, seconds: u32) -> tokio::process::Child {
    gst_publish_to(&["rtmp2sink", &format!("location={url}")], seconds)
}

/// OBS's RTMP client: librtmp (GStreamer's rtmpsink), the library OBS's RTMP output is a fork
/// of, with OBS's flashVer. It publishes as OBS does: connect (type "nonprivate"),
/// releaseStream, FCPublish, createStream, publish, then `@setDataFrame` and the media
/// (H.264 with B-frames, AAC); at the end, FCUnpublish and deleteStream.
pub fn librtmp_publish(url: &str, seconds: u32) -> tokio::process::Child {
    // One argument: gst-launch escapes the spaces of each, so librtmp gets its options
    // (`\\20`: gst-launch unescapes it to librtmp's own escape for a space).
    let location = format!(r"location={url} live=1 flashver=FMLE/3.0\\20(compatible;\\20FMSc/1.0)");
    gst_publish_to(&["rtmpsink", &location], seconds)
}

/// The test pipeline into `sink`: the element and its properties, one argument each.
fn gst_publish_to(sink: &[&str], seconds: u32) -> tokio::process::Child {
    let frames = (seconds * 30).to_string();
    let pipeline = format!(
        "videotestsrc is-live=true num-buffers={frames} pattern=ball ! video/x-raw,width=640,height=360,framerate=30/1 \
         ! x264enc speed-preset=veryfast key-int-max=60 bframes=2 bitrate=800 ! h264parse ! queue ! mux. \
         audiotestsrc is-live=true num-buffers={audio} samplesperbuffer=1024 ! audio/x-raw,rate=48000,channels=2 \
         ! avenc_aac ! aacparse ! queue ! mux. \
         flvmux name=mux streamable=true !",
        audio = seconds * 48000 / 1024,
    );
    tokio::process::Command::new("gst-launch-1.0")
        .arg("-e")
        .args(pipeline.split_whitespace())
        .args(sink)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start gst-launch-1.0")
}

/// Decodes `init` + `segment` as one file with ffprobe (every frame of every track) and
/// returns the number of video frames, or the decoder's complaints.
pub fn decode_alone(init: &[u8], segment: &[u8]) -> Result<usize, String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("segment.mp4");
    std::fs::write(&file, [init, segment].concat()).unwrap();
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "frame=media_type,key_frame", "-of", "csv=p=0"])
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() || !stderr.trim().is_empty() {
        return Err(stderr);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut video = stdout.lines().filter(|l| l.starts_with("video"));
    match video.next() {
        Some(first) if first.starts_with("video,1") => Ok(1 + video.count()),
        Some(_) => Err("the first video frame is not a keyframe".into()),
        None => Err("no video frames".into()),
    }
}

/// The duration ffprobe reads from an HLS URL (it fetches the playlists and segments).
pub fn ffprobe_duration(url: &str) -> f64 {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", url])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim().parse().unwrap_or_else(|_| panic!("ffprobe {url}: {} {}", text, String::from_utf8_lossy(&out.stderr)))
}

/// Checks a replay's MP4 at `url` as a browser and ffprobe use it: H.264 + AAC, fast start,
/// `duration` seconds long (±0.3 s), byte ranges served exactly; returns its size.
pub async fn check_replay_mp4(url: &str, duration: f64) -> u64 {
    let client = reqwest::Client::new();
    let whole = client.get(url).send().await.expect("GET the MP4");
    assert_eq!(whole.status(), 200);
    assert_eq!(whole.headers()["content-type"], "video/mp4");
    let bytes = whole.bytes().await.expect("the MP4");
    let top = |data: &[u8]| {
        let (mut at, mut kinds) = (0usize, Vec::new());
        while at + 8 <= data.len() {
            let size = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
            kinds.push(String::from_utf8_lossy(&data[at + 4..at + 8]).into_owned());
            at += size.max(8);
        }
        kinds
    };
    let kinds = top(&bytes);
    let (moov, mdat) = (kinds.iter().position(|k| k == "moov"), kinds.iter().position(|k| k == "mdat"));
    assert!(moov.is_some() && moov < mdat, "not fast-start: {kinds:?}");
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "stream=codec_name:format=duration", "-of", "csv=p=0", url])
        .output()
        .expect("ffprobe runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.contains(&"h264") && lines.contains(&"aac"), "streams: {text}");
    let probed: f64 = lines.last().and_then(|l| l.parse().ok()).unwrap_or_else(|| panic!("duration: {text}"));
    assert!((probed - duration).abs() < 0.3, "MP4 {probed} s, replay {duration} s");
    // A seek: one range, the last bytes, and a range past the end.
    let size = bytes.len() as u64;
    let range = |r: String| client.get(url).header("range", r).send();
    let part = range("bytes=100-1099".into()).await.expect("range GET");
    assert_eq!(part.status(), 206);
    assert_eq!(part.headers()["content-range"], format!("bytes 100-1099/{size}").as_str());
    assert_eq!(part.bytes().await.unwrap(), bytes.slice(100..1100));
    let tail = range("bytes=-10".into()).await.expect("range GET");
    assert_eq!(tail.bytes().await.unwrap(), bytes.slice(bytes.len() - 10..));
    let past = range(format!("bytes={size}-")).await.expect("range GET");
    assert_eq!(past.status(), 416);
    // hawker's own answer names the size (a bucket answers a redirected request its way).
    if past.url().as_str() == url {
        assert_eq!(past.headers()["content-range"], format!("bytes */{size}").as_str());
    }
    size
}

/// The value of the sample `name` (with its labels, if any) in a Prometheus text page.
pub fn metric(page: &str, name: &str) -> f64 {
    let line = page.lines().find(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with(' ')));
    let line = line.unwrap_or_else(|| panic!("no {name} in\n{page}"));
    line.rsplit(' ').next().and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{line}"))
}

pub fn parse_media(text: &str) -> m3u8_rs::MediaPlaylist {
    match m3u8_rs::parse_playlist_res(text.as_bytes()) {
        Ok(m3u8_rs::Playlist::MediaPlaylist(playlist)) => playlist,
        other => panic!("not a media playlist ({other:?}):\n{text}"),
    }
}

pub fn parse_multivariant(text: &str) -> m3u8_rs::MasterPlaylist {
    match m3u8_rs::parse_playlist_res(text.as_bytes()) {
        Ok(m3u8_rs::Playlist::MasterPlaylist(playlist)) => playlist,
        other => panic!("not a multivariant playlist ({other:?}):\n{text}"),
    }
}

/// The rules every hawker media playlist keeps; returns the playlist for further checks.
pub fn check_media_playlist(text: &str) -> m3u8_rs::MediaPlaylist {
    let playlist = parse_media(text);
    assert!(!playlist.segments.is_empty(), "no segments:\n{text}");
    assert!(playlist.segments[0].map.is_some(), "first segment has no EXT-X-MAP:\n{text}");
    let mut last_pdt = None;
    for segment in &playlist.segments {
        assert!(
            (segment.duration.round() as u64) <= playlist.target_duration,
            "EXTINF {} exceeds the target duration {}:\n{text}",
            segment.duration,
            playlist.target_duration
        );
        let pdt = segment.program_date_time.unwrap_or_else(|| panic!("segment {} has no PDT:\n{text}", segment.uri));
        if let Some(last) = last_pdt {
            assert!(pdt > last, "program date-time goes backwards:\n{text}");
        }
        last_pdt = Some(pdt);
    }
    playlist
}

pub fn total_duration(playlist: &m3u8_rs::MediaPlaylist) -> f64 {
    playlist.segments.iter().map(|s| s.duration as f64).sum()
}

impl Server {
    /// Waits until the stream's media playlist lists at least `n` segments in all.
    pub async fn wait_for_segments(&self, pid: &str, n: usize, within: Duration) -> m3u8_rs::MediaPlaylist {
        let deadline = Instant::now() + within;
        loop {
            if let Some(text) = self.media_playlist(pid).await {
                let playlist = parse_media(&text);
                if playlist.media_sequence as usize + playlist.segments.len() >= n {
                    return playlist;
                }
            }
            assert!(Instant::now() < deadline, "fewer than {n} segments after {within:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Fetches the stream's media playlist through the multivariant one, as a player does.
    pub async fn media_playlist(&self, playback_id: &str) -> Option<String> {
        let (status, text) = self.get_text(&format!("/hls/{playback_id}/index.m3u8")).await;
        if status != 200 {
            return None;
        }
        let multivariant = parse_multivariant(&text);
        let variant = &multivariant.variants.first().expect("one variant").uri;
        let (status, text) = self.get_text(&format!("/hls/{playback_id}/{variant}")).await;
        (status == 200).then_some(text)
    }

    /// Checks that every segment of the playlist decodes on its own (with its init segment).
    pub async fn check_segments_decode(&self, playback_id: &str, playlist: &m3u8_rs::MediaPlaylist) {
        let mut init_uri = None;
        let mut init = Vec::new();
        for segment in &playlist.segments {
            if let Some(map) = &segment.map
                && init_uri.as_ref() != Some(&map.uri)
            {
                init = self.get(&format!("/hls/{playback_id}/v0/{}", map.uri)).await.bytes().await.unwrap().to_vec();
                init_uri = Some(map.uri.clone());
            }
            let response = self.get(&format!("/hls/{playback_id}/v0/{}", segment.uri)).await;
            assert_eq!(response.status(), 200, "segment {}", segment.uri);
            assert_eq!(response.headers()["content-type"], "video/iso.segment");
            let bytes = response.bytes().await.unwrap();
            if let Err(e) = decode_alone(&init, &bytes) {
                panic!("segment {} does not decode on its own: {e}", segment.uri);
            }
        }
    }
}

/// The benches' input, made once at `path`: `seconds` of 720p30 3 Mb/s H.264 (2 s GOP, B-frames,
/// noise so the bit rate is real) + 128 kb/s AAC, in FLV.
pub fn bench_input(path: &Path, seconds: u32) {
    if path.exists() {
        return;
    }
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    eprintln!("making the {seconds} s 720p input once: {}", path.display());
    let tmp = path.with_extension("tmp.flv");
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30,noise=alls=12:allf=t"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", &seconds.to_string()])
        .args(["-c:v", "libx264", "-preset", "veryfast", "-b:v", "3M", "-maxrate", "3M", "-bufsize", "6M"])
        .args(["-g", "60", "-keyint_min", "60", "-sc_threshold", "0", "-pix_fmt", "yuv420p", "-profile:v", "high"])
        .args(["-c:a", "aac", "-b:a", "128k", "-ar", "48000", "-ac", "2", "-f", "flv"])
        .arg(&tmp)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success(), "making the input failed");
    std::fs::rename(&tmp, path).unwrap();
}
