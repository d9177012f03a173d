//! Crashes and posters: a server killed with SIGKILL mid-stream leaves a replay that is whole
//! up to its last complete segment; on restart the stream waits for its publisher, then is
//! continued or ended by the lifecycle rules. Live streams get a poster; replays keep it.

use crate::common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

const SEGMENT: f64 = 2.0;

/// The replay playlist as stored in the media folder, and the segment files there.
fn stored_replay(server: &Server, pid: &str) -> (m3u8_rs::MediaPlaylist, BTreeSet<String>) {
    let dir = server.media_path(pid).join("v0");
    let text = std::fs::read_to_string(dir.join("replay.m3u8")).expect("a stored replay playlist");
    let files = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".m4s"))
        .collect();
    (parse_media(&text), files)
}

/// The replay so far of a stream still on air, as stored: its journal chunks, joined.
fn stored_journal(rendition: &std::path::Path) -> m3u8_rs::MediaPlaylist {
    let mut joined: Option<m3u8_rs::MediaPlaylist> = None;
    for chunk in 0.. {
        let Ok(text) = std::fs::read_to_string(rendition.join(format!("journal{chunk:05}.m3u8"))) else { break };
        let playlist = parse_media(&text);
        match &mut joined {
            Some(joined) => joined.segments.extend(playlist.segments),
            None => joined = Some(playlist),
        }
    }
    joined.expect("a stored replay journal")
}

/// `codec_name,width,height` of a picture.
fn probe_image(jpeg: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("poster.jpg");
    std::fs::write(&file, jpeg).unwrap();
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "stream=codec_name,width,height", "-of", "csv=p=0"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "ffprobe: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Publishes until at least `n` segments are listed, then kills the server with SIGKILL.
/// Returns the data dir and the replay playlist the dead server left behind.
async fn crash_mid_stream(
    server: Server,
    url: &str,
    pid: &str,
    n: usize,
) -> (tempfile::TempDir, m3u8_rs::MediaPlaylist) {
    let mut publisher = ffmpeg_publish(url, 60);
    server.wait_for_segments(pid, n, Duration::from_secs(20)).await;
    // Mid-segment, so that a segment is being made when the server dies.
    tokio::time::sleep(Duration::from_millis(900)).await;
    let playback = server.media_path(pid);
    let dir = server.kill_hard();
    // The publisher loses its connection.
    let _ = tokio::time::timeout(Duration::from_secs(5), publisher.wait()).await;
    let _ = publisher.kill().await;
    assert!(!partials(&playback.join("v0")).is_empty(), "the segment being made is left half-written");
    let left = stored_journal(&playback.join("v0"));
    assert!(!left.end_list, "a crashed stream's replay has no ENDLIST yet");
    assert!(left.segments.len() >= n, "{left:?}");
    // Every segment the playlist names was stored whole before it was named.
    for segment in &left.segments {
        let bytes = std::fs::read(playback.join("v0").join(&segment.uri)).expect("a named segment exists");
        assert!(!bytes.is_empty());
    }
    (dir, left)
}

/// The temporary files in a folder: objects whose writing was cut short.
fn partials(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.starts_with(".tmp-"))
        .collect()
}

/// The archived replay: ENDLIST, everything the crashed server had listed, every segment
/// decoding alone, and ffprobe reading it whole through the public URL.
async fn check_whole_replay(
    server: &Server,
    pid: &str,
    before_crash: &m3u8_rs::MediaPlaylist,
) -> m3u8_rs::MediaPlaylist {
    let text = server.media_playlist(pid).await.expect("the replay is served");
    let replay = check_media_playlist(&text);
    assert!(replay.end_list, "{text}");
    assert_eq!(replay.playlist_type, Some(m3u8_rs::MediaPlaylistType::Vod), "{text}");
    for segment in &before_crash.segments {
        assert!(replay.segments.iter().any(|s| s.uri == segment.uri), "replay lost {}:\n{text}", segment.uri);
    }
    server.check_segments_decode(pid, &replay).await;
    let probed = ffprobe_duration(&server.url(&format!("/hls/{pid}/index.m3u8")));
    let covered = total_duration(&replay);
    assert!((probed - covered).abs() <= SEGMENT, "ffprobe reads {probed:.2} s of a {covered:.2} s replay");
    replay
}

/// A server stopped cleanly (SIGTERM) mid-segment stores the segments being built before it
/// exits: each stream's replay so far ends with its partial segment, whole and decodable, and
/// no temporary file is left. Several streams on two RTMP threads, so that the stop has
/// several streams to wait for, on runtimes other than its own.
#[tokio::test(flavor = "multi_thread")]
async fn a_clean_stop_mid_segment_stores_the_partial_segments() {
    const STREAMS: usize = 4;
    let server = Server::start_with(&["--rtmp-threads", "2"]);
    let seller = server.user("seller", "seller");
    let mut streams = Vec::new();
    for i in 0..STREAMS {
        let created = server.create_stream(&seller, &format!("Stop {i}")).await;
        let (pid, key) = (created["playback_id"].as_str().unwrap(), created["stream_key"].as_str().unwrap());
        let publisher = ffmpeg_publish(&format!("{}/{key}", server.rtmp), 60);
        streams.push((pid.to_owned(), server.media_path(pid).join("v0"), publisher));
    }
    let mut listed = Vec::new();
    for (pid, _, _) in &streams {
        listed.push(server.wait_for_segments(pid, 2, Duration::from_secs(20)).await.segments.len());
    }
    // Mid-segment: the next ones are about a second from complete.
    tokio::time::sleep(Duration::from_millis(900)).await;
    let _dir = server.stop(Duration::from_secs(20));

    for ((pid, rendition, mut publisher), listed) in streams.into_iter().zip(listed) {
        let _ = publisher.kill().await;
        let stored = stored_journal(&rendition);
        assert!(stored.segments.len() > listed, "{pid}: the partial segment is listed: {stored:?}");
        let last = stored.segments.last().unwrap();
        assert!(f64::from(last.duration) < SEGMENT - 0.3, "{pid}: the last segment is the partial one: {last:?}");
        let init_uri = &stored.segments.iter().rev().find_map(|s| s.map.as_ref()).expect("an init segment").uri;
        let init = std::fs::read(rendition.join(init_uri)).unwrap();
        for segment in &stored.segments {
            let bytes = std::fs::read(rendition.join(&segment.uri)).expect("a listed segment exists");
            decode_alone(&init, &bytes).unwrap_or_else(|e| panic!("{pid}/{} does not decode: {e}", segment.uri));
        }
        let left = partials(&rendition);
        assert!(left.is_empty(), "{pid}: temporary files left: {left:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_crashed_mid_publish_is_recovered_then_archived_whole() {
    let server = Server::start_empty();
    let seller = server.user("seller", "seller");
    let admin = server.user("admin", "admin");
    let created = server.create_stream(&seller, "Crash").await;
    let (id, pid, key) = (
        created["id"].as_str().unwrap(),
        created["playback_id"].as_str().unwrap(),
        created["stream_key"].as_str().unwrap(),
    );
    let url = format!("{}/{key}", server.rtmp);

    let (dir, before_crash) = crash_mid_stream(server, &url, pid, 3).await;

    let server = Server::start_in(dir, &[]);
    assert!(
        server.log().contains("streams left live by the last run now wait for their publisher"),
        "{}",
        server.log()
    );
    assert_eq!(server.stream(id, None).await["status"], "reconnecting");
    // What the crash left half-written is gone before the publisher can come back.
    let left = partials(&server.media_path(pid).join("v0"));
    assert!(left.is_empty(), "temporary files left: {left:?}");
    // While it waits, what was stored plays (as an EVENT playlist, without ENDLIST).
    let waiting = parse_media(&server.media_playlist(pid).await.expect("playable while waiting"));
    assert!(waiting.segments.len() >= before_crash.segments.len());

    // The reconnect window runs out: the default action (save) archives the stream.
    let (status, body) =
        server.call("PATCH", "/api/v1/settings", Some(&admin), Some(json!({"reconnect_window_seconds": 2}))).await;
    assert_eq!(status, 200, "{body}");
    server.wait_for_status(id, "archived", Duration::from_secs(10)).await;

    let replay = check_whole_replay(&server, pid, &before_crash).await;
    assert_eq!(replay.segments.len(), before_crash.segments.len(), "nothing after the crash");
    assert!(replay.segments.iter().all(|s| !s.discontinuity));
    // The replay keeps the poster made while live.
    let poster = server.get(&format!("/hls/{pid}/poster.jpg")).await;
    assert_eq!(poster.status(), 200);
    assert_eq!(probe_image(&poster.bytes().await.unwrap()), "mjpeg,640,360");
    server.assert_log_free_of(&[key]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_crashed_mid_publish_is_continued_by_its_publisher_then_saved() {
    crashed_mid_publish_then_continued_and_saved(&[]).await;
}

/// The same on PostgreSQL: the server, its restart and its CLI keep every state there, and
/// no SQLite file appears.
#[tokio::test(flavor = "multi_thread")]
async fn on_postgresql_a_stream_crashed_mid_publish_is_continued_by_its_publisher_then_saved() {
    let url = postgres::database();
    crashed_mid_publish_then_continued_and_saved(&["--database-url", &url]).await;
}

async fn crashed_mid_publish_then_continued_and_saved(database: &[&str]) {
    let server = Server::start_with(database);
    let seller = server.user("seller", "seller");
    let created = server.create_stream(&seller, "Crash and carry on").await;
    let (id, pid, key) = (
        created["id"].as_str().unwrap(),
        created["playback_id"].as_str().unwrap(),
        created["stream_key"].as_str().unwrap(),
    );
    let url = format!("{}/{key}", server.rtmp);

    let (dir, before_crash) = crash_mid_stream(server, &url, pid, 3).await;
    let listed_before = before_crash.segments.len();

    let server = Server::start_in(dir, &[database, &["--live-window", "100"]].concat());
    assert_eq!(server.stream(id, None).await["status"], "reconnecting");
    // The publisher comes back (to the new server's port) within the window.
    let publisher = ffmpeg_publish(&format!("{}/{key}", server.rtmp), 6);
    server.wait_for_status(id, "live", Duration::from_secs(5)).await;
    server.wait_for_segments(pid, listed_before + 2, Duration::from_secs(15)).await;
    assert!(publisher.wait_with_output().await.unwrap().status.success());
    server.wait_for_status(id, "reconnecting", Duration::from_secs(5)).await;
    assert_eq!(server.stream(id, Some(&seller)).await["reconnects"], 1);

    let (status, body) =
        server.call("POST", &format!("/api/v1/streams/{id}/end"), Some(&seller), Some(json!({"action": "save"}))).await;
    assert_eq!(status, 200, "{body}");
    let replay = check_whole_replay(&server, pid, &before_crash).await;
    // One join, right after everything the crashed server had listed; numbering goes on.
    let joins: Vec<usize> =
        replay.segments.iter().enumerate().filter(|(_, s)| s.discontinuity).map(|(i, _)| i).collect();
    assert_eq!(joins, vec![listed_before], "{replay:?}");
    assert!(replay.segments[listed_before].map.is_some(), "the resumed publish names its own init segment");
    assert_ne!(replay.segments[listed_before].map, replay.segments[0].map);
    assert_eq!(replay.media_sequence, 0);
    for (i, segment) in replay.segments.iter().enumerate() {
        assert_eq!(segment.uri, format!("seg{i:06}.m4s"), "numbering is continuous");
    }
    assert!(total_duration(&replay) >= listed_before as f64 * SEGMENT + 6.0 - SEGMENT);
    // No stray segment of the crash is left named or half-written in the folder.
    let (_, files) = stored_replay(&server, pid);
    let named: BTreeSet<String> = replay.segments.iter().map(|s| s.uri.clone()).collect();
    assert!(
        files.difference(&named).count() <= 1,
        "stray segments: {:?}",
        files.difference(&named).collect::<Vec<_>>()
    );
    server.assert_log_free_of(&[key]);
    let sqlite_file = server.data_dir.path().join("hawker.db").exists();
    assert_eq!(sqlite_file, database.is_empty(), "the SQLite file is there only without --database-url");
    assert!(server.cli(&["user", "list"]).contains("seller"), "the CLI reads the same database");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_live_stream_has_a_fresh_poster_and_its_replay_keeps_it() {
    let server = Server::start_with(&["--poster-interval", "2"]);
    let seller = server.user("seller", "seller");
    let created = server.create_stream(&seller, "Poster").await;
    let (id, pid, key) = (
        created["id"].as_str().unwrap(),
        created["playback_id"].as_str().unwrap(),
        created["stream_key"].as_str().unwrap(),
    );
    let poster_url = format!("/hls/{pid}/poster.jpg");
    let publisher = ffmpeg_publish(&format!("{}/{key}", server.rtmp), 60);

    let started = Instant::now();
    let first = loop {
        let response = server.get(&poster_url).await;
        if response.status() == 200 {
            assert_eq!(response.headers()["content-type"], "image/jpeg");
            assert_eq!(response.headers()["cache-control"], "public, max-age=5");
            break response.bytes().await.unwrap();
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no poster after 10 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!("publish -> first poster: {:?}", started.elapsed());
    assert_eq!(probe_image(&first), "mjpeg,640,360");

    // Refreshed while live (testsrc2 moves: a later keyframe is another picture).
    let refreshed = loop {
        let bytes = server.get(&poster_url).await.bytes().await.unwrap();
        if bytes != first {
            break bytes;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "the poster did not change");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(probe_image(&refreshed), "mjpeg,640,360");

    let (status, body) =
        server.call("POST", &format!("/api/v1/streams/{id}/end"), Some(&seller), Some(json!({"action": "save"}))).await;
    assert_eq!(status, 200, "{body}");
    drop(publisher);
    let kept = server.get(&poster_url).await;
    assert_eq!(kept.status(), 200);
    let kept = kept.bytes().await.unwrap();
    assert_eq!(probe_image(&kept), "mjpeg,640,360");
    // Nothing is written after the end: the replay's poster stays as it is.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(server.get(&poster_url).await.bytes().await.unwrap(), kept);
}

/// A request under way whose body comes slowly (the API waits for it up to 30 s).
async fn slow_request(server: &Server) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut socket = tokio::net::TcpStream::connect(server.http.trim_start_matches("http://")).await.unwrap();
    let head = "POST /api/v1/guest-tokens HTTP/1.1\r\nHost: hawker\r\nContent-Type: application/json\r\n\
                Content-Length: 100\r\n\r\n{";
    socket.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    socket
}

/// A clean stop waits for requests under way at most its drain time (`--drain-timeout`), and a
/// second signal stops at once.
#[tokio::test(flavor = "multi_thread")]
async fn a_stop_is_bounded_by_its_drain_time_and_a_second_signal() {
    let server = Server::start_with(&["--drain-timeout", "2"]);
    let _held = slow_request(&server).await;
    let started = Instant::now();
    let _dir = server.stop(Duration::from_secs(10));
    let took = started.elapsed();
    assert!((Duration::from_millis(1500)..Duration::from_secs(6)).contains(&took), "stopped in {took:?}");

    let mut server = Server::start_with(&["--drain-timeout", "60"]);
    let _held = slow_request(&server).await;
    let pid = server.pid().to_string();
    let started = Instant::now();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(server.log().contains("a second signal stops at once"), "{}", server.log());
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = server.wait_exit(Duration::from_secs(5));
    assert!(!status.success(), "a stop cut short is not a clean one");
    assert!(started.elapsed() < Duration::from_secs(3), "the second signal took {:?}", started.elapsed());
    assert!(server.log().contains("a second signal: stopping now"), "{}", server.log());
}
