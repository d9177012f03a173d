//! RTMPS: the same ingest behind TLS, with a self-signed certificate.

mod common;

use std::time::Duration;

use common::*;
use hawker_ingest::{Audio, EndReason, Limits, Video};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_publishes_over_rtmps() {
    let mut server = TestServer::start_tls(Limits::default()).await;
    let url = server.url(&good_key("tls"));
    assert!(url.starts_with("rtmps://"));
    let exit = ffmpeg(&ffmpeg_publish_args(&url, "2", true, H264)).await;
    assert!(exit.success, "ffmpeg failed: {}", exit.output);
    let recs = server.wait_for_end("tls").await;
    let video = recs.iter().filter(|r| matches!(r, Rec::Video(Video::Frame(_)))).count();
    let audio = recs.iter().filter(|r| matches!(r, Rec::Audio(Audio::Frame(_)))).count();
    assert!(video >= 30 && audio >= 30, "video {video}, audio {audio}");
    assert_eq!(ends(&recs), vec![EndReason::Unpublished]);
    let stats = server.publish_stats("tls").snapshot();
    assert_eq!(stats.video_frames, video as u64);
    assert!(stats.keyframes >= 2, "{stats:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_over_rtmps_is_refused_with_words() {
    let mut server = TestServer::start_tls(Limits::default()).await;
    let exit = ffmpeg(&ffmpeg_publish_args(&server.url("wrong-S3CR3T"), "2", false, H264)).await;
    assert!(!exit.success, "ffmpeg must fail");
    assert!(exit.output.contains("invalid stream key"), "ffmpeg shows our reason: {}", exit.output);
    server.wait_until("refused", |r| !r.is_empty()).await;
    assert_eq!(server.stats.snapshot().refused_bad_key, 1);
    assert!(!server.stop().await.keys().any(|k| k != "refused"));
}

#[tokio::test]
async fn the_tls_handshake_counts_against_the_handshake_timeout() {
    let server =
        TestServer::start_tls(Limits { handshake_timeout: Duration::from_millis(300), ..Limits::default() }).await;
    // Silent after connecting: closed by the deadline.
    let mut silent = TcpStream::connect(server.addr).await.expect("connect");
    let connected = Instant::now();
    let waited = closed_by_server(&mut silent).await - connected;
    assert!(waited >= Duration::from_millis(250) && waited < Duration::from_secs(2), "closed after {waited:?}");
    // Plain RTMP on the TLS port: closed at once.
    let mut plain = TcpStream::connect(server.addr).await.expect("connect");
    plain.write_all(&[3u8; 1537]).await.expect("write c0c1");
    let sent = Instant::now();
    assert!(closed_by_server(&mut plain).await - sent < Duration::from_millis(250));
    server.wait_for_stats(|s| s.handshake_failures == 2 && s.connections_open == 0).await;
    server.stop().await;
}
