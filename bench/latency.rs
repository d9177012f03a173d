//! LL-HLS figures (issue 4), printed, not asserted:
//! - publish → part available, a lower bound of glass-to-glass latency: ffmpeg publishes in
//!   real time; a client follows the live playlist with blocking reloads (`_HLS_msn`,
//!   `_HLS_part` of the preload hint) and, as each part appears, compares the wall clock with
//!   the part's end in PROGRAM-DATE-TIME terms (PDT is anchored at the wall clock of the
//!   publish's first frame, so the difference is the time from a part's last frame reaching
//!   hawker, in real time, to the part being fetchable). Median and p90.
//! - server CPU seconds per media second, passthrough, LL-HLS on vs off.
//!
//! Run: `cargo bench --bench latency` (drives the release binary on loopback);
//! `-- --gop N` publishes a keyframe every N frames instead of 60 (70: 2.33 s, so segments
//! end at keyframes off the 200 ms part grid).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::hls::low_latency;
use common::*;

const SECONDS: u32 = 40;

fn percentile(mut values: Vec<f64>, p: f64) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[((values.len() - 1) as f64 * p).round() as usize]
}

/// Each part's end as PDT: (uri, end).
fn part_ends(text: &str) -> Vec<(String, DateTime<Utc>)> {
    let mut out = Vec::new();
    let mut at: Option<DateTime<Utc>> = None;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
            at = Some(DateTime::parse_from_rfc3339(v).unwrap().with_timezone(&Utc));
        } else if let Some(rest) = line.strip_prefix("#EXT-X-PART:") {
            let d: f64 = common::hls::attr(rest, "DURATION").unwrap().parse().unwrap();
            let end = at.unwrap() + chrono::Duration::microseconds((d * 1e6) as i64);
            out.push((common::hls::attr(rest, "URI").unwrap().to_owned(), end));
            at = Some(end);
        }
    }
    out
}

async fn run(ll: bool, gop: u32) -> (Vec<f64>, f64) {
    let server = Server::start_with(&["--ll-hls", if ll { "true" } else { "false" }, "--poster-interval", "0"]);
    let seller = server.user("seller", "seller");
    let created = server.create_stream(&seller, "bench").await;
    let (id, pid, key) = (
        created["id"].as_str().unwrap(),
        created["playback_id"].as_str().unwrap(),
        created["stream_key"].as_str().unwrap(),
    );
    let cpu_before = cpu_seconds(server.pid());
    let mut ffmpeg = ffmpeg_publish_gop(&format!("{}/{key}", server.rtmp), SECONDS, gop);
    server.wait_for_status(id, "live", Duration::from_secs(10)).await;
    let media = format!("/hls/{pid}/v0/index.m3u8");
    let mut lags = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let started = Instant::now();
    let mut text = String::new();
    while ffmpeg.try_wait().unwrap().is_none() && started.elapsed() < Duration::from_secs(u64::from(SECONDS) + 10) {
        let url = match low_latency(&text).preload_hint {
            Some(hint) if ll => {
                let (msn, i) = hint.trim_start_matches("seg").trim_end_matches(".m4s").split_once('.').unwrap();
                format!("{media}?_HLS_msn={}&_HLS_part={}", msn.parse::<u64>().unwrap(), i)
            }
            _ => media.clone(),
        };
        let (status, body) = server.get_text(&url).await;
        let now = Utc::now();
        if status != 200 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        if ll {
            // Only the newest part is timed: older ones were available before this request.
            if let Some((uri, end)) = part_ends(&body).pop()
                && seen.insert(uri)
                && !text.is_empty()
            {
                lags.push((now - end).num_microseconds().unwrap() as f64 / 1e6);
            }
        }
        text = body;
        if !ll {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let _ = ffmpeg.wait().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cpu = cpu_seconds(server.pid()) - cpu_before;
    (lags, cpu / f64::from(SECONDS))
}

#[tokio::main]
async fn main() {
    let gop: u32 = arg("--gop").unwrap_or(60);
    let (lags, cpu_ll) = run(true, gop).await;
    let (_, cpu_plain) = run(false, gop).await;
    println!(
        "LL-HLS, 200 ms part target, ffmpeg -re 640x360 30 fps ({:.2} s GOP, B-frames) + AAC, {SECONDS} s",
        f64::from(gop) / 30.0
    );
    println!(
        "publish -> part available (part end in PDT terms -> blocking reload answered): median {:.3} s, p90 {:.3} s, max {:.3} s, min {:.3} s, n = {}",
        percentile(lags.clone(), 0.5),
        percentile(lags.clone(), 0.9),
        percentile(lags.clone(), 1.0),
        percentile(lags.clone(), 0.0),
        lags.len()
    );
    println!(
        "server CPU per media second (whole process, 1 stream, 1 LL client): LL-HLS on {cpu_ll:.4} s/s, off {cpu_plain:.4} s/s"
    );
}
