//! Sellers on flaky networks: reconnects, takeovers and the reconnect window.

use crate::common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

const SEGMENT: f64 = 2.0;

#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_publisher_comes_back_into_one_continuous_stream() {
    let server = Server::start_with(&["--live-window", "30"]);
    let seller = server.user("seller", "seller");
    let created = server.create_stream(&seller, "Flaky wifi").await;
    let (id, pid, key) = (
        created["id"].as_str().unwrap(),
        created["playback_id"].as_str().unwrap(),
        created["stream_key"].as_str().unwrap(),
    );
    let url = format!("{}/{key}", server.rtmp);

    // First part: killed mid-stream, as a dropped connection.
    let mut first = ffmpeg_publish(&url, 60);
    let before_drop = server.wait_for_segments(pid, 3, Duration::from_secs(15)).await;
    first.kill().await.unwrap();
    server.wait_for_status(id, "reconnecting", Duration::from_secs(5)).await;
    let listed_before = before_drop.segments.len();

    // Second part: the same key within the window; OBS-like, timestamps restart at 0.
    let second_started = Instant::now();
    let second = ffmpeg_publish(&url, 6);
    server.wait_for_status(id, "live", Duration::from_secs(5)).await;
    let playlist = server.wait_for_segments(pid, listed_before + 2, Duration::from_secs(15)).await;
    let reconnect_to_segment = second_started.elapsed();
    assert!(second.wait_with_output().await.unwrap().status.success());
    server.wait_for_status(id, "reconnecting", Duration::from_secs(5)).await;
    eprintln!("reconnect -> next segment listed: {reconnect_to_segment:?}");

    let live_text = server.media_playlist(pid).await.unwrap();
    let live = check_media_playlist(&live_text);
    assert_eq!(live.segments.iter().filter(|s| s.discontinuity).count(), 1, "{live_text}");
    assert!(live.media_sequence <= playlist.media_sequence);
    // Nothing listed before the drop went missing.
    for segment in &before_drop.segments {
        assert!(live.segments.iter().any(|s| s.uri == segment.uri), "{} lost:\n{live_text}", segment.uri);
    }
    let stream = server.stream(id, Some(&seller)).await;
    assert_eq!(stream["reconnects"], 1);
    validate_hls(&server, pid).await;

    let (status, _) =
        server.call("POST", &format!("/api/v1/streams/{id}/end"), Some(&seller), Some(json!({"action": "save"}))).await;
    assert_eq!(status, 200);
    let replay_text = server.media_playlist(pid).await.unwrap();
    let replay = check_media_playlist(&replay_text);
    assert!(replay.end_list);
    let join = replay.segments.iter().position(|s| s.discontinuity).expect("a DISCONTINUITY at the join");
    assert!(join >= listed_before, "the join comes after every segment of the first part");
    assert!(replay.segments[join].map.is_some(), "the second part names its own init segment");
    for segment in &before_drop.segments {
        assert!(replay.segments.iter().any(|s| s.uri == segment.uri), "replay lost {}", segment.uri);
    }
    server.check_segments_decode(pid, &replay).await;
    validate_hls(&server, pid).await;
    // A player reads through both parts.
    let probed = ffprobe_duration(&server.url(&format!("/hls/{pid}/index.m3u8")));
    let covered = total_duration(&replay);
    assert!((probed - covered).abs() <= SEGMENT, "ffprobe reads {probed:.2} s of a {covered:.2} s replay");
    assert!(covered >= 6.0 + listed_before as f64 * SEGMENT - SEGMENT);
    server.assert_log_free_of(&[key]);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_key_takes_over_a_half_open_publisher_at_once() {
    let server = Server::start_with(&[]);
    let seller = server.user("seller", "seller");
    let created = server.create_stream(&seller, "Takeover").await;
    let (id, pid, key) = (
        created["id"].as_str().unwrap(),
        created["playback_id"].as_str().unwrap(),
        created["stream_key"].as_str().unwrap(),
    );
    let url = format!("{}/{key}", server.rtmp);

    let old = ffmpeg_publish(&url, 60);
    server.wait_for_segments(pid, 2, Duration::from_secs(15)).await;
    // Freeze the old publisher: its socket stays open but nothing is read or sent.
    let old_pid = old.id().expect("ffmpeg pid").to_string();
    assert!(std::process::Command::new("kill").args(["-STOP", &old_pid]).status().unwrap().success());

    let started = Instant::now();
    let mut new = ffmpeg_publish(&url, 60);
    loop {
        if server.stream(id, Some(&seller)).await["reconnects"] == 1 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(1), "the new publisher was not accepted within 1 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("takeover accepted after {:?}", started.elapsed());
    let _ = std::process::Command::new("kill").args(["-CONT", &old_pid]).status();
    drop(old);

    // The new publisher carries the stream on.
    let before = parse_media(&server.media_playlist(pid).await.unwrap());
    let count = before.media_sequence as usize + before.segments.len();
    server.wait_for_segments(pid, count + 2, Duration::from_secs(10)).await;
    assert_eq!(server.stream(id, None).await["status"], "live");
    assert!(new.try_wait().unwrap().is_none(), "the new publisher was disconnected");
    let _ = new.kill().await;
    server.assert_log_free_of(&[key]);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_reconnect_window_expires_with_the_admins_default_action() {
    let server = Server::start_with(&[]);
    let admin = server.user("admin", "admin");
    let seller = server.user("seller", "seller");

    // Validation first.
    let (status, body) =
        server.call("PATCH", "/api/v1/settings", Some(&admin), Some(json!({"reconnect_window_seconds": 5000}))).await;
    assert_eq!(status, 400);
    assert!(body["error"]["message"].as_str().unwrap().contains("0 to 1800"), "{body}");
    let (status, _) =
        server.call("PATCH", "/api/v1/settings", Some(&seller), Some(json!({"reconnect_window_seconds": 5}))).await;
    assert_eq!(status, 403);
    let (status, settings) = server.call("GET", "/api/v1/settings", Some(&admin), None).await;
    assert_eq!((status, settings["reconnect_window_seconds"].as_u64()), (200, Some(60)));

    let (status, settings) = server
        .call(
            "PATCH",
            "/api/v1/settings",
            Some(&admin),
            Some(json!({"reconnect_window_seconds": 2, "reconnect_default_action": "delete"})),
        )
        .await;
    assert_eq!(status, 200, "{settings}");

    let created = server.create_stream(&seller, "Gone for good").await;
    let (id, pid, key) = (
        created["id"].as_str().unwrap(),
        created["playback_id"].as_str().unwrap(),
        created["stream_key"].as_str().unwrap(),
    );
    let publisher = ffmpeg_publish(&format!("{}/{key}", server.rtmp), 3);
    server.wait_for_status(id, "live", Duration::from_secs(5)).await;
    assert!(publisher.wait_with_output().await.unwrap().status.success());
    server.wait_for_status(id, "reconnecting", Duration::from_secs(5)).await;
    let gone_at = Instant::now();
    // The stream is hidden once ended: poll as its owner.
    loop {
        let stream = server.stream(id, Some(&seller)).await;
        if stream["status"] == "ended" {
            break;
        }
        assert_eq!(stream["status"], "reconnecting");
        assert!(gone_at.elapsed() < Duration::from_secs(5), "the window did not expire");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone_at.elapsed() >= Duration::from_millis(1500), "ended before the window was over");
    // The status changes first (the key stops working at once), then the media goes.
    let deleted_by = Instant::now() + Duration::from_secs(3);
    while server.media_path(pid).exists() {
        assert!(Instant::now() < deleted_by, "the delete action left media behind");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refused = ffmpeg_publish(&format!("{}/{key}", server.rtmp), 2).wait_with_output().await.unwrap();
    assert!(!refused.status.success(), "an ended stream's key published again");
    server.assert_log_free_of(&[key]);
}
