//! S3 storage against a real S3 server (s3s-fs, SigV4 checked): objects and their headers in
//! the bucket, playback in both delivery modes, replay and deletion, and an outage of the
//! bucket in the middle of a live stream.

use crate::common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::s3::*;
use common::*;
use serde_json::json;

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

async fn wait_for(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A media playlist with at least `n` segments, through the multivariant one.
async fn playlist_with(server: &Server, pid: &str, n: usize, within: Duration) -> m3u8_rs::MediaPlaylist {
    let deadline = Instant::now() + within;
    loop {
        if let Some(text) = server.media_playlist(pid).await {
            let playlist = check_media_playlist(&text);
            if playlist.segments.len() >= n {
                return playlist;
            }
        }
        assert!(Instant::now() < deadline, "fewer than {n} segments after {within:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The headers stored with an object, as s3s-fs keeps them in its JSON sidecar:
/// (content type, cache control).
fn stored_headers(s3: &S3Server, key: &str) -> (String, String) {
    let name = format!(".bucket-{}.object-{}.metadata.json", base64url(BUCKET), base64url(&format!("{PREFIX}{key}")));
    let text = std::fs::read_to_string(s3.root.path().join(&name)).unwrap_or_else(|e| panic!("{key}: {name}: {e}"));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let field = |f: &str| v[f].as_str().unwrap_or_default().to_owned();
    (field("content_type"), field("cache_control"))
}

fn base64url(text: &str) -> String {
    const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in text.as_bytes().chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (*b as u32) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_serve_mode_publish_play_and_delete() {
    let s3 = S3Server::start();
    let config = s3.config_file("serve");
    let server = Server::start_with(&["--config", config.to_str().unwrap()]);
    assert!(server.log().contains("media goes to S3"), "{}", server.log());
    let seller = server.user("seller", "seller");
    let created = server.create_stream(&seller, "S3 serve").await;
    let (id, pid, key) = (
        created["id"].as_str().unwrap(),
        created["playback_id"].as_str().unwrap(),
        created["stream_key"].as_str().unwrap(),
    );
    let ffmpeg = ffmpeg_publish(&format!("{}/{key}", server.rtmp), 8);
    server.wait_for_status(id, "live", Duration::from_secs(5)).await;

    let live = playlist_with(&server, pid, 2, Duration::from_secs(20)).await;
    server.check_segments_decode(pid, &live).await;
    // Every object the playlist names is in the bucket, byte for byte what hawker serves.
    let mut named: Vec<String> = live.segments.iter().map(|s| s.uri.clone()).collect();
    named.push(live.segments[0].map.as_ref().unwrap().uri.clone());
    for uri in &named {
        let key = format!("streams/{pid}/v0/{uri}");
        let path = s3.object_path(&key);
        wait_for(&key, Duration::from_secs(10), || path.exists()).await;
        let served = server.get(&format!("/hls/{pid}/v0/{uri}")).await.bytes().await.unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), served.to_vec(), "{key}");
    }
    // Headers on every object, so the bucket (or a CDN) can serve viewers itself.
    let v0 = format!("streams/{pid}/v0");
    for uri in &named {
        let (content_type, cache_control) = stored_headers(&s3, &format!("{v0}/{uri}"));
        let want = if uri.ends_with(".mp4") { "video/mp4" } else { "video/iso.segment" };
        assert_eq!((content_type.as_str(), cache_control.as_str()), (want, IMMUTABLE), "{uri}");
    }
    // The replay so far is in the bucket; the live playlist is served from memory only.
    wait_for("the replay's journal in the bucket", Duration::from_secs(10), || {
        s3.object_path(&format!("{v0}/journal00000.m3u8")).exists()
    })
    .await;
    let playlist = "application/vnd.apple.mpegurl";
    assert_eq!(stored_headers(&s3, &format!("{v0}/journal00000.m3u8")), (playlist.into(), "no-cache".into()));
    assert!(!s3.object_path(&format!("{v0}/live.m3u8")).exists());
    assert_eq!(stored_headers(&s3, &format!("streams/{pid}/index.m3u8")).1, "no-cache");
    let output = ffmpeg.wait_with_output().await.unwrap();
    assert!(output.status.success());
    let (status, ended) = server
        .call("POST", &format!("/api/v1/streams/{id}/end"), Some(&seller), Some(json!({"action": "delete"})))
        .await;
    assert_eq!(status, 200, "{ended}");
    assert!(s3.keys(&format!("streams/{pid}/")).is_empty(), "left: {:?}", s3.keys(""));
    assert_eq!(server.get(&format!("/hls/{pid}/v0/{}", named[0])).await.status(), 404);
    server.assert_log_free_of(&[key, SECRET_KEY]);
}

/// Files waiting in hawker's upload spool.
fn spooled(server: &Server) -> usize {
    std::fs::read_dir(server.data_dir.path().join("spool"))
        .map_or(0, |d| d.flatten().filter(|e| e.file_name().to_string_lossy().ends_with(".obj")).count())
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_redirect_mode_plays_from_the_bucket_and_replays() {
    let s3 = S3Server::start();
    let config = s3.config_file("redirect");
    let server = Server::start_with(&["--config", config.to_str().unwrap()]);
    let seller = server.user("seller", "seller");
    let created = server.create_stream(&seller, "S3 redirect").await;
    let (id, pid, key) = (
        created["id"].as_str().unwrap(),
        created["playback_id"].as_str().unwrap(),
        created["stream_key"].as_str().unwrap(),
    );
    let sent = 8;
    let ffmpeg = ffmpeg_publish(&format!("{}/{key}", server.rtmp), sent);
    server.wait_for_status(id, "live", Duration::from_secs(5)).await;
    let live = playlist_with(&server, pid, 2, Duration::from_secs(20)).await;

    // An uploaded segment is answered with a redirect to the bucket (a presigned URL: the
    // bucket is private), and the bucket serves it with the headers hawker stored.
    let no_redirect = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let uri = &live.segments[0].uri;
    let key0 = format!("streams/{pid}/v0/{uri}");
    let path = s3.object_path(&key0);
    wait_for("the first segment in the bucket", Duration::from_secs(10), || path.exists()).await;
    let response = no_redirect.get(server.url(&format!("/hls/{pid}/v0/{uri}"))).send().await.unwrap();
    assert_eq!(response.status(), 302);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(&format!("{}/{BUCKET}/{PREFIX}{key0}?", s3.endpoint())), "{location}");
    assert!(location.contains("X-Amz-Signature="), "{location}");
    let from_bucket = reqwest::get(&location).await.unwrap();
    assert_eq!(from_bucket.status(), 200);
    assert_eq!(from_bucket.headers()["content-type"], "video/iso.segment");
    assert_eq!(from_bucket.headers()["cache-control"], IMMUTABLE);
    assert_eq!(from_bucket.bytes().await.unwrap().to_vec(), std::fs::read(&path).unwrap());
    // Playlists are always hawker's own (fresh, and viewers are counted).
    let response = no_redirect.get(server.url(&format!("/hls/{pid}/v0/index.m3u8"))).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-cache");
    server.check_segments_decode(pid, &live).await;

    let output = ffmpeg.wait_with_output().await.unwrap();
    assert!(output.status.success());
    let (status, ended) =
        server.call("POST", &format!("/api/v1/streams/{id}/end"), Some(&seller), Some(json!({"action": "save"}))).await;
    assert_eq!(status, 200, "{ended}");
    wait_for("the spool to drain", Duration::from_secs(20), || spooled(&server) == 0).await;

    // The replay plays over the bucket's objects: every segment is a redirect to the bucket.
    let text = server.media_playlist(pid).await.expect("replay playlist");
    let replay = check_media_playlist(&text);
    assert!(replay.end_list);
    for segment in &replay.segments {
        let response = no_redirect.get(server.url(&format!("/hls/{pid}/v0/{}", segment.uri))).send().await.unwrap();
        assert_eq!(response.status(), 302, "{}", segment.uri);
    }
    server.check_segments_decode(pid, &replay).await;
    let duration = ffprobe_duration(&server.url(&format!("/hls/{pid}/index.m3u8")));
    assert!((duration - sent as f64).abs() < 2.5, "replay lasts {duration} s, {sent} s were sent");
    // Every replay object stays; the live-only sliding playlist is gone.
    let v0 = format!("streams/{pid}/v0");
    let in_bucket: BTreeSet<String> = s3.keys(&format!("{v0}/")).into_iter().collect();
    for segment in &replay.segments {
        assert!(in_bucket.contains(&format!("{v0}/{}", segment.uri)), "{} missing", segment.uri);
    }
    assert!(in_bucket.contains(&format!("{v0}/replay.m3u8")));
    let parts: Vec<&String> = in_bucket.iter().filter(|k| k.ends_with(".m4s") && k.matches('.').count() == 2).collect();
    assert!(parts.is_empty(), "LL-HLS parts are live-only: {parts:?}");
    let journal: Vec<&String> = in_bucket.iter().filter(|k| k.contains("journal")).collect();
    assert!(journal.is_empty(), "the journal is live-only: {journal:?}");
    let stored_replay = std::fs::read_to_string(s3.object_path(&format!("{v0}/replay.m3u8"))).unwrap();
    assert!(stored_replay.contains("#EXT-X-ENDLIST"));

    // The replay's MP4 goes straight to the bucket and is fetched there, by byte range too.
    let deadline = Instant::now() + Duration::from_secs(30);
    let video_url = loop {
        if let Some(url) = server.stream(id, None).await["video_url"].as_str() {
            break url.to_owned();
        }
        assert!(Instant::now() < deadline, "no video_url");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mp4_key = format!("streams/{pid}/replay.mp4");
    assert_eq!(stored_headers(&s3, &mp4_key), ("video/mp4".into(), IMMUTABLE.into()));
    let response = no_redirect.get(&video_url).send().await.unwrap();
    assert_eq!(response.status(), 302);
    let size = check_replay_mp4(&video_url, total_duration(&replay)).await;
    assert_eq!(std::fs::metadata(s3.object_path(&mp4_key)).unwrap().len(), size);
}

/// A viewer that polls the live playlist and fetches every object it names, recording any
/// that is not there.
async fn watch(http: String, pid: String, stop: std::sync::Arc<std::sync::atomic::AtomicBool>) -> (usize, Vec<String>) {
    let client = reqwest::Client::new();
    let mut fetched = BTreeSet::new();
    let mut missing = Vec::new();
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        if let Ok(response) = client.get(format!("{http}/hls/{pid}/v0/index.m3u8")).send().await
            && response.status() == 200
        {
            let text = response.text().await.unwrap();
            let playlist = parse_media(&text);
            for segment in &playlist.segments {
                let mut uris = vec![segment.uri.clone()];
                if let Some(map) = &segment.map {
                    uris.push(map.uri.clone());
                }
                for uri in uris {
                    if fetched.contains(&uri) {
                        continue;
                    }
                    let status =
                        client.get(format!("{http}/hls/{pid}/v0/{uri}")).send().await.map(|r| r.status().as_u16());
                    match status {
                        Ok(200) => {
                            fetched.insert(uri);
                        }
                        other => missing.push(format!("{uri}: {other:?}")),
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    (fetched.len(), missing)
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_outage_mid_stream_loses_no_segment() {
    let mut s3 = S3Server::start();
    let config = s3.config_file("serve");
    let server = Server::start_with(&["--config", config.to_str().unwrap()]);
    let seller = server.user("seller", "seller");
    let created = server.create_stream(&seller, "S3 outage").await;
    let (id, pid, key) = (
        created["id"].as_str().unwrap(),
        created["playback_id"].as_str().unwrap(),
        created["stream_key"].as_str().unwrap(),
    );
    let sent = 48;
    let ffmpeg = ffmpeg_publish(&format!("{}/{key}", server.rtmp), sent);
    server.wait_for_status(id, "live", Duration::from_secs(5)).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let viewer = tokio::spawn(watch(server.http.clone(), pid.to_owned(), stop.clone()));
    playlist_with(&server, pid, 3, Duration::from_secs(20)).await;

    // The bucket goes away for 32 s while the stream runs.
    s3.stop();
    let outage = Instant::now();
    tokio::time::sleep(Duration::from_secs(16)).await;
    assert!(server.log().contains("uploads to the remote store fail"), "{}", server.log());
    assert!(spooled(&server) >= 5, "segments wait in the spool: {}", spooled(&server));
    // The operator sees it: the metrics, and a node still ready (its spool has room).
    let metrics = server.get("/metrics").await.text().await.unwrap();
    assert_eq!(metric(&metrics, "hawker_storage_outage"), 1.0);
    assert!(metric(&metrics, "hawker_storage_spool_objects") >= 5.0, "{metrics}");
    assert!(metric(&metrics, "hawker_storage_spool_bytes") > 0.0, "{metrics}");
    assert!(metric(&metrics, "hawker_storage_spool_disk_free_bytes") > 64e6, "{metrics}");
    assert!(metric(&metrics, "hawker_storage_oldest_waiting_seconds") > 5.0, "{metrics}");
    assert!(metric(&metrics, "hawker_storage_upload_failures_total") >= 1.0, "{metrics}");
    let ready = server.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    let ready: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(
        (&ready["checks"]["spool"], &ready["checks"]["bucket"]),
        (&"ok".into(), &"unreachable: spooling".into())
    );
    tokio::time::sleep(Duration::from_secs(32) - outage.elapsed()).await;
    let during = spooled(&server);
    s3.restart();
    let back = Instant::now();
    wait_for("the spool to drain", Duration::from_secs(60), || spooled(&server) == 0).await;
    eprintln!("outage 32 s: {during} objects spooled, drained in {:.2} s", back.elapsed().as_secs_f64());

    let output = ffmpeg.wait_with_output().await.unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    server.wait_for_status(id, "reconnecting", Duration::from_secs(10)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (fetched, missing) = viewer.await.unwrap();
    assert!(missing.is_empty(), "the live playlist named objects that could not be read: {missing:?}");
    assert!(fetched >= 15, "the viewer fetched only {fetched} objects");

    let (status, ended) =
        server.call("POST", &format!("/api/v1/streams/{id}/end"), Some(&seller), Some(json!({"action": "save"}))).await;
    assert_eq!(status, 200, "{ended}");
    wait_for("the spool to drain after the end", Duration::from_secs(20), || spooled(&server) == 0).await;
    let log = server.log();
    assert!(log.contains("spool drained"), "{log}");
    let metrics = server.get("/metrics").await.text().await.unwrap();
    assert_eq!(metric(&metrics, "hawker_storage_outage"), 0.0);
    assert_eq!(metric(&metrics, "hawker_storage_spool_objects"), 0.0);
    let uploads = metric(&metrics, "hawker_storage_uploads_total");
    assert!(uploads >= 20.0, "{metrics}");
    assert_eq!(metric(&metrics, "hawker_storage_upload_seconds_count"), uploads);
    assert_eq!(metric(&metrics, "hawker_storage_upload_seconds_bucket{le=\"+Inf\"}"), uploads);
    // The outage's uploads waited longer than the last bound but one.
    assert!(metric(&metrics, "hawker_storage_upload_seconds_bucket{le=\"5\"}") < uploads, "{metrics}");
    assert!(!log.contains("storing segment failed") && !log.contains("SPOOL FULL"), "{log}");

    // Zero segments lost: the replay lists every segment the packager produced, in order and
    // without a gap, and the bucket holds exactly those.
    let text = server.media_playlist(pid).await.expect("replay playlist");
    let replay = check_media_playlist(&text);
    assert!(replay.end_list);
    assert!(replay.segments.iter().all(|s| !s.discontinuity), "a segment was lost:\n{text}");
    let uris: Vec<String> = replay.segments.iter().map(|s| s.uri.clone()).collect();
    let expected: Vec<String> = (0..uris.len()).map(|n| format!("seg{n:06}.m4s")).collect();
    assert_eq!(uris, expected);
    assert!((total_duration(&replay) - sent as f64).abs() < 3.0, "replay {} s of {sent} s", total_duration(&replay));
    let v0 = format!("streams/{pid}/v0/");
    let in_bucket: Vec<String> = s3
        .keys(&v0)
        .into_iter()
        .filter_map(|k| k.strip_prefix(&v0).map(str::to_owned))
        .filter(|k| k.starts_with("seg"))
        .collect();
    assert_eq!(in_bucket, expected, "the bucket holds exactly the replay's segments");
    let stored = std::fs::read_to_string(s3.object_path(&format!("{v0}replay.m3u8"))).unwrap();
    assert_eq!(stored, text, "the bucket's replay playlist is the one served");
    server.check_segments_decode(pid, &replay).await;
}

/// A file over one part (16 MB) goes to the bucket by multipart upload, part by part, and
/// reads back whole and by range; the store's spool is not involved.
#[tokio::test(flavor = "multi_thread")]
async fn a_large_file_goes_to_the_bucket_in_parts() {
    use hawker_storage::{IMMUTABLE, ObjectMeta, S3Config, S3Store, Store};
    let s3 = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let config = S3Config {
        endpoint: Some(s3.endpoint()),
        region: Some("us-east-1".into()),
        bucket: common::s3::BUCKET.into(),
        prefix: common::s3::PREFIX.into(),
        path_style: true,
        credentials: Some((common::s3::ACCESS_KEY.into(), common::s3::SECRET_KEY.into())),
        create_bucket: true,
        delivery: Default::default(),
        public_base_url: None,
        spool_dir: dir.path().join("spool"),
        spool_max_bytes: 64 << 20,
        upload_concurrency: 2,
        slow_upload_warning: None,
    };
    let store = S3Store::connect(config).await.expect("connect");
    // 40 MB + 1 byte: two whole parts and a short one; every byte tells its offset.
    let size: usize = (40 << 20) + 1;
    let content: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let file = dir.path().join("big.mp4");
    std::fs::write(&file, &content).unwrap();
    store.put_file("streams/p/replay.mp4", &file, ObjectMeta::new("video/mp4", IMMUTABLE)).await.expect("put_file");
    assert_eq!(std::fs::read(s3.object_path("streams/p/replay.mp4")).unwrap(), content, "stored whole, in order");
    assert_eq!(store.size("streams/p/replay.mp4").await.unwrap(), Some(size as u64));
    let offset = (16 << 20) - 10; // across the first part's end
    let range = store.get_range("streams/p/replay.mp4", offset, 20).await.unwrap().unwrap();
    assert_eq!(&range[..], &content[offset as usize..offset as usize + 20]);
    assert!(store.size("streams/p/nothing.mp4").await.unwrap().is_none());
    // No upload is left open in the bucket (s3s-fs keeps parts as hidden files).
    assert_eq!(s3.keys("streams/"), vec!["streams/p/replay.mp4".to_owned()]);
}
