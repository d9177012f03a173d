//! The server protecting itself and the packager: invalid-key rate limit, connections per
//! address, keyframe timeout, timestamp sanity, and the counters that report them.

mod common;

use std::time::Duration;

use common::*;
use hawker_ingest::{Audio, EndReason, Limits, Video};
use tokio::time::Instant;

fn media(recs: &[Rec], video: bool) -> Vec<u32> {
    recs.iter()
        .filter_map(|r| match r {
            Rec::Video(Video::Frame(f)) if video => Some(f.dts_ms),
            Rec::Audio(Audio::Frame(f)) if !video => Some(f.pts_ms),
            _ => None,
        })
        .collect()
}

fn refusals(server_recs: &[Rec]) -> usize {
    server_recs.iter().filter(|r| matches!(r, Rec::Refused(_))).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_keys_from_one_address_are_rate_limited_and_others_are_not() {
    let mut server = TestServer::start(Limits { bad_key_max_failures: 3, ..Limits::default() }).await;
    for _ in 0..3 {
        let exit = ffmpeg(&ffmpeg_publish_args(&server.url("wrong-S3CR3T"), "1", false, H264)).await;
        assert!(exit.output.contains("invalid stream key"), "{}", exit.output);
    }
    server.wait_until("refused", |r| refusals(r) == 3).await;

    // The next attempt from 127.0.0.1, even with a valid key, is refused before the gate.
    let started = Instant::now();
    let exit = ffmpeg(&ffmpeg_publish_args(&server.url(&good_key("blocked")), "1", false, H264)).await;
    assert!(!exit.success, "ffmpeg must fail: {}", exit.output);
    let reason = "too many invalid stream keys from this address; retry in ";
    let retry: u64 = exit
        .output
        .split_once(reason)
        .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("ffmpeg shows why and when to retry: {}", exit.output));
    assert!((50..=60).contains(&retry), "retry in {retry} s");
    assert!(started.elapsed() < Duration::from_secs(5), "refused at once");

    // 127.0.0.2 is not slowed: a wrong key is asked about, a good one publishes.
    let other = try_handshake(connect_from(server.addr, "127.0.0.2").await).await.expect("handshake");
    let refused = RawPublisher::publish(other, "wrong-S3CR3T").await.err();
    assert_eq!(refused.as_deref(), Some("invalid stream key"));
    let other = try_handshake(connect_from(server.addr, "127.0.0.2").await).await.expect("handshake");
    let mut publisher = RawPublisher::publish(other, &good_key("other")).await.expect("127.0.0.2 publishes");
    publisher.video(0, AVC_HEADER).await.expect("send");
    publisher.video(0, AVC_KEY).await.expect("send");
    server.wait_until("other", |r| !media(r, true).is_empty()).await;

    let stats = server.stats.snapshot();
    assert_eq!(stats.refused_bad_key, 4);
    assert_eq!(stats.refused_rate_limited, 1);
    assert_eq!(stats.publishes_accepted, 1);
    drop(publisher);
    let all = server.stop().await;
    assert_eq!(refusals(&all["refused"]), 4, "the gate was not asked while blocked");
    assert!(!all.contains_key("blocked"));
}

#[tokio::test]
async fn connections_over_the_per_address_cap_are_closed_at_once() {
    let server = TestServer::start(Limits { max_connections_per_ip: 2, ..Limits::default() }).await;
    let first = handshaken(server.addr).await;
    let _second = handshaken(server.addr).await;
    let mut third = connect_from(server.addr, "127.0.0.1").await;
    let connected = Instant::now();
    assert!(closed_by_server(&mut third).await - connected < Duration::from_secs(1));
    // Another address still gets in.
    let _other =
        try_handshake(connect_from(server.addr, "127.0.0.2").await).await.expect("127.0.0.2 is under its own cap");
    server.wait_for_stats(|s| s.connections_rejected_per_ip_cap == 1 && s.connections_open == 3).await;
    // Closing one frees its place.
    drop(first);
    server.wait_for_stats(|s| s.connections_open == 2).await;
    try_handshake(connect_from(server.addr, "127.0.0.1").await).await.expect("a freed place is usable");
    server.stop().await;
}

/// A load balancer's address is every publisher's behind it: neither the connection cap nor
/// the invalid-key limit applies to it (an attacker behind it would otherwise lock out every
/// seller); other addresses keep both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_balancers_address_is_not_limited_per_address() {
    let limits = Limits {
        max_connections_per_ip: 2,
        bad_key_max_failures: 2,
        shared_addresses: vec!["127.0.0.1/32".parse().unwrap()],
        ..Limits::default()
    };
    let server = TestServer::start(limits).await;
    let _held: Vec<_> = held_connections(server.addr, 3).await;
    for _ in 0..3 {
        let publisher = try_handshake(connect_from(server.addr, "127.0.0.1").await).await.expect("handshake");
        assert_eq!(RawPublisher::publish(publisher, "wrong-S3CR3T").await.err().as_deref(), Some("invalid stream key"));
    }
    // 127.0.0.2 is a client of its own: limited after two invalid keys.
    for _ in 0..2 {
        let other = try_handshake(connect_from(server.addr, "127.0.0.2").await).await.expect("handshake");
        assert_eq!(RawPublisher::publish(other, "wrong-S3CR3T").await.err().as_deref(), Some("invalid stream key"));
    }
    let other = try_handshake(connect_from(server.addr, "127.0.0.2").await).await.expect("handshake");
    let refused = RawPublisher::publish(other, "wrong-S3CR3T").await.err().unwrap_or_default();
    assert!(refused.starts_with("too many invalid stream keys"), "{refused}");
    server.wait_for_stats(|s| s.connections_rejected_per_ip_cap == 0 && s.refused_rate_limited == 1).await;
    server.stop().await;
}

/// `n` handshaken connections from the load balancer's address, held open.
async fn held_connections(addr: std::net::SocketAddr, n: usize) -> Vec<tokio::net::TcpStream> {
    let mut held = Vec::new();
    for _ in 0..n {
        held.push(try_handshake(connect_from(addr, "127.0.0.1").await).await.expect("over the cap, still admitted"));
    }
    held
}

#[tokio::test]
async fn a_publish_without_a_keyframe_is_ended() {
    let mut server =
        TestServer::start(Limits { first_keyframe_timeout: Duration::from_millis(800), ..Limits::default() }).await;
    let mut never = RawPublisher::publish(handshaken(server.addr).await, &good_key("nokey")).await.expect("publish");
    let mut keyed = RawPublisher::publish(handshaken(server.addr).await, &good_key("keyed")).await.expect("publish");
    let accepted = Instant::now();
    never.video(0, AVC_HEADER).await.expect("send");
    keyed.video(0, AVC_HEADER).await.expect("send");
    let mut ts = 0;
    // Inter frames only on one, a keyframe (late, but in time) on the other; 2 s of it.
    while accepted.elapsed() < Duration::from_secs(2) {
        ts += 40;
        let _ = never.video(ts, AVC_INTER).await;
        let body = if ts == 400 { AVC_KEY } else { AVC_INTER };
        keyed.video(ts, body).await.expect("the keyed publish goes on");
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    let recs = server.wait_for_end("nokey").await;
    match ends(&recs).as_slice() {
        [EndReason::Failed(why)] => assert!(why.starts_with("no keyframe within 0.8 s"), "{why}"),
        other => panic!("expected a Failed end, got {other:?}"),
    }
    let after = end_time(&recs).duration_since(accepted);
    assert!(after >= Duration::from_millis(700) && after < Duration::from_millis(1500), "ended after {after:?}");
    assert!(!media(&recs, true).is_empty(), "video did flow until then");
    closed_by_server(&mut never.socket).await;

    let keyed_stats = server.publish_stats("keyed").snapshot();
    assert_eq!(keyed_stats.keyframes, 1);
    let all = server.stop().await;
    assert_eq!(
        ends(&all["keyed"]),
        vec![EndReason::Failed("server shutting down".to_owned())],
        "the publish with a keyframe lived until shutdown"
    );
}

#[tokio::test]
async fn timestamps_jumping_by_hours_reach_the_sink_continuous() {
    let mut server = TestServer::start(Limits::default()).await;
    let mut p = RawPublisher::publish(handshaken(server.addr).await, &good_key("clock")).await.expect("publish");
    p.video(0, AVC_HEADER).await.expect("send");
    p.audio(0, AAC_HEADER).await.expect("send");
    const HOUR: u32 = 3_600_000;
    // Three runs of 1 s each: from 0, then 5 h later, then back to 2 s.
    let mut sent = 0;
    for start in [0, 5 * HOUR, 2000] {
        for i in 0..30u32 {
            let body = if i == 0 { AVC_KEY } else { AVC_INTER };
            p.video(start + i * 33, body).await.expect("send");
            p.audio(start + i * 33 + 10, AAC_FRAME).await.expect("send");
            sent += 1;
        }
    }
    let recs = server.wait_until("clock", |r| media(r, true).len() == sent && media(r, false).len() == sent).await;
    for (video, ts) in [(true, media(&recs, true)), (false, media(&recs, false))] {
        for w in ts.windows(2) {
            assert!(w[0] <= w[1] && w[1] - w[0] <= 100, "video={video}: step {w:?} in {ts:?}");
        }
        let last = *ts.last().expect("media");
        assert!((2900..=3100).contains(&last), "about 3 s of media in all: {last}");
    }
    let stats = server.publish_stats("clock").snapshot();
    assert_eq!(stats.timestamp_discontinuities, 2);
    assert_eq!(stats.video_frames, sent as u64);
    assert_eq!(stats.audio_frames, sent as u64);
    assert_eq!(stats.keyframes, 3);
    assert_eq!(stats.dropped, 0);
    assert!(stats.bytes_in > 3000 + (sent as u64) * 16, "bytes in: {}", stats.bytes_in);
    server.stop().await;
}
