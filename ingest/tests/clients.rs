//! Real publishers (ffmpeg, GStreamer rtmp2sink, librtmp as OBS uses it) against the server.

mod common;

use std::time::Duration;

use tokio::time::Instant;

use common::*;
use hawker_ingest::{Audio, EndReason, Limits, UnsupportedCodec, Video, VideoFrame};

fn video(recs: &[Rec]) -> Vec<&Video> {
    recs.iter()
        .filter_map(|r| match r {
            Rec::Video(v) => Some(v),
            _ => None,
        })
        .collect()
}

fn audio(recs: &[Rec]) -> Vec<&Audio> {
    recs.iter()
        .filter_map(|r| match r {
            Rec::Audio(a) => Some(a),
            _ => None,
        })
        .collect()
}

fn video_frames(recs: &[Rec]) -> Vec<&VideoFrame> {
    video(recs)
        .into_iter()
        .filter_map(|v| match v {
            Video::Frame(f) => Some(f),
            Video::Config(_) => None,
        })
        .collect()
}

fn audio_frames(recs: &[Rec]) -> usize {
    audio(recs).iter().filter(|a| matches!(a, Audio::Frame(_))).count()
}

/// Asserts a complete H.264 + AAC publish that ended with `Unpublished`, exactly once.
fn assert_clean_publish(recs: &[Rec]) {
    let video = video(recs);
    let audio = audio(recs);
    assert!(video.len() >= 30, "video tags: {}", video.len());
    assert!(audio.len() >= 30, "audio tags: {}", audio.len());
    assert!(matches!(video[0], Video::Config(c) if c[0] == 1), "first comes the AVC decoder configuration");
    assert!(matches!(audio[0], Audio::Config(c) if c.len() >= 2), "first comes the AAC AudioSpecificConfig");
    assert_eq!(ends(recs), vec![EndReason::Unpublished]);
    assert!(matches!(recs.last(), Some(Rec::End(..))), "nothing after end: {:?}", summary(recs));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_publishes_h264_and_aac() {
    let mut server = TestServer::start(Limits::default()).await;
    let exit = ffmpeg(&ffmpeg_publish_args(&server.url(&good_key("ff")), "2", true, H264)).await;
    assert!(exit.success, "ffmpeg failed: {}", exit.output);
    let recs = server.wait_for_end("ff").await;
    assert_clean_publish(&recs);
    // B-frames arrive untouched: some AVC NALU tags carry a non-zero composition time.
    let reordered = video_frames(&recs).iter().any(|f| f.cts_ms != 0);
    assert!(reordered, "expected composition-time offsets from B-frames");
    // The counters the gate was handed: 2 s at 30 fps with a keyframe every 30 frames.
    let stats = server.publish_stats("ff").snapshot();
    assert_eq!(stats.video_frames, video_frames(&recs).len() as u64);
    assert_eq!(stats.audio_frames, audio_frames(&recs) as u64);
    assert_eq!(stats.keyframes, 2, "{stats:?}");
    assert_eq!(stats.last_keyframe_interval_ms, Some(1000), "{stats:?}");
    assert_eq!((stats.dropped, stats.timestamp_discontinuities), (0, 0));
    let media_bytes: usize = recs
        .iter()
        .map(|r| match r {
            Rec::Video(Video::Frame(f)) => f.nalus.len(),
            Rec::Video(Video::Config(d)) | Rec::Audio(Audio::Config(d)) => d.len(),
            Rec::Audio(Audio::Frame(f)) => f.data.len(),
            _ => 0,
        })
        .sum();
    assert!(stats.bytes_in > media_bytes as u64, "{stats:?}");
    assert!(stats.bitrate_bps > 50_000, "{stats:?}");
    server.wait_for_stats(|s| s.publishes_accepted == 1 && s.publishes_active == 0 && s.connections_open == 0).await;
    let all = server.stop().await;
    assert_eq!(ends(&all["ff"]).len(), 1, "end is called exactly once");
}

/// Frames that reach the sink within `gap` of the one before count as one batch: one read.
fn batches(arrivals: &[Instant], gap: Duration) -> usize {
    1 + arrivals.windows(2).filter(|w| w[1].duration_since(w[0]) > gap).count()
}

/// Reads at most one a tick over the time the frames took to arrive, plus a few (the frames
/// before the first keyframe are read as they come).
fn most_reads(arrivals: &[Instant], interval: Duration) -> usize {
    let span = arrivals.last().unwrap().duration_since(arrivals[0]);
    (span.as_secs_f64() / interval.as_secs_f64()).ceil() as usize + 3
}

/// A publisher's media is read on the read interval's ticks, everything that arrived since in
/// one go; with a zero interval, as it arrives (frame by frame from a real-time encoder).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publishers_media_is_read_in_batches_on_the_read_interval() {
    const INTERVAL: Duration = Duration::from_millis(200);
    let mut found = Vec::new();
    for interval in [INTERVAL, Duration::ZERO] {
        let mut server = TestServer::start(Limits { read_interval: interval, ..Limits::default() }).await;
        let label = format!("paced{}", interval.as_millis());
        let exit = ffmpeg(&ffmpeg_publish_args(&server.url(&good_key(&label)), "3", true, H264)).await;
        assert!(exit.success, "ffmpeg failed: {}", exit.output);
        let recs = server.wait_for_end(&label).await;
        assert_clean_publish(&recs);
        let arrivals = server.frame_arrivals(&label);
        assert!(arrivals.len() > 200, "3 s of 30 fps video and 43 audio frames a second: {}", arrivals.len());
        found.push((interval, arrivals));
    }
    let [(_, paced), (_, unpaced)] = &found[..] else { unreachable!() };
    // Paced: batches at least half a tick apart, at most one a tick (16 measured in 3 s).
    // Unpaced: ffmpeg's sends (a frame or an interleaved few at a time) arrive one by one, 15 ms
    // and more apart (76 measured).
    let (paced_reads, unpaced_reads) = (batches(paced, INTERVAL / 2), batches(unpaced, Duration::from_millis(15)));
    assert!(paced_reads <= most_reads(paced, INTERVAL), "{paced_reads} batches paced");
    assert!(unpaced_reads >= 2 * most_reads(unpaced, INTERVAL), "{unpaced_reads} batches unpaced");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_with_a_wrong_key_is_refused_with_words_and_fails_fast() {
    let mut server = TestServer::start(Limits::default()).await;
    let exit = ffmpeg(&ffmpeg_publish_args(&server.url("wrong-S3CR3T"), "2", false, H264)).await;
    assert!(!exit.success, "ffmpeg must fail");
    assert!(exit.output.contains("invalid stream key"), "ffmpeg shows our reason: {}", exit.output);
    let refused_at = match server.wait_until("refused", |r| !r.is_empty()).await[0] {
        Rec::Refused(at) => at,
        ref other => panic!("unexpected {other:?}"),
    };
    let to_exit = exit.at.duration_since(refused_at);
    assert!(to_exit < Duration::from_millis(500), "ffmpeg exited {to_exit:?} after the refusal");
    assert!(!server.stop().await.keys().any(|k| k != "refused"), "no publish started");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_with_a_non_h264_codec_is_refused() {
    let mut server = TestServer::start(Limits::default()).await;
    let exit = ffmpeg(&ffmpeg_publish_args(&server.url(&good_key("flv1")), "3", true, &["-c:v", "flv"])).await;
    assert!(!exit.success, "ffmpeg must fail once we close: {}", exit.output);
    let recs = server.wait_for_end("flv1").await;
    assert!(video(&recs).is_empty(), "no Sorenson tag reaches the sink");
    match ends(&recs).as_slice() {
        [EndReason::RefusedCodec(UnsupportedCodec::Video { id: 2, .. })] => {}
        other => panic!("expected one RefusedCodec end (Sorenson, id 2), got {other:?}"),
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_cannot_play() {
    let server = TestServer::start(Limits::default()).await;
    let url = server.url(&good_key("play"));
    let exit =
        run("ffmpeg", &["-hide_banner", "-nostdin", "-rw_timeout", "5000000", "-i", &url, "-f", "null", "-"]).await;
    assert!(!exit.success, "playing must fail: {}", exit.output);
    assert!(server.stop().await.is_empty(), "the gate was never asked");
}

fn gst_args(url: &str) -> Vec<String> {
    let pipeline = format!(
        "-e videotestsrc num-buffers=60 ! video/x-raw,width=320,height=240,framerate=30/1 \
         ! x264enc key-int-max=30 bframes=2 ! h264parse ! flvmux streamable=true name=m \
         ! rtmp2sink location={url} \
         audiotestsrc num-buffers=86 ! voaacenc ! aacparse ! m."
    );
    pipeline.split_whitespace().map(str::to_owned).collect()
}

async fn gst(url: &str) -> Exit {
    let args = gst_args(url);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run("gst-launch-1.0", &args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gstreamer_publishes_h264_and_aac() {
    let mut server = TestServer::start(Limits::default()).await;
    let exit = gst(&server.url(&good_key("gst"))).await;
    assert!(exit.success, "gst-launch failed: {}", exit.output);
    assert_clean_publish(&server.wait_for_end("gst").await);
    server.stop().await;
}

/// Forwards one connection from a listener of its own to `server`, keeping what the client sent.
async fn recording_proxy(server: std::net::SocketAddr) -> (std::net::SocketAddr, tokio::task::JoinHandle<Vec<u8>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let (client, _) = listener.accept().await.expect("accept");
        let upstream = tokio::net::TcpStream::connect(server).await.expect("connect");
        let (mut client_read, mut client_write) = client.into_split();
        let (mut server_read, mut server_write) = upstream.into_split();
        let answers = tokio::spawn(async move { tokio::io::copy(&mut server_read, &mut client_write).await });
        let mut sent = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = client_read.read(&mut buf).await {
            sent.extend_from_slice(&buf[..n]);
            if n == 0 || server_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = server_write.shutdown().await;
        let _ = answers.await;
        sent
    });
    (addr, task)
}

/// The commands (with their command objects) and data messages a client sent, decoded from its
/// bytes after the handshake.
fn client_messages(sent: &[u8]) -> Vec<(String, rml_rtmp::rml_amf0::Amf0Value)> {
    use rml_rtmp::messages::RtmpMessage;
    let mut deserializer = rml_rtmp::chunk_io::ChunkDeserializer::new();
    let mut next = &sent[1 + 1536 + 1536..]; // C0, C1, C2
    let mut messages = Vec::new();
    while let Some(payload) = deserializer.get_next_message(next).expect("the client's chunks decode") {
        next = &[];
        match payload.to_rtmp_message().expect("the client's messages decode") {
            RtmpMessage::SetChunkSize { size } => deserializer.set_max_chunk_size(size as usize).expect("chunk size"),
            RtmpMessage::Amf0Command { command_name, command_object, .. } => {
                messages.push((command_name, command_object))
            }
            RtmpMessage::Amf0Data { values } => {
                if let Some(rml_rtmp::rml_amf0::Amf0Value::Utf8String(name)) = values.first() {
                    messages.push((name.clone(), rml_rtmp::rml_amf0::Amf0Value::Null));
                }
            }
            _ => {}
        }
    }
    messages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librtmp_publishes_with_obs_message_sequence() {
    // OBS's RTMP output is a fork of librtmp; GStreamer's rtmpsink is librtmp, given OBS's
    // flashVer. What it sends is checked message by message, then what reached the sink.
    let mut server = TestServer::start(Limits::default()).await;
    let (proxy, recording) = recording_proxy(server.addr).await;
    let location = format!(
        r"location=rtmp://{proxy}/live/{} live=1 flashver=FMLE/3.0\\20(compatible;\\20FMSc/1.0)",
        good_key("obs")
    );
    let pipeline = "-e videotestsrc num-buffers=60 ! video/x-raw,width=320,height=240,framerate=30/1 \
         ! x264enc key-int-max=30 bframes=2 ! h264parse ! flvmux streamable=true name=m ! rtmpsink \
         audiotestsrc num-buffers=86 ! voaacenc ! aacparse ! m.";
    let mut args: Vec<&str> = pipeline.split_whitespace().collect();
    let sink = args.iter().position(|a| *a == "rtmpsink").unwrap();
    args.insert(sink + 1, &location);
    let exit = run("gst-launch-1.0", &args).await;
    assert!(exit.success, "gst-launch failed: {}", exit.output);
    let recs = server.wait_for_end("obs").await;
    assert_clean_publish(&recs);
    assert!(video_frames(&recs).iter().any(|f| f.cts_ms > 0), "B-frames arrived with their composition offsets");

    let messages = client_messages(&recording.await.expect("proxy"));
    let mut names: Vec<&str> = messages.iter().map(|(name, _)| name.as_str()).collect();
    names.dedup(); // flvmux repeats its metadata; OBS sends it once.
    let sequence = [
        "connect",
        "_checkbw", // the answer to our onBWDone
        "releaseStream",
        "FCPublish",
        "createStream",
        "publish",
        "@setDataFrame",
        "FCUnpublish",
        "deleteStream",
    ];
    assert_eq!(names, sequence, "OBS's sequence");
    let rml_rtmp::rml_amf0::Amf0Value::Object(connect) = &messages[0].1 else { panic!("connect without an object") };
    let field = |name: &str| connect.get(name).cloned().and_then(|v| v.get_string());
    assert_eq!(field("flashVer").as_deref(), Some("FMLE/3.0 (compatible; FMSc/1.0)"));
    assert_eq!(field("type").as_deref(), Some("nonprivate"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gstreamer_with_a_wrong_key_errors() {
    let mut server = TestServer::start(Limits::default()).await;
    let exit = gst(&server.url("wrong-S3CR3T")).await;
    assert!(!exit.success, "gst-launch must fail: {}", exit.output);
    assert!(exit.output.contains("ERROR"), "gst-launch reports an error: {}", exit.output);
    server.wait_until("refused", |r| !r.is_empty()).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kick_closes_the_connection_at_once() {
    let mut server = TestServer::start(Limits::default()).await;
    let args = ffmpeg_publish_args(&server.url(&good_key("kicked")), "30", true, H264);
    let child = command("ffmpeg", &args.iter().map(String::as_str).collect::<Vec<_>>()).spawn().expect("spawn ffmpeg");
    server.wait_until("kicked", |r| video(r).len() >= 5).await;
    let kicked_at = tokio::time::Instant::now();
    server.kick("kicked");
    let recs = server.wait_for_end("kicked").await;
    assert_eq!(ends(&recs), vec![EndReason::Kicked]);
    assert!(end_time(&recs).duration_since(kicked_at) < Duration::from_millis(100), "end follows the kick at once");
    let exit = finish(child).await;
    assert!(!exit.success, "ffmpeg notices the closed connection");
    assert!(exit.at.duration_since(kicked_at) < Duration::from_secs(5), "and exits soon");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_sink_ends_only_its_own_connection() {
    let mut server = TestServer::start(Limits::default()).await;
    let good = ffmpeg_publish_args(&server.url(&good_key("calm")), "3", true, H264);
    let bad = ffmpeg_publish_args(&server.url(&panic_key("boom")), "3", true, H264);
    let calm = command("ffmpeg", &good.iter().map(String::as_str).collect::<Vec<_>>()).spawn().expect("spawn");
    server.wait_until("calm", |r| !video(r).is_empty()).await;
    let boom = command("ffmpeg", &bad.iter().map(String::as_str).collect::<Vec<_>>()).spawn().expect("spawn");

    let boom_recs = server.wait_for_end("boom").await;
    assert_eq!(ends(&boom_recs), vec![EndReason::Failed("connection panicked".to_owned())]);
    let calm_before = video(&server.wait_until("calm", |_| true).await).len();
    assert!(!finish(boom).await.success, "the panicking connection was closed");

    let calm_exit = finish(calm).await;
    assert!(calm_exit.success, "the other publish continued: {}", calm_exit.output);
    let calm_recs = server.wait_for_end("calm").await;
    assert_clean_publish(&calm_recs);
    let calm_after = video(&calm_recs).len();
    assert!(calm_after > calm_before + 10, "video kept flowing after the panic: {calm_before} -> {calm_after}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_live_publishes_and_serve_returns() {
    let mut server = TestServer::start(Limits::default()).await;
    let args = ffmpeg_publish_args(&server.url(&good_key("live")), "30", true, H264);
    let child = command("ffmpeg", &args.iter().map(String::as_str).collect::<Vec<_>>()).spawn().expect("spawn ffmpeg");
    server.wait_until("live", |r| !video(r).is_empty()).await;
    // `stop` waits for `serve` to return, which it does only once every connection is closed.
    let all = server.stop().await;
    assert_eq!(ends(&all["live"]), vec![EndReason::Failed("server shutting down".to_owned())]);
    assert!(!finish(child).await.success, "ffmpeg notices the closed connection");
}
