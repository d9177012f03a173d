//! Exact A/V timing: every frame hawker stores has the PTS and DTS the publisher sent (after one
//! offset for the whole publish), for video and audio. ffprobe reads the source FLV and the
//! stored init + segments of each publish; the packet lists are compared frame by frame.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

/// The largest difference allowed between a source timestamp and a stored one.
const TOLERANCE: f64 = 0.001;
const SECONDS: &str = "6";

/// A source made by ffmpeg: libx264 (keyframe every 2 s) and AAC.
struct Source {
    name: &'static str,
    b_frames: &'static str,
    sample_rate: &'static str,
    /// How much later than the other track this one starts, if it does.
    video_offset: Option<&'static str>,
    audio_offset: Option<&'static str>,
}

const SOURCES: &[Source] = &[
    // B-frames; AAC's priming puts the first audio frame before the first picture.
    Source { name: "bframes", b_frames: "2", sample_rate: "48000", video_offset: None, audio_offset: None },
    Source { name: "no-bframes", b_frames: "0", sample_rate: "48000", video_offset: None, audio_offset: None },
    Source { name: "audio-first", b_frames: "2", sample_rate: "48000", video_offset: Some("0.5"), audio_offset: None },
    Source { name: "video-first", b_frames: "2", sample_rate: "48000", video_offset: None, audio_offset: Some("0.5") },
    Source { name: "44k1", b_frames: "2", sample_rate: "44100", video_offset: None, audio_offset: None },
];

fn make_source(dir: &Path, source: &Source) -> PathBuf {
    let out = dir.join(format!("{}.flv", source.name));
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "error", "-y"]);
    if let Some(offset) = source.video_offset {
        cmd.args(["-itsoffset", offset]);
    }
    cmd.args(["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30"]);
    if let Some(offset) = source.audio_offset {
        cmd.args(["-itsoffset", offset]);
    }
    cmd.args(["-f", "lavfi", "-i", &format!("sine=frequency=440:sample_rate={}", source.sample_rate)]);
    cmd.args(["-t", SECONDS, "-c:v", "libx264", "-preset", "veryfast", "-g", "60", "-pix_fmt", "yuv420p"]);
    cmd.args(["-bf", source.b_frames, "-c:a", "aac", "-ar", source.sample_rate, "-f", "flv"]).arg(&out);
    let status = cmd.status().expect("ffmpeg runs");
    assert!(status.success(), "making source {} failed", source.name);
    out
}

/// One packet: presentation and decode time, seconds.
#[derive(Debug, Clone, Copy)]
struct Packet {
    pts: f64,
    dts: f64,
}

/// The packets of the file's first video (`v`) or audio (`a`) stream, in file order.
fn packets(file: &Path, kind: &str) -> Vec<Packet> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", &format!("{kind}:0")])
        .args(["-show_entries", "packet=pts_time,dts_time", "-of", "csv=p=0"])
        .arg(file)
        .output()
        .expect("ffprobe runs");
    assert!(out.status.success(), "ffprobe: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let (pts, dts) = line.trim().trim_end_matches(',').split_once(',')?;
            Some(Packet { pts: pts.parse().ok()?, dts: dts.parse().ok()? })
        })
        .collect()
}

/// Checks that `stored` is a run of `source`'s packets, each shifted by `offset`, within the
/// tolerance; returns how many source packets precede the run.
fn assert_same_timing(what: &str, source: &[Packet], stored: &[Packet], offset: f64) -> usize {
    assert!(!stored.is_empty(), "{what}: nothing stored");
    let first = stored[0];
    let start = source
        .iter()
        .position(|p| (p.pts + offset - first.pts).abs() <= TOLERANCE)
        .unwrap_or_else(|| panic!("{what}: the first stored packet {first:?} is no source packet (offset {offset})"));
    assert!(start + stored.len() <= source.len(), "{what}: more packets stored than sent");
    for (i, (out, src)) in stored.iter().zip(&source[start..]).enumerate() {
        let (dpts, ddts) = (out.pts - (src.pts + offset), out.dts - (src.dts + offset));
        assert!(
            dpts.abs() <= TOLERANCE && ddts.abs() <= TOLERANCE,
            "{what}: packet {i} differs by {:.1} ms (PTS) / {:.1} ms (DTS): stored {out:?}, source {src:?} + {offset}",
            dpts * 1000.0,
            ddts * 1000.0
        );
    }
    start
}

/// The stored init + segments of each publish in the replay playlist, one file per publish.
async fn stored_publishes(server: &Server, pid: &str, dir: &Path) -> Vec<PathBuf> {
    let (status, text) = server.get_text(&format!("/hls/{pid}/v0/index.m3u8")).await;
    assert_eq!(status, 200);
    let playlist = parse_media(&text);
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for segment in &playlist.segments {
        if let Some(map) = &segment.map
            && files.last().is_none_or(|(uri, _)| *uri != map.uri)
        {
            let init = server.get(&format!("/hls/{pid}/v0/{}", map.uri)).await.bytes().await.unwrap();
            files.push((map.uri.clone(), init.to_vec()));
        }
        let bytes = server.get(&format!("/hls/{pid}/v0/{}", segment.uri)).await.bytes().await.unwrap();
        files.last_mut().expect("a map before the first segment").1.extend_from_slice(&bytes);
    }
    files
        .into_iter()
        .enumerate()
        .map(|(i, (_, bytes))| {
            let path = dir.join(format!("{pid}-{i}.mp4"));
            std::fs::write(&path, bytes).unwrap();
            path
        })
        .collect()
}

/// Compares one publish's stored media with its source; returns a one-line summary.
fn compare(name: &str, source: &Path, stored: &Path) -> String {
    let (src_video, out_video) = (packets(source, "v"), packets(stored, "v"));
    let (src_audio, out_audio) = (packets(source, "a"), packets(stored, "a"));
    // The stored video starts at the source's first keyframe (its first frame, here).
    let offset = out_video[0].pts - src_video[0].pts;
    let skipped = assert_same_timing(&format!("{name} video"), &src_video, &out_video, offset);
    assert_eq!((skipped, out_video.len()), (0, src_video.len()), "{name}: every video frame is stored");
    let first_audio = assert_same_timing(&format!("{name} audio"), &src_audio, &out_audio, offset);
    // Audio from the video's start on is all there (earlier audio has no picture to go with).
    let video_start = src_video.iter().map(|p| p.pts).fold(f64::MAX, f64::min);
    let expected_first = src_audio.iter().position(|p| p.pts + 0.05 >= video_start).unwrap_or(0);
    assert!(first_audio <= expected_first, "{name}: audio from {first_audio}, video starts at audio {expected_first}");
    assert!(out_audio.len() + first_audio + 3 >= src_audio.len(), "{name}: audio at the end is missing");
    format!(
        "{name}: {} video and {} audio frames match (offset {offset:.3} s, first audio frame {first_audio})",
        out_video.len(),
        out_audio.len()
    )
}

fn publish_file(url: &str, file: &Path) -> tokio::process::Child {
    tokio::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-re", "-i"])
        .arg(file)
        .args(["-c", "copy", "-f", "flv", url])
        .kill_on_drop(true)
        .spawn()
        .expect("start ffmpeg")
}

#[tokio::test(flavor = "multi_thread")]
async fn stored_frames_keep_the_sources_timestamps() {
    let tempdir = tempfile::tempdir().unwrap();
    let dir = tempdir.path();
    let sources: Vec<PathBuf> = SOURCES.iter().map(|s| make_source(dir, s)).collect();
    let server = Server::start_with(&[]);
    let seller = server.user("seller", "seller");
    let mut streams = Vec::new();
    for source in SOURCES {
        let created = server.create_stream(&seller, source.name).await;
        let field = |name: &str| created[name].as_str().unwrap().to_owned();
        streams.push((field("id"), field("playback_id"), field("stream_key")));
    }
    // Every source at once, in real time.
    let publishers: Vec<_> = streams
        .iter()
        .zip(&sources)
        .map(|((_, _, key), file)| publish_file(&format!("{}/{key}", server.rtmp), file))
        .collect();
    for mut publisher in publishers {
        assert!(publisher.wait().await.unwrap().success(), "ffmpeg publish failed");
    }
    // OBS's reconnect: the first stream's publisher comes back, its timestamps restart at 0.
    let (first_id, _, first_key) = &streams[0];
    server.wait_for_status(first_id, "reconnecting", Duration::from_secs(10)).await;
    let mut again = publish_file(&format!("{}/{first_key}", server.rtmp), &sources[0]);
    assert!(again.wait().await.unwrap().success(), "ffmpeg republish failed");

    for ((id, pid, _), (source, path)) in streams.iter().zip(SOURCES.iter().zip(&sources)) {
        server.wait_for_status(id, "reconnecting", Duration::from_secs(10)).await;
        let (status, body) = server
            .call(
                "POST",
                &format!("/api/v1/streams/{id}/end"),
                Some(&seller),
                Some(serde_json::json!({"action": "save"})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let publishes = stored_publishes(&server, pid, dir).await;
        let expected = if source.name == SOURCES[0].name { 2 } else { 1 };
        assert_eq!(publishes.len(), expected, "{}: one init per publish", source.name);
        for (i, stored) in publishes.iter().enumerate() {
            eprintln!("{}", compare(&format!("{} publish {i}", source.name), path, stored));
        }
    }
}
