//! Posters: an FLV made by ffmpeg goes through `PublishFeed`; `poster.jpg` is a JPEG of a
//! keyframe: the first, then on request at most one per interval, and the last one kept after
//! the stream finishes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use hawker_packager::{Packager, PackagerConfig};
use hawker_storage::{LocalStore, Store};

mod common;
use common::*;

fn ffmpeg_flv(dir: &Path, seconds: u32, pix_fmt: &str) -> PathBuf {
    let out = dir.join(format!("in-{pix_fmt}.flv"));
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=sample_rate=48000", "-c:a", "aac"])
        .args(["-t", &seconds.to_string(), "-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-bf", "2"])
        .args(["-pix_fmt", pix_fmt, "-f", "flv"])
        .arg(&out)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success(), "ffmpeg failed");
    out
}

/// `codec_name,width,height` of the image.
fn probe_image(dir: &Path, jpeg: &[u8]) -> String {
    let file = dir.join("poster.jpg");
    std::fs::write(&file, jpeg).unwrap();
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "stream=codec_name,width,height", "-of", "csv=p=0"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_poster_is_made_from_keyframes_and_outlives_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let tags = read_flv(&ffmpeg_flv(dir.path(), 4, "yuv420p"));
    let store = Arc::new(LocalStore::new(dir.path().join("media")).unwrap());
    let config = PackagerConfig { poster_interval: Duration::from_millis(300), ..Default::default() };
    let packager = Packager::new(store.clone(), config).unwrap();
    let stream = packager.open("pid").await.unwrap();
    let mut feed = stream.start_publish().unwrap();
    let mut posters = Vec::new();
    // Four keyframes (one a second of media), fed 400 ms apart: the first is made into a
    // poster without anyone asking; each later one when a poster is asked for, the poster
    // made before being older than the interval.
    let mut keyframes = 0;
    for tag in tags {
        if tag.is_keyframe() {
            keyframes += 1;
            if keyframes == 2 {
                tokio::time::sleep(Duration::from_millis(400)).await;
                let first = store.get("streams/pid/poster.jpg").await.unwrap().expect("a poster of the first keyframe");
                posters.push(first.bytes);
            }
            if keyframes > 2 {
                tokio::time::sleep(Duration::from_millis(400)).await;
                let asked = stream.poster().await.expect("a poster");
                // Asked again at once: the same picture, not a new encode.
                assert_eq!(stream.poster().await.expect("a poster"), asked);
                assert_eq!(store.get("streams/pid/poster.jpg").await.unwrap().expect("stored").bytes, asked);
                posters.push(asked);
            }
        }
        push(&mut feed, &tag).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    feed.end();
    stream.finish(true).await.unwrap();
    let last = store.get("streams/pid/poster.jpg").await.unwrap().expect("a poster");
    assert_eq!(last.meta.content_type, "image/jpeg");
    assert_eq!(probe_image(dir.path(), &last.bytes), "mjpeg,640,360");
    posters.push(last.bytes);
    posters.dedup();
    // testsrc2 moves: keyframes a second apart make different pictures.
    assert!(posters.len() >= 3, "{} distinct posters", posters.len());
}

/// Sources other than 8-bit 4:2:0 (High 4:2:2, High 10) are converted for the poster.
#[tokio::test(flavor = "multi_thread")]
async fn a_poster_is_made_of_a_4_2_2_or_10_bit_source() {
    let dir = tempfile::tempdir().unwrap();
    for pix_fmt in ["yuv422p", "yuv420p10le"] {
        let tags = read_flv(&ffmpeg_flv(dir.path(), 1, pix_fmt));
        let store = Arc::new(LocalStore::new(dir.path().join(pix_fmt)).unwrap());
        let packager = Packager::new(store.clone(), PackagerConfig::default()).unwrap();
        let stream = packager.open("pid").await.unwrap();
        let mut feed = stream.start_publish().unwrap();
        push_all(&mut feed, &tags);
        feed.end();
        stream.finish(true).await.unwrap();
        let poster =
            store.get("streams/pid/poster.jpg").await.unwrap().unwrap_or_else(|| panic!("{pix_fmt}: a poster"));
        assert_eq!(probe_image(dir.path(), &poster.bytes), "mjpeg,640,360", "{pix_fmt}");
    }
}

/// This process's user+system CPU seconds.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    let hz = clk_tck();
    ticks / hz
}

fn clk_tck() -> f64 {
    let out = Command::new("getconf").arg("CLK_TCK").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// The CPU a poster costs: one 60 s 720p stream (30 keyframes) packaged without posters, then
/// with a poster of every keyframe. `cargo test -p hawker-packager --test poster -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement, not a check"]
async fn poster_cpu_cost() {
    let dir = tempfile::tempdir().unwrap();
    let flv = dir.path().join("in720.flv");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30,noise=alls=12:allf=t"])
        .args(["-f", "lavfi", "-i", "sine=sample_rate=48000", "-c:a", "aac", "-t", "60"])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-b:v",
            "3M",
            "-g",
            "60",
            "-keyint_min",
            "60",
            "-sc_threshold",
            "0",
        ])
        .args(["-pix_fmt", "yuv420p", "-f", "flv"])
        .arg(&flv)
        .status()
        .unwrap();
    assert!(status.success());
    let tags = read_flv(&flv);
    let keyframes = tags.iter().filter(|t| t.is_keyframe()).count();
    for (label, interval) in [("without posters", Duration::ZERO), ("a poster per keyframe", Duration::from_millis(1))]
    {
        let store = Arc::new(LocalStore::new(dir.path().join(label.replace(' ', "-"))).unwrap());
        let config = PackagerConfig { poster_interval: interval, ..Default::default() };
        let packager = Packager::new(store.clone(), config).unwrap();
        let stream = packager.open("pid").await.unwrap();
        let mut feed = stream.start_publish().unwrap();
        let before = cpu_seconds();
        for tag in &tags {
            if tag.is_keyframe() {
                // Room for the previous poster to finish, then one asked for.
                tokio::time::sleep(Duration::from_millis(150)).await;
                let _ = stream.poster().await;
            }
            push(&mut feed, tag).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        feed.end();
        stream.finish(true).await.unwrap();
        let cpu = cpu_seconds() - before;
        eprintln!("{label}: {cpu:.2} CPU-s for {keyframes} keyframes of 720p");
    }
}
