//! Storage figures (issue 5), printed, not asserted, against s3s-fs on loopback:
//! - upload time per segment (the PUT) and time from segment close to readable in the
//!   bucket (put into the store → upload done), median and p99;
//! - spool size and drain time after a 60 s outage of the bucket mid-stream;
//! - hawker's CPU per stream in S3 mode vs local mode.
//!
//! Run: `cargo bench --bench storage` (needs s3s-fs: `make s3s-fs`). About 4 minutes.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::s3::S3Server;
use common::*;

fn percentile(values: &[f64], p: f64) -> f64 {
    let mut values = values.to_vec();
    values.sort_by(|a, b| a.total_cmp(b));
    values[((values.len() - 1) as f64 * p).round() as usize]
}

fn spool(server: &Server) -> (usize, u64) {
    let dir = server.data_dir.path().join("spool");
    let mut n = 0;
    let mut bytes = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_name().to_string_lossy().ends_with(".obj") {
            n += 1;
            bytes += entry.metadata().map_or(0, |m| m.len());
        }
    }
    (n, bytes)
}

/// A stream publishing for `seconds`, once it is live; returns its ids and the publisher.
async fn go_live(server: &Server, seconds: u32) -> (String, String, tokio::process::Child) {
    let seller = server.user("seller", "seller");
    let created = server.create_stream(&seller, "bench").await;
    let (id, pid, key) = (
        created["id"].as_str().unwrap(),
        created["playback_id"].as_str().unwrap(),
        created["stream_key"].as_str().unwrap(),
    );
    let ffmpeg = ffmpeg_publish(&format!("{}/{key}", server.rtmp), seconds);
    server.wait_for_status(id, "live", Duration::from_secs(10)).await;
    (id.to_owned(), pid.to_owned(), ffmpeg)
}

/// hawker's CPU share of one core while one stream runs for 30 s (after a 6 s warm-up).
async fn cpu_per_stream(server: &Server) -> f64 {
    let (_, _, mut ffmpeg) = go_live(server, 40).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (cpu0, t0) = (cpu_seconds(server.pid()), Instant::now());
    tokio::time::sleep(Duration::from_secs(30)).await;
    let share = (cpu_seconds(server.pid()) - cpu0) / t0.elapsed().as_secs_f64();
    let _ = ffmpeg.wait().await;
    share
}

/// (upload ms, readable ms) of every upload of whole segments (`segNNNNNN.m4s`, `parts`
/// false) or of LL-HLS parts (`segNNNNNN.I.m4s`), from a log with `hawker_storage=debug`.
fn upload_times(log: &str, parts: bool) -> (Vec<f64>, Vec<f64>) {
    fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
        let start = line.find(&format!(" {name}="))? + name.len() + 2;
        line[start..].split_whitespace().next()
    }
    let (mut upload, mut readable) = (Vec::new(), Vec::new());
    for line in log.lines().filter(|l| l.contains(" uploaded")) {
        let Some(key) = field(line, "key") else { continue };
        let name = key.trim_matches('"').rsplit('/').next().unwrap_or("");
        if !name.ends_with(".m4s") || (name.matches('.').count() == 2) != parts {
            continue;
        }
        let ms = |name| field(line, name).and_then(|v| v.parse::<f64>().ok());
        if let (Some(u), Some(r)) = (ms("upload_ms"), ms("readable_ms")) {
            upload.push(u);
            readable.push(r);
        }
    }
    (upload, readable)
}

fn main() {
    // SAFETY: set before any thread starts; the harness passes it to hawker as RUST_LOG.
    unsafe { std::env::set_var("HAWKER_TEST_LOG", "info,hawker_storage=debug") };
    tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(run());
}

async fn run() {
    println!("storage benchmark: one 640x360 800 kb/s + 96 kb/s stream (ffmpeg), 2 s segments, s3s-fs on loopback");

    let local = Server::start_with(&[]);
    let local_cpu = cpu_per_stream(&local).await;
    drop(local);

    let s3 = S3Server::start();
    let config = s3.config_file("serve");
    let server = Server::start_with(&["--config", config.to_str().unwrap()]);
    let s3_cpu = cpu_per_stream(&server).await;
    let log = server.log();
    drop(server);
    for (what, parts) in [("segment", false), ("LL-HLS part", true)] {
        let (upload, readable) = upload_times(&log, parts);
        if upload.is_empty() {
            continue;
        }
        println!("{what} uploads: {}", upload.len());
        println!(
            "  upload time (the PUT):                median {:6.1} ms   p99 {:6.1} ms",
            percentile(&upload, 0.5),
            percentile(&upload, 0.99)
        );
        println!(
            "  put by the packager -> readable in the bucket: median {:6.1} ms   p99 {:6.1} ms",
            percentile(&readable, 0.5),
            percentile(&readable, 0.99)
        );
    }
    println!(
        "hawker CPU per stream: local {:.1} % of a core, S3 {:.1} % of a core ({:+.1} points)",
        local_cpu * 100.0,
        s3_cpu * 100.0,
        (s3_cpu - local_cpu) * 100.0
    );
    drop(s3);

    // A 60 s outage of the bucket in the middle of a stream.
    let mut s3 = S3Server::start();
    let config = s3.config_file("serve");
    let server = Server::start_with(&["--config", config.to_str().unwrap()]);
    let (_, _, mut ffmpeg) = go_live(&server, 90).await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    s3.stop();
    let mut peak = (0, 0);
    let down = Instant::now();
    while down.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = spool(&server);
        if now.1 > peak.1 {
            peak = now;
        }
    }
    s3.restart();
    let back = Instant::now();
    while spool(&server).0 > 0 {
        assert!(back.elapsed() < Duration::from_secs(120), "the spool did not drain");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let drain = back.elapsed();
    let _ = ffmpeg.wait().await;
    println!(
        "60 s outage: spool peaked at {} objects, {:.1} MB; drained in {:.2} s after the bucket came back",
        peak.0,
        peak.1 as f64 / 1e6,
        drain.as_secs_f64()
    );
}
