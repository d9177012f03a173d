//! Glass-to-glass latency with LL-HLS as a viewer sees it (issue 4), printed, not asserted:
//! ffmpeg publishes in real time; headless Chromium (Debian's, driven by playwright-core)
//! plays the stream with the watch page's player (hls.js in low-latency mode and the page's
//! catch-up); every 250 ms the bench compares the wall clock with the program date-time of the
//! frame on screen (`hls.playingDate`). PDT is anchored at the wall clock of the publish's first
//! frame reaching hawker, so the figure is "frame reaches the ingest → frame displayed"; a
//! real camera adds its encoder's delay (OBS with x264 zerolatency: about one frame).
//!
//! Run: `cargo bench --bench glass` (release binary, loopback; needs `make web` and chromium).

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::*;

const SECONDS: u32 = 75;

#[tokio::main]
async fn main() {
    let server = Server::start_with(&["--poster-interval", "0"]);
    let seller = server.user("seller", "seller");
    let created = server.create_stream(&seller, "glass").await;
    let (id, pid, key) = (
        created["id"].as_str().unwrap(),
        created["playback_id"].as_str().unwrap(),
        created["stream_key"].as_str().unwrap(),
    );
    let mut ffmpeg = ffmpeg_publish(&format!("{}/{key}", server.rtmp), SECONDS);
    server.wait_for_status(id, "live", Duration::from_secs(10)).await;
    server.wait_for_segments(pid, 2, Duration::from_secs(20)).await;

    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = tokio::process::Command::new("node")
        .arg(root.join("bench/glass.mjs"))
        .env("HAWKER_URL", &server.http)
        .env("PLAYBACK_URL", server.url(&format!("/hls/{pid}/index.m3u8")))
        .env("WEB_DIR", root.join("api/web"))
        .env("SAMPLE_SECONDS", "45")
        .output()
        .await
        .expect("run node bench/glass.mjs");
    let _ = ffmpeg.kill().await;
    print!("{}", String::from_utf8_lossy(&out.stdout));
    assert!(out.status.success(), "glass.mjs failed: {}", String::from_utf8_lossy(&out.stderr));
}
