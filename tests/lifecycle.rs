//! The API contract: roles, transitions, key hygiene, errors.

mod common;

use std::time::Duration;

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
