//! ABR ladder cost (issue 4), printed, not asserted: server CPU seconds per media second for
//! one 720p30 stream with the ladder off, with a 480p rung, and with 480p + 360p rungs, and
//! the difference each rung makes.
//!
//! The input, `bench/out/ladder720.flv` (30 s of testsrc2 + noise at 720p30, 3 Mb/s, 2 s GOP,
//! x264 veryfast with its B-frames, AAC), is made once and reused. Each configuration runs a
//! fresh release server (posters off), sets the ladder through `PATCH /api/v1/settings` as an
//! admin, publishes the file in real time (`ffmpeg -re -c copy`), and counts the server's
//! user + system time (`/proc/PID/stat`, all threads) from just before the publish until its
//! last segments are stored (2 s after the publisher left).
//!
//! Run: `cargo bench --bench ladder` (drives the release binary on loopback; about 2 minutes).

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const SECONDS: u32 = 30;

/// The 720p input, made on first use.
fn input() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/out/ladder720.flv");
    bench_input(&path, SECONDS);
    path
}

/// One configuration: (CPU-s per media second, the multivariant playlist's RESOLUTIONs).
async fn run(input: &Path, ladder: Value) -> (f64, Vec<String>) {
    let server = Server::start_with(&["--poster-interval", "0"]);
    let admin = server.user("admin", "admin");
    let seller = server.user("seller", "seller");
    let (status, body) =
        server.call("PATCH", "/api/v1/settings", Some(&admin), Some(json!({ "ladder": ladder }))).await;
    assert_eq!(status, 200, "{body}");
    let created = server.create_stream(&seller, "bench").await;
    let (id, pid, key) = (
        created["id"].as_str().unwrap(),
        created["playback_id"].as_str().unwrap(),
        created["stream_key"].as_str().unwrap(),
    );
    let cpu_before = cpu_seconds(server.pid());
    let ffmpeg = tokio::process::Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-re", "-i"])
        .arg(input)
        .args(["-c", "copy", "-f", "flv", &format!("{}/{key}", server.rtmp)])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start ffmpeg");
    let output = ffmpeg.wait_with_output().await.unwrap();
    assert!(output.status.success(), "ffmpeg: {}", String::from_utf8_lossy(&output.stderr));
    // The publisher is gone; the pipeline drains its last, partial segments within a moment
    // (an idle server adds next to nothing).
    server.wait_for_status(id, "reconnecting", Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cpu = cpu_seconds(server.pid()) - cpu_before;

    let (status, text) = server.get_text(&format!("/hls/{pid}/index.m3u8")).await;
    assert_eq!(status, 200, "{text}");
    let variants = parse_multivariant(&text).variants;
    let expected = 1 + ladder.as_array().map_or(0, Vec::len);
    assert_eq!(variants.len(), expected, "the ladder did not run:\n{text}\n{}", server.log());
    let sizes = variants.iter().map(|v| v.resolution.map_or("?".into(), |r| format!("{}x{}", r.width, r.height)));
    (cpu / f64::from(SECONDS), sizes.collect())
}

#[tokio::main]
async fn main() {
    let input = input();
    let r480 = json!({"name": "480p", "width": 854, "height": 480, "video_bitrate_kbps": 1200});
    let r360 = json!({"name": "360p", "width": 640, "height": 360, "video_bitrate_kbps": 700});
    let configs = [("off", json!([])), ("480p", json!([r480])), ("480p + 360p", json!([r480, r360]))];
    let mut results = Vec::new();
    for (label, ladder) in configs {
        let started = Instant::now();
        let (cpu, sizes) = run(&input, ladder).await;
        eprintln!("{label}: {cpu:.3} CPU-s/s ({:.0} s)", started.elapsed().as_secs_f64());
        results.push((label, cpu, sizes));
    }
    println!(
        "ABR ladder cost: {SECONDS} s of 720p30 3 Mb/s H.264 (2 s GOP, B-frames) + AAC, ffmpeg -re -c copy, \
         release build, posters off"
    );
    println!("{:<14} {:>18}  renditions", "ladder", "server CPU-s / s");
    for (label, cpu, sizes) in &results {
        println!("{label:<14} {cpu:>18.3}  {}", sizes.join(", "));
    }
    let (off, one, two) = (results[0].1, results[1].1, results[2].1);
    println!("per rendition (CPU-s per media second): 480p {:.3}, 360p {:.3}", one - off, two - one);
}
