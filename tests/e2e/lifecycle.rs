//! The API contract: roles, transitions, key hygiene, errors.

use crate::common;

use std::time::Duration;

use common::events::{open_events, wait_event};
use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn roles_transitions_and_errors() {
    let server = Server::start_with(&[]);
    let seller = server.user("seller", "seller");
    let other_seller = server.user("other", "seller");
    let viewer = server.user("viewer", "viewer");
    let admin = server.user("admin", "admin");

    // Who may create.
    let (status, body) = server.call("POST", "/api/v1/streams", None, Some(json!({"title": "x"}))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthorized")));
    let (status, _) = server.call("POST", "/api/v1/streams", Some("hk_not-a-token"), Some(json!({"title": "x"}))).await;
    assert_eq!(status, 401);
    let (status, body) = server.call("POST", "/api/v1/streams", Some(&viewer), Some(json!({"title": "x"}))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")));

    // Bad input gets a clear JSON error.
    let (status, body) = server.call("POST", "/api/v1/streams", Some(&seller), Some(json!({"title": ""}))).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("title"));
    let response = server
        .client
        .post(server.url("/api/v1/streams"))
        .bearer_auth(&seller)
        .header("content-type", "application/json")
        .body("{\"title\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "bad_request");
    let huge = json!({"title": "x", "description": "d".repeat(200_000)});
    let (status, body) = server.call("POST", "/api/v1/streams", Some(&seller), Some(huge)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (413, Some("payload_too_large")));
    let (status, _) = server.call("GET", "/api/v1/streams?status=bogus", None, None).await;
    assert_eq!(status, 400);
    let (status, _) = server.call("GET", "/api/v1/streams/nope", None, None).await;
    assert_eq!(status, 404);

    let scheduled_at = "2030-01-02T15:00:00Z";
    let (status, stream) = server
        .call(
            "POST",
            "/api/v1/streams",
            Some(&seller),
            Some(json!({"title": "Hats", "description": "Summer", "scheduled_at": scheduled_at})),
        )
        .await;
    assert_eq!(status, 201, "{stream}");
    let id = stream["id"].as_str().unwrap();
    let key = stream["stream_key"].as_str().unwrap().to_owned();
    assert_eq!(stream["scheduled_at"], "2030-01-02T15:00:00Z");
    for field in ["id", "playback_id", "title", "status", "stream_key", "rtmp_url", "playback_url", "created_at"] {
        assert!(!stream[field].is_null(), "{field} missing");
    }
    for field in ["started_at", "ended_at"] {
        assert!(stream[field].is_null(), "{field} should be null");
    }

    // The key: owner and admin only.
    assert_eq!(server.stream(id, Some(&seller)).await["stream_key"], key.as_str());
    assert_eq!(server.stream(id, Some(&admin)).await["stream_key"], key.as_str());
    assert!(server.stream(id, None).await.get("stream_key").is_none());
    assert!(server.stream(id, Some(&other_seller)).await.get("stream_key").is_none());
    let (_, list) = server.call("GET", "/api/v1/streams?status=scheduled", Some(&seller), None).await;
    assert_eq!(list["streams"][0]["id"], id);
    assert!(!list.to_string().contains(&key));

    // Only the owner or an admin may act on a stream; a scheduled stream cannot be ended.
    let end = |token: String, action: &'static str| {
        let server = &server;
        async move {
            server
                .call("POST", &format!("/api/v1/streams/{id}/end"), Some(&token), Some(json!({"action": action})))
                .await
        }
    };
    assert_eq!(end(other_seller.clone(), "save").await.0, 403);
    let (status, body) = end(seller.clone(), "save").await;
    assert_eq!((status, body["error"]["status"].as_str()), (409, Some("scheduled")));
    let (status, _) = server
        .call("POST", &format!("/api/v1/streams/{id}/end"), Some(&seller), Some(json!({"action": "explode"})))
        .await;
    assert_eq!(status, 400);
    assert_eq!(server.call("POST", &format!("/api/v1/streams/{id}/cancel"), Some(&other_seller), None).await.0, 403);

    // Cancel, then nothing else.
    let (status, cancelled) = server.call("POST", &format!("/api/v1/streams/{id}/cancel"), Some(&admin), None).await;
    assert_eq!((status, cancelled["status"].as_str()), (200, Some("cancelled")));
    let (status, body) = server.call("POST", &format!("/api/v1/streams/{id}/cancel"), Some(&seller), None).await;
    assert_eq!((status, body["error"]["status"].as_str()), (409, Some("cancelled")));
    let (status, _) = server.call("POST", &format!("/api/v1/streams/{id}/reset-key"), Some(&seller), None).await;
    assert_eq!(status, 409);
    assert_eq!(
        server.call("GET", &format!("/api/v1/streams/{id}"), None, None).await.0,
        404,
        "cancelled streams are hidden"
    );
    let refused = ffmpeg_publish(&format!("{}/{key}", server.rtmp), 2).wait_with_output().await.unwrap();
    assert!(!refused.status.success(), "a cancelled stream's key published");
    server.assert_log_free_of(&[&key, &seller, &admin]);
}

#[tokio::test(flavor = "multi_thread")]
async fn reset_key_and_end_with_delete() {
    let server = Server::start_with(&[]);
    let seller = server.user("seller", "seller");
    let created = server.create_stream(&seller, "Reset me").await;
    let (id, pid) = (created["id"].as_str().unwrap(), created["playback_id"].as_str().unwrap());
    let old_key = created["stream_key"].as_str().unwrap().to_owned();

    let (status, reset) = server.call("POST", &format!("/api/v1/streams/{id}/reset-key"), Some(&seller), None).await;
    assert_eq!(status, 200);
    let new_key = reset["stream_key"].as_str().unwrap().to_owned();
    assert_ne!(new_key, old_key);

    let refused = ffmpeg_publish(&format!("{}/{old_key}", server.rtmp), 3).wait_with_output().await.unwrap();
    assert!(!refused.status.success(), "the old key still publishes");

    let mut publisher = ffmpeg_publish(&format!("{}/{new_key}", server.rtmp), 30);
    server.wait_for_status(id, "live", Duration::from_secs(5)).await;
    // Wait for media, then reset again while live: the publisher on the old key is cut off.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while server.media_playlist(pid).await.is_none() {
        assert!(std::time::Instant::now() < deadline, "no playlist after 10 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(server.media_path(pid).exists());
    let (status, reset) = server.call("POST", &format!("/api/v1/streams/{id}/reset-key"), Some(&seller), None).await;
    assert_eq!(status, 200);
    let kicked = tokio::time::timeout(Duration::from_secs(1), publisher.wait()).await;
    assert!(kicked.is_ok(), "the publisher on the reset key is still connected after 1 s");
    server.wait_for_status(id, "reconnecting", Duration::from_secs(3)).await;

    let (status, ended) = server
        .call("POST", &format!("/api/v1/streams/{id}/end"), Some(&seller), Some(json!({"action": "delete"})))
        .await;
    assert_eq!((status, ended["status"].as_str()), (200, Some("ended")), "{ended}");
    assert!(!server.media_path(pid).exists(), "media objects remain after delete");
    assert_eq!(server.get_text(&format!("/hls/{pid}/index.m3u8")).await.0, 404);
    let (_, list) = server.call("GET", "/api/v1/streams", None, None).await;
    assert!(!list.to_string().contains(id), "a deleted stream is listed");
    assert_eq!(server.call("GET", &format!("/api/v1/streams/{id}"), None, None).await.0, 404);
    server.assert_log_free_of(&[&old_key, &new_key, reset["stream_key"].as_str().unwrap()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn first_start_prints_a_ready_demo_and_cli_works_beside_the_server() {
    let server = Server::start_empty();
    let log = server.log();
    let value = |label: &str| -> String {
        let line = log
            .lines()
            .find(|l| l.trim_start().starts_with(label))
            .unwrap_or_else(|| panic!("no {label} line in:\n{log}"));
        line.split_whitespace().last().unwrap().to_owned()
    };
    assert_eq!(value("RTMP server:"), server.rtmp);
    let key = value("Stream key:");
    let playback = value("Playback URL:");
    let seller = value("Seller token:");
    assert!(playback.starts_with(&server.http) && playback.ends_with("/index.m3u8"));

    // The printed seller token works and owns the printed stream.
    let (_, list) = server.call("GET", "/api/v1/streams?status=scheduled", None, None).await;
    let id = list["streams"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(server.stream(&id, Some(&seller)).await["stream_key"], key.as_str());

    // `user create` prints exactly one line, the token, while the server runs.
    let out = hawker_cli(server.data_dir.path(), &["user", "create", "--name", "late", "--role", "viewer"]);
    assert_eq!(out.lines().count(), 1);
    let (status, _) = server.call("POST", "/api/v1/streams", Some(out.trim()), Some(json!({"title": "x"}))).await;
    assert_eq!(status, 403, "a viewer token authenticates but may not create");
}

/// A practice stream works like any other for its seller, but is never listed publicly,
/// and ending it deletes it, media and all, even when the seller asks to save it.
#[tokio::test(flavor = "multi_thread")]
async fn a_practice_stream_is_unlisted_and_deleted_when_it_ends() {
    let server = Server::start_with(&[]);
    let seller = server.user("seller", "seller");
    let body = json!({"title": "Rehearsal", "practice": true});
    let (status, stream) = server.call("POST", "/api/v1/streams", Some(&seller), Some(body)).await;
    assert_eq!((status, stream["practice"].as_bool()), (201, Some(true)), "{stream}");
    let (id, pid, key) = (
        stream["id"].as_str().unwrap(),
        stream["playback_id"].as_str().unwrap(),
        stream["stream_key"].as_str().unwrap(),
    );
    let listed = |body: &serde_json::Value| body["streams"].as_array().unwrap().iter().any(|s| s["id"] == id);

    let mut publisher = ffmpeg_publish(&format!("{}/{key}", server.rtmp), 30);
    server.wait_for_status(id, "live", Duration::from_secs(10)).await;
    server.wait_for_segments(pid, 1, Duration::from_secs(20)).await;
    let (_, public) = server.call("GET", "/api/v1/streams", None, None).await;
    assert!(!listed(&public), "a practice stream in the public list: {public}");
    let (_, live) = server.call("GET", "/api/v1/streams?status=live", None, None).await;
    assert!(!listed(&live));
    let (_, mine) = server.call("GET", "/api/v1/streams?scope=mine", Some(&seller), None).await;
    assert!(listed(&mine), "the seller sees it: {mine}");
    assert_eq!(server.get(&format!("/hls/{pid}/index.m3u8")).await.status(), 200, "it plays like any other");

    let end = json!({"action": "save"});
    let (status, ended) = server.call("POST", &format!("/api/v1/streams/{id}/end"), Some(&seller), Some(end)).await;
    assert_eq!((status, ended["status"].as_str()), (200, Some("ended")), "{ended}");
    let _ = tokio::time::timeout(Duration::from_secs(10), publisher.wait()).await;
    let media = server.media_path(pid);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while media.exists() && std::fs::read_dir(&media).map(|mut d| d.next().is_some()).unwrap_or(false) {
        assert!(std::time::Instant::now() < deadline, "the practice stream's media is still stored");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(server.get(&format!("/hls/{pid}/index.m3u8")).await.status(), 404);
}

/// A clip's playlist, parsed: VOD, every object named in the stream's source rendition.
async fn clip_playlist(server: &Server, url: &str) -> m3u8_rs::MediaPlaylist {
    let (status, text) = server.get_text(url).await;
    assert_eq!(status, 200, "{text}");
    let playlist = check_media_playlist(&text);
    assert!(playlist.end_list && playlist.playlist_type == Some(m3u8_rs::MediaPlaylistType::Vod), "{text}");
    assert!(playlist.segments.iter().all(|s| s.uri.starts_with("../../v0/seg")), "{text}");
    playlist
}

#[tokio::test(flavor = "multi_thread")]
async fn clips_play_at_once_live_and_follow_the_stream() {
    let server = Server::start_with(&[]);
    let seller = server.user("seller", "seller");
    let other = server.user("other", "seller");
    let created = server.create_stream(&seller, "Clips").await;
    let (id, pid, key) = (
        created["id"].as_str().unwrap(),
        created["playback_id"].as_str().unwrap(),
        created["stream_key"].as_str().unwrap(),
    );
    let clips = format!("/api/v1/streams/{id}/clips");
    // Nothing to clip before the stream has media.
    let (status, _) = server.call("POST", &clips, Some(&seller), Some(json!({"start": 0, "end": 5}))).await;
    assert_eq!(status, 409);
    let ffmpeg = ffmpeg_publish(&format!("{}/{key}", server.rtmp), 12);
    server.wait_for_status(id, "live", Duration::from_secs(5)).await;
    server.wait_for_segments(pid, 4, Duration::from_secs(20)).await;

    // The last 6 s, while live, by program date-time: playable at once, whole segments.
    let now = chrono::Utc::now();
    let span = json!({"start": now - chrono::Duration::seconds(6), "end": now, "title": "the red shoes"});
    let (status, clip) = server.call("POST", &clips, Some(&seller), Some(span)).await;
    assert_eq!(status, 201, "{clip}");
    let clip_id = clip["id"].as_str().unwrap();
    let url = clip["playback_url"].as_str().unwrap().to_owned();
    assert_eq!(url, server.url(&format!("/hls/{pid}/clips/{clip_id}/index.m3u8")));
    assert_eq!(clip["title"], "the red shoes");
    assert_eq!(clip["share_url"], server.url(&format!("/watch/{pid}?clip={clip_id}")));
    let (status, one) = server.call("GET", &format!("{clips}/{clip_id}"), None, None).await;
    assert_eq!((status, &one["playback_url"]), (200, &clip["playback_url"]));
    assert_eq!(server.call("GET", &format!("{clips}/nope"), None, None).await.0, 404);
    assert!(clip["video_url"].is_null());
    let playlist = clip_playlist(&server, &url).await;
    let seconds = clip["duration_seconds"].as_f64().unwrap();
    assert!((total_duration(&playlist) - seconds).abs() < 0.01, "{seconds} s vs {playlist:?}");
    assert!((4.0..=10.0).contains(&seconds), "a 6 s span on 2 s segments: {seconds} s");
    let probed = ffprobe_duration(&url);
    assert!((probed - seconds).abs() < 0.5, "ffprobe reads {probed} s of {seconds} s");
    // By seconds from the start.
    let (status, first) = server.call("POST", &clips, Some(&seller), Some(json!({"start": 0, "end": 3}))).await;
    assert_eq!(status, 201, "{first}");
    assert!((2.0..=4.1).contains(&first["duration_seconds"].as_f64().unwrap()), "{first}");

    // Refused: no span, too long, no media there, someone else's stream, no token, bad JSON.
    let bad = [
        json!({"start": 5, "end": 5}),
        json!({"start": 5, "end": 5.5}),
        json!({"start": 0, "end": 31 * 60}),
        json!({"start": -1, "end": 3}),
        json!({"start": now + chrono::Duration::hours(1), "end": now + chrono::Duration::hours(2)}),
        json!({"start": 0}),
        json!({"start": 0, "end": 3, "extra": 1}),
    ];
    for body in bad {
        let (status, answer) = server.call("POST", &clips, Some(&seller), Some(body.clone())).await;
        assert!(status == 400 || status == 422, "{body}: {status} {answer}");
    }
    assert_eq!(server.call("POST", &clips, None, Some(json!({"start": 0, "end": 3}))).await.0, 401);
    // A viewer clips the last moments while live: at most 30 s, five an hour.
    let viewer = server.user("viewer", "viewer");
    let last = |seconds: i64| {
        let now = chrono::Utc::now();
        json!({"start": now - chrono::Duration::seconds(seconds), "end": now})
    };
    let (status, theirs) = server.call("POST", &clips, Some(&viewer), Some(last(10))).await;
    assert_eq!(status, 201, "{theirs}");
    assert_eq!(theirs["kind"], "clip");
    clip_playlist(&server, theirs["playback_url"].as_str().unwrap()).await;
    assert_eq!(server.call("POST", &clips, Some(&viewer), Some(last(40))).await.0, 400);
    let (status, _) = server.call("POST", &clips, Some(&viewer), Some(json!({"start": 0, "end": 3}))).await;
    assert!(status == 201 || status == 400, "an old span: {status}");
    let mut answers = Vec::new();
    for _ in 0..5 {
        answers.push(server.call("POST", &clips, Some(&viewer), Some(last(5))).await.0);
    }
    assert_eq!(answers.last(), Some(&429), "{answers:?}");
    let mut viewer_clips = answers.iter().filter(|s| **s == 201).count() + 1;
    viewer_clips += usize::from(status == 201);

    // Saved: the clips stay and still play; an MP4 is made on request.
    assert!(ffmpeg.wait_with_output().await.unwrap().status.success());
    let end = format!("/api/v1/streams/{id}/end");
    assert_eq!(server.call("POST", &end, Some(&seller), Some(json!({"action": "save"}))).await.0, 200);
    let (status, list) = server.call("GET", &clips, None, None).await;
    assert_eq!(status, 200);
    let listed: Vec<&str> = list["clips"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(listed.len(), 2 + viewer_clips, "{list}");
    assert_eq!(listed[viewer_clips..], [first["id"].as_str().unwrap(), clip_id], "newest first");
    assert_eq!(server.call("POST", &clips, Some(&viewer), Some(last(5))).await.0, 409, "not on air any more");
    clip_playlist(&server, &url).await;
    server.check_segments_decode(pid, &parse_media(&server.media_playlist(pid).await.unwrap())).await;
    let mp4 = format!("{clips}/{clip_id}/mp4");
    assert_eq!(server.call("POST", &mp4, Some(&other), None).await.0, 403);
    let mut seller_events = open_events(&server, id, Some(&seller)).await;
    let (status, asked) = server.call("POST", &mp4, Some(&seller), None).await;
    assert_eq!(status, 202, "{asked}");
    // Asked again while it is made: one export.
    assert_eq!(server.call("POST", &mp4, Some(&seller), None).await.0, 202);
    let ready =
        wait_event(&mut seller_events, "clip.mp4_ready", Duration::from_secs(30), |e| e["clip_id"] == clip_id).await;
    assert!(ready["bytes"].as_u64().unwrap() > 0 && ready["duration_seconds"].as_f64().unwrap() > 0.0, "{ready}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let video_url = loop {
        let (_, list) = server.call("GET", &clips, None, None).await;
        let listed = list["clips"].as_array().unwrap().iter().find(|c| c["id"] == clip_id).cloned().unwrap();
        if let Some(url) = listed["video_url"].as_str() {
            break url.to_owned();
        }
        assert!(std::time::Instant::now() < deadline, "no clip MP4");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(video_url, server.url(&format!("/hls/{pid}/clips/{clip_id}/clip.mp4")));
    assert_eq!(ready["video_url"], video_url.as_str());
    // The MP4 shows the span asked for, to the frame (the playlist: whole segments).
    let time = |field: &str| {
        let text = clip[field].as_str().unwrap_or_else(|| panic!("{field} in {clip}"));
        chrono::DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&chrono::Utc)
    };
    assert!((time("requested_start") - (now - chrono::Duration::seconds(6))).abs() < chrono::Duration::milliseconds(1));
    let shown = time("requested_end").min(time("end")) - time("requested_start").max(time("start"));
    let shown = shown.num_milliseconds() as f64 / 1000.0;
    assert!(shown <= seconds, "asked {shown} s of {seconds} s of segments: {clip}");
    assert!((ready["duration_seconds"].as_f64().unwrap() - shown).abs() < 0.1, "{ready} vs {shown} s");
    check_replay_mp4(&video_url, shown).await;
    assert_eq!(server.call("POST", &mp4, Some(&seller), None).await.0, 200);
    let made = server.log().lines().filter(|l| l.contains("MP4 made") && l.contains(clip_id)).count();
    assert_eq!(made, 1, "one export for two requests:\n{}", server.log());

    // Deleted with the stream.
    let doomed = server.create_stream(&seller, "Doomed").await;
    let (did, dpid, dkey) = (
        doomed["id"].as_str().unwrap(),
        doomed["playback_id"].as_str().unwrap(),
        doomed["stream_key"].as_str().unwrap(),
    );
    let ffmpeg = ffmpeg_publish(&format!("{}/{dkey}", server.rtmp), 5);
    server.wait_for_segments(dpid, 2, Duration::from_secs(20)).await;
    let dclips = format!("/api/v1/streams/{did}/clips");
    let (status, gone) = server.call("POST", &dclips, Some(&seller), Some(json!({"start": 0, "end": 2}))).await;
    assert_eq!(status, 201, "{gone}");
    let gone_url = gone["playback_url"].as_str().unwrap().to_owned();
    assert_eq!(server.get_text(&gone_url).await.0, 200);
    let dend = format!("/api/v1/streams/{did}/end");
    assert_eq!(server.call("POST", &dend, Some(&seller), Some(json!({"action": "delete"}))).await.0, 200);
    let _ = ffmpeg.wait_with_output().await;
    assert_eq!(server.get_text(&gone_url).await.0, 404);
    assert_eq!(server.call("GET", &dclips, None, None).await.0, 404);
    assert!(server.call("GET", &dclips, Some(&seller), None).await.1["clips"].as_array().unwrap().is_empty());
}
