//! Bad input over real sockets: each bad client is closed cleanly, and a good stream on the
//! same server keeps producing segments throughout.

use crate::common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::rtmp::*;
use common::*;
use rml_rtmp::rml_amf0::Amf0Value;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Longest any bad client may live: the default read/publish deadlines (10 s) plus slack.
const DEADLINE: Duration = Duration::from_secs(16);

fn generated_flv(seconds: u32) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("media.flv");
    let status = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30", "-f", "lavfi", "-i", "sine=sample_rate=48000"])
        .args(["-t", &seconds.to_string(), "-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-bf", "2"])
        .args(["-c:a", "aac", "-f", "flv"])
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::read(&path).unwrap()
}

fn is_keyframe(body: &Bytes) -> bool {
    body.first().is_some_and(|b| b >> 4 == 1) && body.get(1) == Some(&1)
}

async fn garbage_instead_of_a_handshake(addr: &str) {
    let mut socket = TcpStream::connect(addr).await.unwrap();
    socket.write_all(b"GET / HTTP/1.1\r\nHost: hawker\r\n\r\n").await.unwrap();
    wait_closed(&mut socket, Duration::from_secs(1)).await;
}

async fn a_handshake_then_silence(addr: &str) {
    let mut socket = handshaken(addr).await;
    wait_closed(&mut socket, DEADLINE).await;
}

async fn a_slowloris_trickle(addr: &str) {
    let mut socket = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    // One byte of the handshake every 300 ms: never idle, never done.
    let mut closed = false;
    for byte in std::iter::once(3u8).chain(std::iter::repeat(0)).take(200) {
        if socket.write_all(&[byte]).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    if !closed {
        wait_closed(&mut socket, Duration::from_secs(1)).await;
    }
    assert!(started.elapsed() < DEADLINE, "a trickle kept a connection for {:?}", started.elapsed());
}

async fn a_16_mib_message_header(addr: &str) {
    let mut socket = handshaken(addr).await;
    // A type-0 chunk header announcing a 16 MiB - 1 video message, and no payload.
    socket.write_all(&[0x04, 0, 0, 0, 0xFF, 0xFF, 0xFF, 9, 1, 0, 0, 0]).await.unwrap();
    wait_closed(&mut socket, Duration::from_secs(1)).await;
}

async fn amf_commands_with_wrong_types(addr: &str) {
    let mut socket = handshaken(addr).await;
    let mut bytes = command("connect", Amf0Value::Number(5.0), vec![Amf0Value::Boolean(true)], 0);
    bytes.extend(command("publish", Amf0Value::Null, vec![Amf0Value::Number(42.0), Amf0Value::Null], 1));
    let _ = socket.write_all(&bytes).await;
    wait_closed(&mut socket, DEADLINE).await;
}

async fn publish_before_connect(addr: &str, key: &str) {
    let mut socket = handshaken(addr).await;
    let publish = command(
        "publish",
        Amf0Value::Null,
        vec![Amf0Value::Utf8String(key.into()), Amf0Value::Utf8String("live".into())],
        1,
    );
    let _ = socket.write_all(&publish).await;
    wait_closed(&mut socket, DEADLINE).await;
}

async fn media_before_publish(addr: &str) {
    let mut socket = handshaken(addr).await;
    let connect = command(
        "connect",
        Amf0Value::Object([("app".to_owned(), Amf0Value::Utf8String("live".into()))].into()),
        vec![],
        0,
    );
    let _ = socket.write_all(&connect).await;
    let _ = socket.write_all(&video_message(0, &[0x17, 0x01, 0, 0, 0, 0, 0, 0, 1, 0x65])).await;
    wait_closed(&mut socket, DEADLINE).await;
}

async fn a_codec_other_than_h264(url: &str) {
    let out = tokio::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-re",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=30",
        ])
        .args(["-t", "5", "-c:v", "flv1", "-f", "flv", url])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success(), "a Sorenson (flv1) stream was accepted");
}

/// A publisher that sends the sequence header and then only delta frames.
async fn a_stream_that_never_sends_a_keyframe(addr: &str, key: &str, tags: &[(bool, u32, Bytes)]) {
    let mut publisher = Publisher::start(addr, key).await;
    let started = Instant::now();
    for (is_video, timestamp, body) in tags.iter().cycle().take(3000) {
        if !is_video || is_keyframe(body) {
            continue;
        }
        if publisher.send_tag(true, *timestamp, body.clone()).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(33)).await;
        if started.elapsed() > DEADLINE {
            panic!("a stream without keyframes is still connected after {DEADLINE:?}");
        }
    }
    wait_closed(publisher.socket(), Duration::from_secs(2)).await;
}

/// Real media whose timestamps jump forwards by three hours, then back by five.
async fn timestamps_that_jump_by_hours(server: &Server, key: &str, pid: &str, tags: &[(bool, u32, Bytes)]) {
    const HOUR: i64 = 3_600_000;
    let mut publisher = Publisher::start(&server.rtmp_addr(), key).await;
    let started = Instant::now();
    for (is_video, timestamp, body) in tags {
        let jump = match timestamp {
            0..4000 => 0,
            4000..8000 => 3 * HOUR,
            _ => -2 * HOUR + 10 * HOUR, // back five hours from +3 h (kept positive on the 32-bit clock)
        };
        let sent = (*timestamp as i64 + jump) as u32;
        let due = Duration::from_millis(*timestamp as u64);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            tokio::time::sleep(wait).await;
        }
        publisher
            .send_tag(*is_video, sent, body.clone())
            .await
            .expect("the server dropped a stream for its timestamps");
    }
    drop(publisher);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let playlist = check_media_playlist(&server.media_playlist(pid).await.expect("a playlist"));
    validate_hls(server, pid).await;
    let covered = total_duration(&playlist);
    assert!(playlist.segments.iter().all(|s| s.duration < 3.0), "a jump made a long segment");
    assert!((covered - 12.0).abs() < 3.0, "12 s of media became {covered:.1} s");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_clients_are_closed_and_a_good_stream_goes_on() {
    let server = Server::start_with(&[]);
    let seller = server.user("seller", "seller");
    let good = server.create_stream(&seller, "Good").await;
    let (good_pid, good_key) = (good["playback_id"].as_str().unwrap(), good["stream_key"].as_str().unwrap());
    let mut keys = vec![good_key.to_owned()];
    let stream = |title: &'static str| {
        let server = &server;
        let seller = seller.clone();
        async move { server.create_stream(&seller, title).await }
    };
    let sorenson = stream("Sorenson").await;
    let no_keyframes = stream("No keyframes").await;
    let jumpy = stream("Jumpy clock").await;
    for s in [&sorenson, &no_keyframes, &jumpy] {
        keys.push(s["stream_key"].as_str().unwrap().to_owned());
    }
    let tags = flv_tags(&generated_flv(12));

    let mut good_publisher = ffmpeg_publish(&format!("{}/{good_key}", server.rtmp), 60);
    let before = loop {
        if let Some(text) = server.media_playlist(good_pid).await {
            let playlist = parse_media(&text);
            break playlist.media_sequence as usize + playlist.segments.len();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let started = Instant::now();

    let addr = server.rtmp_addr();
    let sorenson_url = format!("{}/{}", server.rtmp, keys[1]);
    let jumpy_pid = jumpy["playback_id"].as_str().unwrap();
    tokio::join!(
        garbage_instead_of_a_handshake(&addr),
        a_handshake_then_silence(&addr),
        a_slowloris_trickle(&addr),
        a_16_mib_message_header(&addr),
        amf_commands_with_wrong_types(&addr),
        publish_before_connect(&addr, &keys[1]),
        media_before_publish(&addr),
        a_codec_other_than_h264(&sorenson_url),
        a_stream_that_never_sends_a_keyframe(&addr, &keys[2], &tags),
        timestamps_that_jump_by_hours(&server, &keys[3], jumpy_pid, &tags),
    );

    // The good stream produced segments the whole time, at its pace.
    let after = check_media_playlist(&server.media_playlist(good_pid).await.unwrap());
    validate_hls(&server, good_pid).await;
    let produced = after.media_sequence as usize + after.segments.len() - before;
    let expected = (started.elapsed().as_secs_f64() / 2.0) as usize;
    assert!(produced + 2 >= expected, "the good stream made {produced} segments in {:?}", started.elapsed());
    assert!(good_publisher.try_wait().unwrap().is_none(), "the good publisher was disconnected");
    let _ = good_publisher.kill().await;
    // The Sorenson stream's seller is told why, and how to fix it; its publisher only got
    // the connection closed.
    let (status, stats) = server
        .call("GET", &format!("/api/v1/streams/{}/stats", sorenson["id"].as_str().unwrap()), Some(&seller), None)
        .await;
    assert_eq!(status, 200, "{stats}");
    let refusal = &stats["last_refusal"];
    assert_eq!(refusal["reason"], "video_codec", "{stats}");
    assert!(refusal["detail"].as_str().unwrap().contains("Sorenson"), "{refusal}");
    assert!(refusal["fix"].as_str().unwrap().starts_with("OBS: Settings → Output → Encoder: x264"), "{refusal}");
    let (_, stats) = server
        .call("GET", &format!("/api/v1/streams/{}/stats", jumpy["id"].as_str().unwrap()), Some(&seller), None)
        .await;
    assert!(stats["last_refusal"].is_null(), "a stream with nothing refused has no refusal: {stats}");
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    server.assert_log_free_of(&keys);
}
