//! The ABR ladder end to end: an admin sets two rungs, ffmpeg publishes, and every rendition
//! is listed, plays, reports the others, is cut at the source's frames, and is saved as a
//! replay.

use crate::common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::hls::{attr, low_latency, validate_variant};
use common::*;
use serde_json::json;

const RENDITIONS: [&str; 3] = ["v0", "240p", "180p"];
const FRAME: f64 = 1.0 / 30.0;

/// The media playlist of one rendition, as served at `/hls/{pid}/{rendition}/index.m3u8`.
async fn media(server: &Server, pid: &str, rendition: &str) -> (String, m3u8_rs::MediaPlaylist) {
    let (status, text) = server.get_text(&format!("/hls/{pid}/{rendition}/index.m3u8")).await;
    assert_eq!(status, 200, "{rendition}: {text}");
    let playlist = parse_media(&text);
    (text, playlist)
}

/// (LAST-MSN, LAST-PART) of each EXT-X-RENDITION-REPORT, by rendition.
fn reports(text: &str) -> Vec<(String, u64, Option<u64>)> {
    text.lines()
        .filter_map(|l| l.strip_prefix("#EXT-X-RENDITION-REPORT:"))
        .map(|r| {
            let uri = attr(r, "URI").expect("URI");
            let rendition =
                uri.strip_prefix("../").and_then(|u| u.strip_suffix("/index.m3u8")).expect("../R/index.m3u8");
            let last_msn = attr(r, "LAST-MSN").expect("LAST-MSN").parse().unwrap();
            (rendition.to_owned(), last_msn, attr(r, "LAST-PART").map(|p| p.parse().unwrap()))
        })
        .collect()
}

/// The last MSN a live playlist shows and the index of its last part there.
fn live_edge(text: &str, playlist: &m3u8_rs::MediaPlaylist) -> (u64, u64) {
    let complete = playlist.media_sequence + playlist.segments.len() as u64;
    let parts = low_latency(text).parts;
    let last = parts.last().expect("parts");
    let (msn, index) = last.uri.trim_start_matches("seg").trim_end_matches(".m4s").split_once('.').unwrap();
    let (msn, index): (u64, u64) = (msn.parse().unwrap(), index.parse().unwrap());
    assert!(msn == complete || msn + 1 == complete, "last part {} vs {complete} segments", last.uri);
    (msn, index)
}

/// Width and height of the video of `init` + `segment`, by ffprobe.
fn probe_size(init: &[u8], segment: &[u8]) -> (u32, u32) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("segment.mp4");
    std::fs::write(&file, [init, segment].concat()).unwrap();
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height", "-of", "csv=p=0"])
        .arg(&file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let (w, h) = text.trim().split_once(',').unwrap_or_else(|| panic!("ffprobe: {text}"));
    (w.parse().unwrap(), h.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn ladder_renditions_are_listed_aligned_and_replayed() {
    let server = Server::start_with(&[]);
    let admin = server.user("admin", "admin");
    let seller = server.user("seller", "seller");
    let ladder = json!([{"name": "240p", "width": 426, "height": 240, "video_bitrate_kbps": 400},
                        {"name": "180p", "width": 320, "height": 180, "video_bitrate_kbps": 200}]);
    let (status, body) = server.call("PATCH", "/api/v1/settings", Some(&admin), Some(json!({"ladder": ladder}))).await;
    assert_eq!(status, 200, "{body}");
    let created = server.create_stream(&seller, "Ladder").await;
    let (id, pid, key) = (
        created["id"].as_str().unwrap(),
        created["playback_id"].as_str().unwrap(),
        created["stream_key"].as_str().unwrap(),
    );
    let ffmpeg = ffmpeg_publish(&format!("{}/{key}", server.rtmp), 10);
    server.wait_for_status(id, "live", Duration::from_secs(5)).await;

    // The multivariant playlist lists the source first, then the rungs.
    let deadline = Instant::now() + Duration::from_secs(15);
    let multivariant = loop {
        let (status, text) = server.get_text(&format!("/hls/{pid}/index.m3u8")).await;
        if status == 200 && parse_multivariant(&text).variants.len() == 3 {
            break parse_multivariant(&text);
        }
        assert!(Instant::now() < deadline, "no 3-variant multivariant playlist: {status} {text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let uris: Vec<&str> = multivariant.variants.iter().map(|v| v.uri.as_str()).collect();
    assert_eq!(uris, ["v0/index.m3u8", "240p/index.m3u8", "180p/index.m3u8"]);
    let sizes: Vec<_> = multivariant.variants.iter().map(|v| v.resolution.map(|r| (r.width, r.height))).collect();
    assert_eq!(sizes, [Some((640, 360)), Some((426, 240)), Some((320, 180))]);
    for v in &multivariant.variants {
        let codecs = v.codecs.as_deref().unwrap_or_default();
        assert!(codecs.starts_with("avc1.") && codecs.ends_with(",mp4a.40.2"), "{v:?}");
        assert_eq!(v.frame_rate, Some(30.0), "{v:?}");
        assert!(v.bandwidth > 50_000 && v.average_bandwidth.is_some(), "{v:?}");
    }
    assert!(multivariant.variants[2].bandwidth < multivariant.variants[0].bandwidth, "{multivariant:?}");

    // Blocking reload on a rung: held until its next segment exists.
    let (_, playlist) = media(&server, pid, "240p").await;
    let next = playlist.media_sequence + playlist.segments.len() as u64;
    let started = Instant::now();
    let (status, text) = server.get_text(&format!("/hls/{pid}/240p/index.m3u8?_HLS_msn={next}")).await;
    assert_eq!(status, 200, "{text}");
    assert!(started.elapsed() < Duration::from_secs(4), "blocking reload took {:?}", started.elapsed());
    assert!(text.contains(&format!("\nseg{next:06}.m4s\n")), "segment {next} missing:\n{text}");

    // While live: every rendition passes the validator and reports the two others.
    for rendition in RENDITIONS {
        let text = validate_variant(&server, pid, &format!("{rendition}/index.m3u8")).await;
        let names: Vec<String> = reports(&text).into_iter().map(|r| r.0).collect();
        let others: Vec<&str> = RENDITIONS.into_iter().filter(|r| *r != rendition).collect();
        assert_eq!(names, others, "{rendition}:\n{text}");
    }

    // Publisher gone: the live playlists are final, and each report matches its rendition.
    let output = ffmpeg.wait_with_output().await.unwrap();
    assert!(output.status.success(), "ffmpeg failed: {}", String::from_utf8_lossy(&output.stderr));
    server.wait_for_status(id, "reconnecting", Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut edges = Vec::new();
    let mut texts = Vec::new();
    for rendition in RENDITIONS {
        let (text, playlist) = media(&server, pid, rendition).await;
        edges.push(live_edge(&text, &playlist));
        texts.push(text);
    }
    for (text, rendition) in texts.iter().zip(RENDITIONS) {
        for (other, last_msn, last_part) in reports(text) {
            let i = RENDITIONS.iter().position(|r| *r == other).expect("a known rendition");
            assert_eq!((last_msn, last_part), (edges[i].0, Some(edges[i].1)), "{rendition} on {other}:\n{text}");
        }
    }

    // A rung's segment has the rung's size.
    let init = server.get(&format!("/hls/{pid}/240p/init0.mp4")).await.bytes().await.unwrap();
    let segment = server.get(&format!("/hls/{pid}/240p/seg000001.m4s")).await.bytes().await.unwrap();
    assert_eq!(probe_size(&init, &segment), (426, 240));

    // Saved: each rendition's replay is VOD, and segment N is the same media in each.
    let (status, body) =
        server.call("POST", &format!("/api/v1/streams/{id}/end"), Some(&seller), Some(json!({"action": "save"}))).await;
    assert_eq!(status, 200, "{body}");
    let mut replays = Vec::new();
    for rendition in RENDITIONS {
        validate_variant(&server, pid, &format!("{rendition}/index.m3u8")).await;
        let (text, replay) = media(&server, pid, rendition).await;
        assert!(replay.end_list, "{rendition}:\n{text}");
        assert_eq!(replay.playlist_type, Some(m3u8_rs::MediaPlaylistType::Vod), "{rendition}");
        assert!(!text.contains("RENDITION-REPORT"), "{rendition}:\n{text}");
        replays.push(replay);
    }
    let source = &replays[0];
    assert!(source.segments.len() >= 4, "{} segments", source.segments.len());
    for (rendition, replay) in RENDITIONS.iter().zip(&replays).skip(1) {
        assert_eq!(replay.segments.len(), source.segments.len(), "{rendition}");
        for (a, b) in source.segments.iter().zip(&replay.segments) {
            assert_eq!(a.uri, b.uri, "{rendition}");
            let (da, db) = (f64::from(a.duration), f64::from(b.duration));
            assert!((da - db).abs() <= FRAME + 1e-3, "{rendition} {}: {da} vs {db}", a.uri);
            assert_eq!(a.program_date_time, b.program_date_time, "{rendition} {}", a.uri);
        }
    }
    // Only what the replays name stays: no rendition keeps its live playlists or parts.
    for rendition in RENDITIONS {
        let left: Vec<String> = std::fs::read_dir(server.media_path(pid).join(rendition))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with("live") || (name.ends_with(".m4s") && name.matches('.').count() == 2))
            .collect();
        assert!(left.is_empty(), "{rendition} kept live-only objects: {left:?}");
    }
}
