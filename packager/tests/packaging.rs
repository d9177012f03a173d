//! End to end: an FLV made by ffmpeg goes through `PublishFeed` into a `LocalStore`; ffprobe
//! and m3u8-rs read what was written.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hawker_packager::{DateRange, Packager, PackagerConfig, PackagerError, Rendition};
use hawker_storage::{LocalStore, Store};
use m3u8_rs::{MediaPlaylist, MediaPlaylistType};

mod common;
use common::*;

fn ffmpeg_flv(dir: &Path, name: &str, audio: bool, seconds: u32) -> PathBuf {
    let out = dir.join(name);
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30"]);
    if audio {
        cmd.args(["-f", "lavfi", "-i", "sine=sample_rate=48000", "-c:a", "aac"]);
    }
    cmd.args(["-t", &seconds.to_string(), "-c:v", "libx264", "-g", "60", "-bf", "2"]);
    cmd.args(["-pix_fmt", "yuv420p", "-f", "flv"]).arg(&out);
    let status = cmd.status().expect("ffmpeg runs");
    assert!(status.success(), "ffmpeg failed");
    out
}

fn media_duration(tags: &[Tag]) -> f64 {
    let video: Vec<u32> = tags.iter().filter(|t| t.kind == 9).map(|t| t.timestamp_ms).collect();
    let first = video.iter().min().copied().unwrap_or(0);
    let last = video.iter().max().copied().unwrap_or(0);
    f64::from(last - first) / 1000.0 + 1.0 / 30.0
}

async fn get(store: &LocalStore, key: &str) -> Option<Bytes> {
    store.get(key).await.expect("store get").map(|o| o.bytes)
}

fn media_playlist(bytes: &[u8]) -> MediaPlaylist {
    m3u8_rs::parse_media_playlist_res(bytes).expect("media playlist parses")
}

/// Top-level ISO-BMFF box types.
fn boxes(data: &[u8]) -> Vec<String> {
    let mut pos = 0;
    let mut out = Vec::new();
    while pos + 8 <= data.len() {
        let size = u32::from_be_bytes(data[pos..pos + 4].try_into().expect("4 bytes")) as usize;
        out.push(String::from_utf8_lossy(&data[pos + 4..pos + 8]).into_owned());
        assert!(size >= 8, "bad box size");
        pos += size;
    }
    assert_eq!(pos, data.len(), "boxes cover the object exactly");
    out
}

/// Decodes init + segment with ffprobe; returns the streams' (type, decoded frames).
fn probe(dir: &Path, init: &[u8], segment: &[u8]) -> Vec<(String, u64)> {
    let path = dir.join("probe.mp4");
    std::fs::write(&path, [init, segment].concat()).expect("write probe file");
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-show_entries", "stream=codec_type,nb_read_frames"])
        .args(["-of", "csv=p=0"])
        .arg(&path)
        .output()
        .expect("ffprobe runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "ffprobe: {stderr}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (kind, frames) = l.split_once(',')?;
            Some((kind.to_owned(), frames.trim().parse().ok()?))
        })
        .collect()
}

/// Checks every segment of the playlist: boxes, stand-alone decoding, audio presence.
async fn check_segments(store: &LocalStore, dir: &Path, pid: &str, pl: &MediaPlaylist, audio: bool) {
    check_rendition(store, dir, &format!("{pid}/v0"), pl, audio).await;
}

/// `check_segments` for the rendition folder `{pid}/{rendition}`.
async fn check_rendition(store: &LocalStore, dir: &Path, folder: &str, pl: &MediaPlaylist, audio: bool) {
    let mut init = Bytes::new();
    for seg in &pl.segments {
        if let Some(map) = &seg.map {
            init = get(store, &format!("streams/{folder}/{}", map.uri)).await.expect("init stored");
            assert_eq!(boxes(&init), ["ftyp", "moov"]);
        }
        let data = get(store, &format!("streams/{folder}/{}", seg.uri)).await.expect("segment stored");
        let kinds = boxes(&data);
        assert_eq!(kinds[..2], ["styp", "moof"], "{}", seg.uri);
        let streams = probe(dir, &init, &data);
        let video = streams.iter().find(|(k, _)| k == "video").expect("video stream");
        assert!(video.1 > 0, "{} decodes no video frame", seg.uri);
        assert_eq!(streams.iter().any(|(k, n)| k == "audio" && *n > 0), audio, "{}", seg.uri);
    }
}

fn extinf_sum(pl: &MediaPlaylist) -> f64 {
    pl.segments.iter().map(|s| f64::from(s.duration)).sum()
}

/// 2 s segments, 200 ms LL-HLS parts, a 2-segment live window, no posters, no ladder.
const SCHED_BATCH: u32 = 3;

/// The scheduling policy of every muxer thread of this process (`/proc/self/task/*/stat`).
fn muxer_thread_policies() -> Vec<u32> {
    let mut policies = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").expect("/proc/self/task") {
        let path = task.expect("a task").path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        let stat = std::fs::read_to_string(path.join("stat")).unwrap_or_default();
        if !comm.starts_with("isofmp4mux") {
            continue;
        }
        // Fields after the parenthesised name; the policy is the 41st field of the line.
        let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        policies.extend(after_name.split_whitespace().nth(41 - 3).and_then(|p| p.parse::<u32>().ok()));
    }
    policies
}

fn ll_config() -> PackagerConfig {
    PackagerConfig {
        segment_duration: Duration::from_secs(2),
        live_window: 2,
        poster_interval: Duration::ZERO,
        part_duration: Some(Duration::from_millis(200)),
        ..PackagerConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_publishes_then_vod() {
    let dir = tempfile::tempdir().expect("tempdir");
    let flv = ffmpeg_flv(dir.path(), "av.flv", true, 6);
    let tags = read_flv(&flv);
    let duration = media_duration(&tags);
    let store = Arc::new(LocalStore::new(dir.path().join("store")).expect("store"));
    let packager = Packager::new(store.clone(), ll_config()).expect("packager");
    let stream = packager.open("pidav").await.expect("open");

    let mut feed = stream.start_publish().expect("publish 1");
    push_all(&mut feed, &tags);
    // The muxer's streaming thread does not preempt the thread that feeds it.
    let mut policies = muxer_thread_policies();
    for _ in 0..100 {
        if !policies.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        policies = muxer_thread_policies();
    }
    assert!(!policies.is_empty() && policies.iter().all(|&p| p == SCHED_BATCH), "{policies:?}");
    feed.end();

    // While live the replay is an EVENT playlist; wait for the first one.
    let mut event = None;
    for _ in 0..200 {
        if let Some(bytes) = packager.replay_playlist("pidav", "v0").await.expect("replay so far") {
            event = Some(bytes);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let event = media_playlist(&event.expect("replay written while live"));
    assert_eq!(event.playlist_type, Some(MediaPlaylistType::Event));
    assert!(!event.end_list);

    // A reconnect: OBS restarts its timestamps at 0.
    let mut feed = stream.start_publish().expect("publish 2");
    push_all(&mut feed, &tags);
    feed.end();
    stream.finish(true).await.expect("finish");
    assert!(matches!(stream.start_publish(), Err(PackagerError::Closed(_))));

    let replay = media_playlist(&get(&store, "streams/pidav/v0/replay.m3u8").await.expect("replay"));
    assert_eq!(replay.playlist_type, Some(MediaPlaylistType::Vod));
    assert!(replay.end_list);
    assert_eq!(replay.version, Some(7));
    assert_eq!(replay.media_sequence, 0);
    let n = replay.segments.len();
    let second = replay.segments.iter().position(|s| s.discontinuity).expect("a discontinuity");
    assert!(second >= 2 && second < n - 1, "discontinuity at {second} of {n}");
    assert_eq!(replay.segments.iter().filter(|s| s.discontinuity).count(), 1);
    assert_eq!(replay.segments[0].map.as_ref().map(|m| m.uri.as_str()), Some("init0.mp4"));
    assert_eq!(replay.segments[second].map.as_ref().map(|m| m.uri.as_str()), Some("init1.mp4"));
    for (i, seg) in replay.segments.iter().enumerate() {
        assert_eq!(seg.uri, format!("seg{i:06}.m4s"));
        let target = replay.target_duration as f32;
        assert!(seg.duration <= target && seg.duration > 0.0, "{} s > {target}", seg.duration);
    }
    // PDT on every segment, strictly increasing.
    let pdts: Vec<_> = replay.segments.iter().map(|s| s.program_date_time.expect("PDT")).collect();
    assert!(pdts.windows(2).all(|w| w[0] < w[1]), "{pdts:?}");
    let first_half = MediaPlaylist { segments: replay.segments[..second].to_vec(), ..replay.clone() };
    let second_half = MediaPlaylist { segments: replay.segments[second..].to_vec(), ..replay.clone() };
    for half in [&first_half, &second_half] {
        let sum = extinf_sum(half);
        assert!((sum - duration).abs() < 0.1, "EXTINF sum {sum} vs media {duration}");
    }
    // Segments are cut on keyframes at/after 2 s: 2 s GOPs give 2 s segments.
    assert!((f64::from(replay.segments[0].duration) - 2.0).abs() < 0.05);
    check_segments(&store, dir.path(), "pidav", &replay, true).await;

    // Saved: what only live viewers needed is gone (parts, the replay's journal), and nothing
    // is served from memory any more.
    assert_eq!(live_only_objects(&store, "pidav").await, Vec::<String>::new());
    assert!(stream.live().playlist("v0", false).is_none());

    let master =
        m3u8_rs::parse_master_playlist_res(&get(&store, "streams/pidav/index.m3u8").await.expect("multivariant"))
            .expect("multivariant parses");
    let variant = &master.variants[0];
    assert_eq!(variant.uri, "v0/index.m3u8");
    assert!(variant.bandwidth > 10_000, "bandwidth {}", variant.bandwidth);
    let codecs = variant.codecs.as_deref().expect("codecs");
    assert!(codecs.starts_with("avc1.64") && codecs.ends_with(",mp4a.40.2"), "{codecs}");
    assert_eq!(variant.resolution.map(|r| (r.width, r.height)), Some((640, 360)));
    assert_eq!(variant.frame_rate, Some(30.0));

    // A restart: a new StreamPackager resumes numbering from the stored replay.
    let stream = packager.open("pidav").await.expect("reopen");
    let mut feed = stream.start_publish().expect("publish 3");
    push_all(&mut feed, &tags[..tags.len() / 2]);
    feed.end();
    stream.finish(false).await.expect("finish without save");
    // Without an open StreamPackager the replay is finalised from the store (its journal).
    packager.finalize_replay("pidav").await.expect("finalize");
    let resumed = media_playlist(&get(&store, "streams/pidav/v0/replay.m3u8").await.expect("replay"));
    assert_eq!(resumed.playlist_type, Some(MediaPlaylistType::Vod));
    assert!(resumed.end_list);
    assert_eq!(resumed.segments[..n], replay.segments[..]);
    let third = &resumed.segments[n];
    assert!(third.discontinuity);
    assert_eq!(third.uri, format!("seg{n:06}.m4s"));
    assert_eq!(third.map.as_ref().map(|m| m.uri.as_str()), Some("init2.mp4"));
    assert_eq!(live_only_objects(&store, "pidav").await, Vec::<String>::new());
    packager.finalize_replay("nothing-here").await.expect("no replay is fine");
}

/// (stream index, DTS ms, PTS ms) of every packet of a file, as ffprobe reads them.
fn packets(path: &Path) -> Vec<(u32, i64, i64)> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "packet=stream_index,dts_time,pts_time", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(out.status.success(), "ffprobe failed: {}", String::from_utf8_lossy(&out.stderr));
    let ms = |s: &str| (s.parse::<f64>().expect("a time") * 1000.0).round() as i64;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            Some((f.first()?.parse().ok()?, ms(f.get(2)?), ms(f.get(1)?)))
        })
        .collect()
}

/// The entry count of each `stsd` box of a file (one per track), found by its name.
fn sample_descriptions(path: &Path) -> Vec<u32> {
    let data = std::fs::read(path).expect("read the file");
    let moov = data.windows(4).position(|w| w == b"moov").expect("a moov");
    let mdat = data.windows(4).position(|w| w == b"mdat").expect("an mdat");
    let index = &data[moov..mdat];
    let at = index.windows(4).enumerate().filter(|(_, w)| *w == b"stsd").map(|(i, _)| i);
    at.map(|i| u32::from_be_bytes(index[i + 8..i + 12].try_into().expect("4 bytes"))).collect()
}

/// The MD5 of every video frame ffmpeg shows, in order (its edit lists applied).
fn frame_hashes(path: &Path) -> Vec<String> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0:v", "-fps_mode", "passthrough", "-f", "framemd5", "-"])
        .output()
        .expect("ffmpeg runs");
    assert!(out.status.success(), "ffmpeg failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit(',').next())
        .map(|h| h.trim().to_owned())
        .collect()
}

/// The duration ffprobe reads from a file's header.
fn probe_duration(path: &Path) -> f64 {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    String::from_utf8_lossy(&out.stdout).trim().parse().expect("a duration")
}

/// Top-level box types of a file.
fn top_boxes(path: &Path) -> Vec<String> {
    boxes(&std::fs::read(path).expect("read the file"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_replay_exports_as_one_fast_start_mp4() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tags = read_flv(&ffmpeg_flv(dir.path(), "av.flv", true, 5));
    let store = Arc::new(LocalStore::new(dir.path().join("store")).expect("store"));
    let config = PackagerConfig { work_dir: dir.path().join("work"), ..ll_config() };
    let packager = Packager::new(store.clone(), config).expect("packager");
    let stream = packager.open("pidmp4").await.expect("open");
    // Two publishes, each starting its timestamps at 0 (an OBS reconnect).
    for _ in 0..2 {
        let mut feed = stream.start_publish().expect("publish");
        push_all(&mut feed, &tags);
        feed.end();
        stream.settle().await;
    }
    stream.finish(true).await.expect("finish");

    let (path, export) = packager.export_replay_mp4("pidmp4").await.expect("export");
    assert_eq!(path, "replay.mp4");
    assert!(export.complete);
    let file = dir.path().join("store/streams/pidmp4/replay.mp4");
    assert_eq!(std::fs::metadata(&file).expect("stored").len(), export.bytes);
    // Fast start: the index before the media.
    let top = top_boxes(&file);
    let (moov, mdat) = (top.iter().position(|b| b == "moov"), top.iter().position(|b| b == "mdat"));
    assert!(moov.is_some() && moov < mdat, "{top:?}");
    // One sample description a track: qtdemux's new caps at every fragment are not passed on
    // (each made mp4mux add a description, and it crashed on that churn now and then).
    assert_eq!(sample_descriptions(&file), [1, 1]);
    // Every frame of both publishes, one after the other, decode times strictly increasing.
    let packets = packets(&file);
    let source_video = tags.iter().filter(|t| t.kind == 9 && t.body.get(1) == Some(&1)).count();
    let video: Vec<_> = packets.iter().filter(|p| p.0 == 0).collect();
    assert_eq!(video.len(), 2 * source_video, "video frames");
    assert!(video.windows(2).all(|w| w[0].1 < w[1].1), "video DTS increase");
    let audio: Vec<_> = packets.iter().filter(|p| p.0 == 1).collect();
    assert!(audio.windows(2).all(|w| w[0].1 < w[1].1), "audio DTS increase");
    let duration = 2.0 * media_duration(&tags);
    assert!((export.duration_ms as f64 / 1000.0 - duration).abs() < 0.2, "{} ms vs {duration} s", export.duration_ms);
    let last_video = video.last().expect("video").1 as f64 / 1000.0;
    assert!((last_video - duration).abs() < 0.2, "last frame at {last_video} s of {duration} s");
    // The work folder is left empty; the next export replaces the file.
    assert_eq!(std::fs::read_dir(dir.path().join("work")).expect("work dir").count(), 0);
    assert!(packager.export_replay_mp4("nothing-here").await.is_err());

    // A clip's MP4 shows exactly the frames asked for, the reconnect included: the replay's
    // frames from the first at or after `from` to the last before `to` (30 fps, 2 s segments,
    // 5 s publishes; the cuts 10 ms before a frame so that a millisecond's rounding cannot
    // move them).
    let replay = media_playlist(&get(&store, "streams/pidmp4/v0/replay.m3u8").await.expect("replay"));
    let pdt = |i: usize| replay.segments[i].program_date_time.expect("program date-time").with_timezone(&chrono::Utc);
    let ms = chrono::Duration::milliseconds;
    let replay_frames = frame_hashes(&file);
    assert_eq!(replay_frames.len(), 2 * source_video);
    let within_publish = (pdt(0) + ms(1_490), pdt(1) + ms(1_490));
    // 4.49 s of publish 1 (its third segment) to 0.99 s of publish 2.
    let across_reconnect = (pdt(2) + ms(490), pdt(3) + ms(990));
    for (clip_id, span, frames) in [("within", within_publish, 45..105), ("across", across_reconnect, 135..180)] {
        let (path, clip) = packager.export_clip_mp4("pidmp4", clip_id, span).await.expect("clip export");
        let clip_file = dir.path().join("store/streams/pidmp4").join(&path);
        assert_eq!(frame_hashes(&clip_file), replay_frames[frames.clone()], "{clip_id}: frames {frames:?}");
        // The file's timeline also holds the gap between the publishes (publish 1's audio ends
        // after its video): at most a few frames.
        let expected_s = (frames.end - frames.start) as f64 / 30.0;
        let gap = if clip_id == "across" { 0.15 } else { 0.0 };
        let near = |s: f64| s > expected_s - 0.05 && s < expected_s + gap + 0.05;
        let probed = probe_duration(&clip_file);
        assert!(near(probed), "{clip_id}: {probed} s, {expected_s} s asked");
        assert!(near(clip.duration_ms as f64 / 1000.0), "{clip_id}: {clip:?}");
        let top = top_boxes(&clip_file);
        assert!(top.iter().position(|b| b == "moov") < top.iter().position(|b| b == "mdat"), "{top:?}");
    }

    // A muxer process that crashes part way fails that export, not this process, and leaves
    // nothing behind.
    let crashing = dir.path().join("crashing-muxer");
    std::fs::write(&crashing, "#!/bin/sh\nhead -c 100000 >/dev/null\nkill -SEGV $$\n").expect("script");
    std::fs::set_permissions(&crashing, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let config = PackagerConfig { work_dir: dir.path().join("work"), remux_program: Some(crashing), ..ll_config() };
    let crashing = Packager::new(store.clone(), config).expect("packager");
    let error = crashing.export_replay_mp4("pidmp4").await.expect_err("the muxer crashed").to_string();
    assert!(error.contains("SIGSEGV"), "{error}");
    assert_eq!(std::fs::read_dir(dir.path().join("work")).expect("work dir").count(), 0);
    assert_eq!(std::fs::metadata(&file).expect("still stored").len(), export.bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn video_only_with_fractional_target() {
    let dir = tempfile::tempdir().expect("tempdir");
    let flv = ffmpeg_flv(dir.path(), "v.flv", false, 5);
    let tags = read_flv(&flv);
    assert!(tags.iter().all(|t| t.kind == 9));
    let duration = media_duration(&tags);
    let store = Arc::new(LocalStore::new(dir.path().join("store")).expect("store"));
    let config = PackagerConfig {
        segment_duration: Duration::from_millis(1500),
        live_window: 6,
        poster_interval: Duration::ZERO,
        part_duration: None,
        ..PackagerConfig::default()
    };
    let packager = Packager::new(store.clone(), config).expect("packager");
    let stream = packager.open("pidv").await.expect("open");
    let mut feed = stream.start_publish().expect("publish");
    push_all(&mut feed, &tags);
    feed.end();
    stream.finish(true).await.expect("finish");

    let replay = media_playlist(&get(&store, "streams/pidv/v0/replay.m3u8").await.expect("replay"));
    assert!(replay.end_list);
    // 2 s GOPs and a 1.5 s target: cuts on the first keyframe after 1.5 s.
    let durations: Vec<f32> = replay.segments.iter().map(|s| s.duration).collect();
    assert!(durations[..durations.len() - 1].iter().all(|d| (d - 2.0).abs() < 0.05), "{durations:?}");
    assert_eq!(replay.target_duration, 2);
    let sum = extinf_sum(&replay);
    assert!((sum - duration).abs() < 0.1, "EXTINF sum {sum} vs media {duration}");
    check_segments(&store, dir.path(), "pidv", &replay, false).await;
    let master = get(&store, "streams/pidv/index.m3u8").await.expect("multivariant");
    let master = m3u8_rs::parse_master_playlist_res(&master).expect("parses");
    let codecs = master.variants[0].codecs.as_deref().expect("codecs");
    assert!(codecs.starts_with("avc1.") && !codecs.contains("mp4a"), "{codecs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_media_ends_the_publish_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(LocalStore::new(dir.path().join("store")).expect("store"));
    let packager = Packager::new(store.clone(), PackagerConfig::default()).expect("packager");
    let stream = packager.open("pidbad").await.expect("open");
    let mut feed = stream.start_publish().expect("publish");
    // An AVC configuration that is not an avcC record, then garbage frames.
    let mut closed = false;
    let _ = feed.video_config(Bytes::from_static(&[0xde, 0xad]));
    for i in 0..2000u32 {
        let nalus = Bytes::from(vec![0, 0, 0, 3, 0xff, 0xee, 0xdd]);
        match feed.video_frame(i * 33, 0, true, nalus) {
            Ok(()) => tokio::time::sleep(Duration::from_millis(1)).await,
            Err(PackagerError::Closed(_) | PackagerError::Media(_)) => {
                closed = true;
                break;
            }
            Err(other) => panic!("unexpected error {other}"),
        }
    }
    assert!(closed, "broken media must close the publish");
    drop(feed);
    // Another stream on the same packager is unaffected.
    let other = packager.open("pidok").await.expect("open other");
    let started = std::time::Instant::now();
    stream.finish(true).await.expect("finish after a failure");
    other.finish(true).await.expect("finish other");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(get(&store, "streams/pidbad/v0/replay.m3u8").await.is_none());
}

/// The value of `NAME=` in an attribute list (quotes removed).
fn attr<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let at = line.find(&format!("{name}="))? + name.len() + 1;
    let rest = &line[at..];
    match rest.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next(),
        None => rest.split(',').next(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ll_hls_parts_and_markers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let flv = ffmpeg_flv(dir.path(), "ll.flv", true, 7);
    let tags = read_flv(&flv);
    let store = Arc::new(LocalStore::new(dir.path().join("store")).expect("store"));
    let packager = Packager::new(store.clone(), ll_config()).expect("packager");
    let stream = packager.open("pidll").await.expect("open");
    let mut progress = stream.progress();
    let marker = |id: &str, start, end| DateRange {
        id: id.into(),
        class: "com.hawker.product".into(),
        start,
        end,
        attributes: vec![("X-PRODUCT-ID".into(), "p\"1".into())],
    };
    // Invalid attribute names are refused.
    let mut bad = marker("bad", chrono::Utc::now(), None);
    bad.attributes = vec![("product".into(), "x".into())];
    assert!(matches!(stream.add_marker(bad).await, Err(PackagerError::InvalidMarker(_))));

    let before = chrono::Utc::now();
    // Inserted before any segment: written with the first one, in segment 0's time.
    stream.add_marker(marker("early", before, None)).await.expect("marker");
    let mut feed = stream.start_publish().expect("publish");
    push_all(&mut feed, &tags);
    feed.end();
    // Media went in faster than real time: wait for the last segment.
    tokio::time::timeout(Duration::from_secs(20), progress.wait_for(|p| p.last_segment >= Some(3)))
        .await
        .expect("segments within 20 s")
        .expect("progress");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let p = *stream.progress().borrow();
    assert_eq!(p.part_target_ms, Some(200));
    let (part_msn, _) = p.last_part.expect("a part");
    assert_eq!(Some(part_msn), p.last_segment);

    let live_bytes = stream.live().playlist("v0", false).expect("live playlist in memory");
    let live_text = String::from_utf8(live_bytes.to_vec()).expect("utf-8");
    let live = media_playlist(&live_bytes);
    let replay_text = replay_so_far(&packager, "pidll").await;
    let replay = media_playlist(replay_text.as_bytes());
    assert!(live_text.contains("#EXT-X-VERSION:9\n"), "{live_text}");
    assert!(live_text.contains("#EXT-X-PART-INF:PART-TARGET=0.200\n"), "{live_text}");
    assert!(
        live_text.contains(
            "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.600,HOLD-BACK=6.000,CAN-SKIP-UNTIL=12.000\n"
        ),
        "{live_text}"
    );
    let hint = format!("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"seg{:06}.0.m4s\"\n", part_msn + 1);
    assert!(live_text.ends_with(&hint), "{live_text}");
    assert!(!replay_text.contains("EXT-X-PART"), "{replay_text}");

    // Parts: at most PART-TARGET long, the first INDEPENDENT, together the segment.
    let mut parts_by_msn: std::collections::BTreeMap<u64, Vec<(String, f64, bool)>> = Default::default();
    let mut msn = live.media_sequence;
    for line in live_text.lines() {
        if let Some(rest) = line.strip_prefix("#EXT-X-PART:") {
            let duration: f64 = attr(rest, "DURATION").unwrap().parse().unwrap();
            let uri = attr(rest, "URI").unwrap().to_owned();
            assert!(uri.starts_with(&format!("seg{msn:06}.")), "{uri} in segment {msn}");
            parts_by_msn.entry(msn).or_default().push((uri, duration, rest.contains("INDEPENDENT=YES")));
        } else if !line.starts_with('#') && !line.is_empty() {
            msn += 1;
        }
    }
    assert!(!parts_by_msn.is_empty(), "{live_text}");
    for (msn, parts) in &parts_by_msn {
        assert!(parts[0].2, "first part of {msn} is not INDEPENDENT");
        assert!(parts.len() >= 5, "segment {msn} has {} parts", parts.len());
        let mut joined = Vec::new();
        for (i, (uri, duration, _)) in parts.iter().enumerate() {
            assert!(*duration <= 0.2, "part {uri} lasts {duration} s:\n{live_text}");
            assert_eq!(uri, &format!("seg{msn:06}.{i}.m4s"));
            let bytes = stream.live().part("v0", *msn, i as u64).await.expect("part served");
            let kinds = boxes(&bytes);
            // A part is one chunk: moof + mdat; a segment's first (and, at the end of a
            // stream, its last, marked "lmsg") also carries a styp.
            let body = if kinds[0] == "styp" { &kinds[1..] } else { &kinds[..] };
            assert_eq!(body, ["moof", "mdat"], "{uri}");
            assert!(i > 0 || kinds[0] == "styp", "{uri}");
            joined.extend_from_slice(&bytes);
        }
        let segment = get(&store, &format!("streams/pidll/v0/seg{msn:06}.m4s")).await.expect("segment");
        assert!(segment.starts_with(&joined), "segment {msn} does not start with its parts");
        // Only the stream's last segment may go on after its parts: with the audio that
        // outlasts the video, whole boxes and not a part of their own.
        let rest = &segment[joined.len()..];
        let last = parts_by_msn.keys().next_back() == Some(msn);
        assert!(
            rest.is_empty() || (last && boxes(rest).ends_with(&["moof".to_owned(), "mdat".to_owned()])),
            "segment {msn} is not its parts: {} bytes after them",
            rest.len()
        );
    }
    let stored: Vec<String> =
        live_only_objects(&store, "pidll").await.into_iter().filter(|k| !k.contains("journal")).collect();
    assert!(stored.is_empty(), "parts are served from memory and the segments, never stored: {stored:?}");
    check_segments(&store, dir.path(), "pidll", &replay, true).await;

    // Markers: timed by wall clock against PDT. "early" starts in segment 0, which the live
    // window (2 segments) has left: only the replay keeps it.
    let first_pdt = replay.segments[0].program_date_time.unwrap().with_timezone(&chrono::Utc);
    let live_first_pdt = live.segments[0].program_date_time.unwrap().with_timezone(&chrono::Utc);
    assert!(before <= first_pdt + chrono::Duration::milliseconds(50), "{before} vs {first_pdt}");
    assert!(!live_text.contains("ID=\"early\""), "{live_text}");
    assert!(replay_text.contains("ID=\"early\""), "{replay_text}");
    let pinned = live_first_pdt + chrono::Duration::milliseconds(300);
    stream.add_marker(marker("pin", pinned, None)).await.expect("marker");
    let closed = pinned + chrono::Duration::milliseconds(1500);
    stream
        .add_marker(DateRange { end: Some(closed), attributes: vec![], ..marker("pin", pinned, None) })
        .await
        .expect("close");
    let live_text = String::from_utf8(stream.live().playlist("v0", false).unwrap().to_vec()).unwrap();
    for text in [live_text, replay_so_far(&packager, "pidll").await] {
        let lines: Vec<&str> = text.lines().filter(|l| l.contains("ID=\"pin\"")).collect();
        assert_eq!(lines.len(), 1, "{text}");
        let line = lines[0];
        let start = chrono::DateTime::parse_from_rfc3339(attr(line, "START-DATE").unwrap()).unwrap();
        let end = chrono::DateTime::parse_from_rfc3339(attr(line, "END-DATE").unwrap()).unwrap();
        assert_eq!(start, pinned.with_timezone(&start.timezone()));
        assert_eq!((end - start).num_milliseconds(), 1500);
        assert_eq!(attr(line, "DURATION"), Some("1.500"));
        assert_eq!(attr(line, "CLASS"), Some("com.hawker.product"));
        assert_eq!(attr(line, "X-PRODUCT-ID"), Some("p'1"), "{line}");
    }
    let parsed = media_playlist(&stream.live().playlist("v0", false).unwrap());
    assert!(parsed.segments.iter().any(|s| s.daterange.is_some()), "m3u8-rs reads the DATERANGE");

    stream.finish(true).await.expect("finish");
    assert!(stream.progress().borrow().ended);
    let vod = String::from_utf8(get(&store, "streams/pidll/v0/replay.m3u8").await.unwrap().to_vec()).unwrap();
    assert!(vod.contains("ID=\"early\"") && vod.contains("ID=\"pin\""), "{vod}");
    assert_eq!(live_only_objects(&store, "pidll").await, Vec::<String>::new());
    // Markers survive a restart: finalising from the store keeps them.
    packager.finalize_replay("pidll").await.expect("finalize");
    let vod = String::from_utf8(get(&store, "streams/pidll/v0/replay.m3u8").await.unwrap().to_vec()).unwrap();
    assert!(vod.contains("ID=\"early\"") && vod.contains("END-DATE="), "{vod}");
    assert!(matches!(stream.add_marker(marker("late", chrono::Utc::now(), None)).await, Err(PackagerError::Closed(_))));
}

/// The replay so far, while live: the stored journal as an EVENT playlist.
async fn replay_so_far(packager: &Packager, pid: &str) -> String {
    let bytes = packager.replay_playlist(pid, "v0").await.expect("read").expect("a replay so far");
    String::from_utf8(bytes.to_vec()).expect("utf-8")
}

/// Stored objects of a stream that only live viewers need: LL-HLS parts and the journal.
async fn live_only_objects(store: &LocalStore, pid: &str) -> Vec<String> {
    let keys = store.list(&format!("streams/{pid}/")).await.expect("list");
    let part = |name: &str| name.ends_with(".m4s") && name.matches('.').count() == 2;
    keys.into_iter().filter(|k| k.contains("journal") || part(k.rsplit('/').next().unwrap_or(""))).collect()
}

/// Width and height of the video in init + segment, by ffprobe.
fn probe_size(dir: &Path, init: &[u8], segment: &[u8]) -> (u32, u32) {
    let path = dir.join("size.mp4");
    std::fs::write(&path, [init, segment].concat()).expect("write probe file");
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height", "-of", "csv=p=0"])
        .arg(&path)
        .output()
        .expect("ffprobe runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let (w, h) = text.trim().split_once(',').expect("width,height");
    (w.parse().expect("width"), h.parse().expect("height"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abr_ladder_renditions_are_aligned() {
    let dir = tempfile::tempdir().expect("tempdir");
    let flv = ffmpeg_flv(dir.path(), "ladder.flv", true, 7);
    let tags = read_flv(&flv);
    let store = Arc::new(LocalStore::new(dir.path().join("store")).expect("store"));
    let rung =
        |name: &str, width, height, kbps| Rendition { name: name.into(), width, height, video_bitrate_kbps: kbps };
    let config = PackagerConfig {
        live_window: 10,
        poster_interval: Duration::ZERO,
        ladder: vec![rung("240p", 426, 240, 400), rung("180p", 320, 180, 200)],
        ..Default::default()
    };
    let packager = Packager::new(store.clone(), config).expect("packager");
    let stream = packager.open("pidabr").await.expect("open");
    let mut progress = stream.progress();
    let mut feed = stream.start_publish().expect("publish");
    push_all(&mut feed, &tags);
    feed.end();
    // 7 s of 2 s GOPs: segments 0 to 3, in every rendition, then the live playlists as the
    // last viewers saw them.
    tokio::time::timeout(Duration::from_secs(60), progress.wait_for(|p| p.last_segment == Some(3)))
        .await
        .expect("every rendition's last segment within 60 s")
        .expect("progress");
    let names = ["v0", "240p", "180p"];
    let live: Vec<String> =
        names.iter().map(|n| String::from_utf8(stream.live().playlist(n, false).unwrap().to_vec()).unwrap()).collect();
    stream.finish(true).await.expect("finish");

    let master =
        m3u8_rs::parse_master_playlist_res(&get(&store, "streams/pidabr/index.m3u8").await.expect("multivariant"))
            .expect("multivariant parses");
    let uris: Vec<&str> = master.variants.iter().map(|v| v.uri.as_str()).collect();
    assert_eq!(uris, ["v0/index.m3u8", "240p/index.m3u8", "180p/index.m3u8"]);
    let sizes: Vec<_> = master.variants.iter().map(|v| v.resolution.map(|r| (r.width, r.height))).collect();
    assert_eq!(sizes, [Some((640, 360)), Some((426, 240)), Some((320, 180))]);
    for v in &master.variants {
        assert!(v.codecs.as_deref().is_some_and(|c| c.starts_with("avc1.") && c.ends_with(",mp4a.40.2")), "{v:?}");
        assert_eq!(v.frame_rate, Some(30.0), "{v:?}");
        assert!(v.bandwidth > 100_000, "{v:?}");
    }
    assert!(master.variants[1].bandwidth < master.variants[0].bandwidth);

    let mut replays = Vec::new();
    for name in names {
        let replay = media_playlist(&get(&store, &format!("streams/pidabr/{name}/replay.m3u8")).await.expect("replay"));
        assert_eq!(replay.playlist_type, Some(MediaPlaylistType::Vod), "{name}");
        assert!(replay.end_list);
        check_rendition(&store, dir.path(), &format!("pidabr/{name}"), &replay, true).await;
        replays.push(replay);
    }
    // Aligned: as many segments, the same durations (within a frame) and PDTs.
    let source = &replays[0];
    assert!(source.segments.len() >= 3);
    for (name, replay) in names.iter().zip(&replays).skip(1) {
        assert_eq!(replay.segments.len(), source.segments.len(), "{name}");
        assert_eq!(replay.target_duration, source.target_duration, "{name}");
        for (a, b) in source.segments.iter().zip(&replay.segments) {
            assert_eq!(a.uri, b.uri, "{name}");
            assert!(
                (a.duration - b.duration).abs() <= 1.0 / 30.0,
                "{name} {}: {} vs {}",
                a.uri,
                a.duration,
                b.duration
            );
            assert_eq!(a.program_date_time, b.program_date_time, "{name} {}", a.uri);
        }
        let init = get(&store, &format!("streams/pidabr/{name}/init0.mp4")).await.expect("init");
        let seg = get(&store, &format!("streams/pidabr/{name}/seg000001.m4s")).await.expect("segment");
        let want = if *name == "240p" { (426, 240) } else { (320, 180) };
        assert_eq!(probe_size(dir.path(), &init, &seg), want, "{name}");
    }
    // Each live playlist reports the others' last segment and part.
    for (i, (name, text)) in names.iter().zip(&live).enumerate() {
        for (j, other) in names.iter().enumerate().filter(|(j, _)| *j != i) {
            let last = replays[j].segments.len() - 1;
            let report = format!("#EXT-X-RENDITION-REPORT:URI=\"../{other}/index.m3u8\",LAST-MSN={last},LAST-PART=");
            assert!(text.contains(&report), "{name} lacks {report}:\n{text}");
        }
        assert!(!text.contains(&format!("../{name}/")), "{name} reports itself:\n{text}");
    }

    // A restart: every rendition resumes its numbering, still aligned; without an open
    // StreamPackager each rendition's replay is finalised from the store.
    let n = source.segments.len();
    let stream = packager.open("pidabr").await.expect("reopen");
    let mut feed = stream.start_publish().expect("publish 2");
    push_all(&mut feed, &tags[..tags.len() / 2]);
    feed.end();
    stream.finish(false).await.expect("finish without save");
    packager.finalize_replay("pidabr").await.expect("finalize");
    let mut counts = Vec::new();
    for name in names {
        let replay = media_playlist(&get(&store, &format!("streams/pidabr/{name}/replay.m3u8")).await.expect("replay"));
        assert_eq!(replay.playlist_type, Some(MediaPlaylistType::Vod), "{name}");
        let resumed = &replay.segments[n];
        assert!(resumed.discontinuity, "{name}");
        assert_eq!(resumed.uri, format!("seg{n:06}.m4s"), "{name}");
        assert_eq!(resumed.map.as_ref().map(|m| m.uri.as_str()), Some("init1.mp4"), "{name}");
        counts.push(replay.segments.len());
    }
    assert!(counts.iter().all(|c| *c == counts[0] && *c > n), "{counts:?}");
}

/// A long stream's replay: a journal of 150-segment chunks, of which only the newest is
/// rewritten per segment (flat cost however long the stream runs), read back whole on resume
/// and replaced by one VOD playlist when saved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replay_journal_rolls_over_in_chunks() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A keyframe every 3 frames and 0.1 s segments: 200 segments from 20 s of video.
    let flv = dir.path().join("short-gops.flv");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=160x90:rate=30", "-t", "20"])
        .args(["-c:v", "libx264", "-g", "3", "-bf", "0", "-pix_fmt", "yuv420p", "-f", "flv"])
        .arg(&flv)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success());
    let tags = read_flv(&flv);
    let store = Arc::new(LocalStore::new(dir.path().join("store")).expect("store"));
    let config = PackagerConfig {
        segment_duration: Duration::from_millis(100),
        poster_interval: Duration::ZERO,
        part_duration: None,
        ..PackagerConfig::default()
    };
    let packager = Packager::new(store.clone(), config).expect("packager");
    let stream = packager.open("pidlong").await.expect("open");
    let mut progress = stream.progress();
    let mut feed = stream.start_publish().expect("publish");
    push_all(&mut feed, &tags);
    feed.end();
    tokio::time::timeout(Duration::from_secs(60), progress.wait_for(|p| p.last_segment >= Some(198)))
        .await
        .expect("200 segments within 60 s")
        .expect("progress");
    let chunk = |k: usize| dir.path().join(format!("store/streams/pidlong/v0/journal{k:05}.m3u8"));
    let first = std::fs::read_to_string(chunk(0)).expect("first chunk");
    assert_eq!(media_playlist(first.as_bytes()).segments.len(), 150, "a full chunk");
    let sealed_at = std::fs::metadata(chunk(0)).unwrap().modified().unwrap();
    let second = media_playlist(&std::fs::read(chunk(1)).expect("second chunk"));
    assert_eq!(second.segments[0].uri, "seg000150.m4s");
    stream.finish(false).await.expect("finish");
    assert_eq!(std::fs::metadata(chunk(0)).unwrap().modified().unwrap(), sealed_at, "a full chunk is not rewritten");

    // A restart resumes from the journal, numbering on.
    let so_far = media_playlist(&packager.replay_playlist("pidlong", "v0").await.unwrap().expect("replay so far"));
    let n = so_far.segments.len();
    assert!(n >= 199, "{n} segments");
    let stream = packager.open("pidlong").await.expect("reopen");
    let mut feed = stream.start_publish().expect("publish 2");
    push_all(&mut feed, &tags[..tags.len() / 10]);
    feed.end();
    stream.finish(true).await.expect("save");
    let vod = media_playlist(&get(&store, "streams/pidlong/v0/replay.m3u8").await.expect("replay"));
    assert_eq!(vod.playlist_type, Some(MediaPlaylistType::Vod));
    assert!(vod.segments.len() > n);
    assert_eq!(vod.segments[n].uri, format!("seg{n:06}.m4s"));
    assert!(vod.segments[n].discontinuity);
    assert_eq!(vod.segments[..n], so_far.segments[..]);
    assert_eq!(live_only_objects(&store, "pidlong").await, Vec::<String>::new());
}
