//! Replay MP4 export (issue 14): remux time and peak memory for a long replay, printed, not
//! asserted.
//!
//! The replay is generated: the 60 s 720p30 bench input (3 Mb/s H.264 with B-frames, 2 s GOP,
//! AAC; `bench/out/export720.flv`, made once) is packaged `--minutes` times in a row as one
//! publish (its timestamps shifted by 60 s each time) into a local store, through the
//! packager's own `PublishFeed`, and saved. The export then runs in a child process of its
//! own, as the server's does: it reads the segments and feeds them to the muxer, which runs in
//! a child of its own (`hawker remux-mp4`). It prints its resident memory before the export
//! and its peak after (`VmHWM`: the reading side, not the packaging), and the muxer process'
//! peak (`ru_maxrss` of its children).
//! Before that, a 30 s and a 10 min clip of the middle of the replay are made and timed
//! (request to playable: the packager reads the stored replay and stores the clip's playlist).
//!
//! Run: `cargo bench --bench export -- --minutes 60` (about 3 minutes here, most of it
//! packaging; the input takes another minute the first time).

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../packager/tests/common/mod.rs"]
mod flv;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hawker_packager::{Packager, PackagerConfig};
use hawker_storage::LocalStore;

const PID: &str = "benchexport";

/// A line of `/proc/self/status` in MB.
fn status_mb(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

fn config(dir: &Path) -> PackagerConfig {
    PackagerConfig {
        poster_interval: Duration::ZERO,
        work_dir: dir.join("work"),
        remux_program: Some(common::hawker_bin().into()),
        ..PackagerConfig::default()
    }
}

/// The largest peak resident memory of this process' waited-for children, MB.
fn children_peak_mb() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    usage.ru_maxrss as f64 / 1024.0
}

/// The child: exports the replay stored under `dir` and prints its figures.
async fn export(dir: PathBuf) {
    let store = Arc::new(LocalStore::new(dir.join("store")).expect("store"));
    let packager = Packager::new(store, config(&dir)).expect("packager");
    let before = status_mb("VmRSS:");
    let started = Instant::now();
    let (_, export) = packager.export_replay_mp4(PID).await.expect("export");
    let took = started.elapsed().as_secs_f64();
    println!(
        "export: {:.1} s for {:.1} min of media ({:.0}x real time), MP4 {:.1} MB, complete: {}",
        took,
        export.duration_ms as f64 / 60_000.0,
        export.duration_ms as f64 / 1000.0 / took,
        export.bytes as f64 / 1e6,
        export.complete
    );
    println!(
        "memory: reader {before:.1} MB resident before the export, peak {:.1} MB; muxer process peak {:.1} MB",
        status_mb("VmHWM:"),
        children_peak_mb()
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if let Some(dir) = common::arg::<String>("--export-dir") {
        return export(PathBuf::from(dir)).await;
    }
    let minutes: u32 = common::arg("--minutes").unwrap_or(60);
    let input = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/out/export720.flv");
    common::bench_input(&input, 60);
    let tags = flv::read_flv(&input);
    let span_ms = 60_000;

    let dir = tempfile::tempdir_in(Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/out")).expect("tempdir");
    let store = Arc::new(LocalStore::new(dir.path().join("store")).expect("store"));
    let packager = Packager::new(store, config(dir.path())).expect("packager");
    let stream = packager.open(PID).await.expect("open");
    let mut feed = stream.start_publish().expect("publish");
    let mut progress = stream.progress();
    let started = Instant::now();
    let wall = chrono::Utc::now();
    let mut keyframes = 0u64;
    for minute in 0..minutes {
        for tag in &tags {
            // Configurations once; media shifted to follow on.
            if minute > 0 && tag.body.get(1) == Some(&0) {
                continue;
            }
            // At most a few segments in flight: the feed refuses a publisher far ahead.
            if tag.is_keyframe() {
                keyframes += 1;
                if keyframes > 3 {
                    let _ = progress.wait_for(|p| p.last_segment.is_some_and(|s| s + 3 >= keyframes)).await;
                }
            }
            let timestamp_ms = tag.timestamp_ms + minute * span_ms;
            flv::push(&mut feed, &flv::Tag { kind: tag.kind, timestamp_ms, body: tag.body.clone() }).expect("push");
        }
    }
    feed.end();
    stream.finish(true).await.expect("finish");
    let stored: u64 = walk(&dir.path().join("store"));
    println!(
        "replay: {minutes} min packaged in {:.0} s, {:.1} MB stored",
        started.elapsed().as_secs_f64(),
        stored as f64 / 1e6
    );
    // Clips from the middle of the replay: request to playable (its playlist stored).
    for seconds in [30, 600] {
        let from = wall + chrono::Duration::seconds(i64::from(minutes) * 30);
        let span = (from, from + chrono::Duration::seconds(seconds));
        let made = Instant::now();
        let clip = packager.make_clip(PID, &format!("c{seconds}"), span).await.expect("clip");
        println!(
            "clip of {seconds} s: playable after {:.1} ms ({} segments)",
            made.elapsed().as_secs_f64() * 1000.0,
            clip.segments
        );
    }
    let status = std::process::Command::new(std::env::current_exe().expect("this bench"))
        .arg("--export-dir")
        .arg(dir.path())
        .status()
        .expect("run the export");
    assert!(status.success(), "the export failed");
}

fn walk(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.file_type() {
                    Ok(t) if t.is_dir() => walk(&e.path()),
                    _ => e.metadata().map_or(0, |m| m.len()),
                })
                .sum()
        })
        .unwrap_or(0)
}
