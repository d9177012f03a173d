//! LL-HLS viewers one hawker node serves (issue 11's figures): real HTTP traffic against one
//! live stream, as hls.js makes it in low-latency mode.
//!
//! hawker runs with its defaults (LL-HLS on, 200 ms parts, posters on); ffmpeg publishes the
//! 720p30 3 Mb/s input of bench/slice.sh in real time, looped. Each viewer holds one HTTP/1.1
//! connection and loops: a blocking playlist reload for the part its last playlist hinted
//! (`_HLS_msn`, `_HLS_part`), then that part. Viewers are added in steps; each step is measured
//! over a window after a warm-up:
//! - blocking-reload wait (request sent → whole playlist received): median and p99;
//! - part fetch: p99;
//! - at the live edge: the share of reloads whose playlist's newest part was the one asked for
//!   (a viewer behind gets a newer playlist at once);
//! - server CPU-s per viewer-minute: the server's CPU over the window, less what the stream
//!   costs with no viewer, per viewer and minute; the load generator's own CPU beside it.
//!
//! A step keeps up when the p99 wait is at most the part target + 50 ms, at least 99 % of the
//! reloads are at the live edge, and no request failed. Run: `cargo bench --bench viewers`
//! (`-- --steps 250,500,1000,2000 --window 20`).

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const PART_TARGET_MS: f64 = 200.0;
const WARM_UP: Duration = Duration::from_secs(5);
/// What Chromium sends with hls.js's requests: playlists come back compressed, as a browser
/// gets them.
const ACCEPT_ENCODING: &str = "gzip, deflate, br, zstd";

/// What the viewers saw during a measurement window.
#[derive(Default)]
struct Samples {
    reload_ms: Vec<f64>,
    part_ms: Vec<f64>,
    at_edge: u64,
    behind: u64,
    errors: u64,
}

struct Shared {
    recording: AtomicBool,
    samples: Mutex<Samples>,
}

/// (MSN, part) of the last part URI after `tag` in the playlist.
fn last_part(playlist: &[u8], tag: &str) -> Option<(u64, u64)> {
    let text = std::str::from_utf8(playlist).ok()?;
    let at = text.rfind(tag)?;
    let rest = &text[at..];
    let (_, uri) = rest.split_once("URI=\"seg")?;
    let (name, _) = uri.split_once(".m4s")?;
    let (msn, part) = name.split_once('.')?;
    Some((msn.parse().ok()?, part.parse().ok()?))
}

/// (MSN, part) of the playlist's preload hint: the part to wait for next.
fn preload_hint(playlist: &[u8]) -> Option<(u64, u64)> {
    last_part(playlist, "#EXT-X-PRELOAD-HINT:")
}

/// (MSN, part) of the newest part the playlist lists.
fn newest_part(playlist: &[u8]) -> Option<(u64, u64)> {
    last_part(playlist, "#EXT-X-PART:")
}

async fn send(
    sender: &mut SendRequest<Empty<Bytes>>,
    host: &str,
    path: &str,
) -> Result<hyper::Response<hyper::body::Incoming>, String> {
    let request = hyper::Request::get(path)
        .header("host", host)
        .header("accept-encoding", ACCEPT_ENCODING)
        .body(Empty::new())
        .map_err(|e| e.to_string())?;
    sender.ready().await.map_err(|e| e.to_string())?;
    sender.send_request(request).await.map_err(|e| e.to_string())
}

/// A playlist, decoded.
async fn get(sender: &mut SendRequest<Empty<Bytes>>, host: &str, path: &str) -> Result<(u16, Bytes), String> {
    let response = send(sender, host, path).await?;
    let status = response.status().as_u16();
    let encoding = response.headers().get("content-encoding").cloned();
    let body = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
    let mut decoded = Vec::new();
    match encoding.as_ref().map(|v| v.as_bytes()) {
        None => return Ok((status, body)),
        Some(b"br") => brotli::BrotliDecompress(&mut &body[..], &mut decoded).map_err(|e| e.to_string())?,
        Some(b"gzip") => {
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut decoded)
                .map_err(|e| e.to_string())?;
        }
        Some(other) => return Err(format!("unexpected content-encoding {}", String::from_utf8_lossy(other))),
    }
    Ok((status, decoded.into()))
}

/// A part: its status and length. Its bytes are counted as they come, not gathered: a player
/// hands them to its decoder, and the load generator shares the server's cores.
async fn fetch(sender: &mut SendRequest<Empty<Bytes>>, host: &str, path: &str) -> Result<(u16, usize), String> {
    let mut body = send(sender, host, path).await?;
    let status = body.status().as_u16();
    let mut length = 0;
    while let Some(frame) = body.body_mut().frame().await {
        length += frame.map_err(|e| e.to_string())?.data_ref().map_or(0, Bytes::len);
    }
    Ok((status, length))
}

/// One viewer on its own connection, until `stop`.
async fn viewer(addr: String, pid: String, shared: Arc<Shared>, stop: Arc<AtomicBool>) {
    let Ok(stream) = tokio::net::TcpStream::connect(&addr).await else {
        shared.samples.lock().unwrap().errors += 1;
        return;
    };
    let _ = stream.set_nodelay(true);
    let Ok((mut sender, connection)) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await
    else {
        shared.samples.lock().unwrap().errors += 1;
        return;
    };
    tokio::spawn(connection);
    let playlist = format!("/hls/{pid}/v0/index.m3u8");
    let mut hint = None;
    while !stop.load(Ordering::Relaxed) {
        let Some((msn, part)) = hint else {
            hint = match get(&mut sender, &addr, &playlist).await {
                Ok((200, body)) => preload_hint(&body),
                _ => {
                    // A viewer turned away counts: it is not served.
                    shared.samples.lock().unwrap().errors += u64::from(shared.recording.load(Ordering::Relaxed));
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    None
                }
            };
            continue;
        };
        let started = Instant::now();
        let reload = get(&mut sender, &addr, &format!("{playlist}?_HLS_msn={msn}&_HLS_part={part}")).await;
        let reload_ms = started.elapsed().as_secs_f64() * 1000.0;
        let (next, newest) = match &reload {
            Ok((200, body)) => (preload_hint(body), newest_part(body)),
            _ => (None, None),
        };
        // The part asked for, or, when its segment ended before it, the next segment's first.
        let Some((m, p)) = newest else {
            shared.samples.lock().unwrap().errors += u64::from(shared.recording.load(Ordering::Relaxed));
            hint = None;
            continue;
        };
        let started = Instant::now();
        let fetched = fetch(&mut sender, &addr, &format!("/hls/{pid}/v0/seg{m:06}.{p}.m4s")).await;
        let part_ms = started.elapsed().as_secs_f64() * 1000.0;
        if shared.recording.load(Ordering::Relaxed) {
            let mut s = shared.samples.lock().unwrap();
            match &fetched {
                Ok((200, length)) if *length > 0 => {
                    s.reload_ms.push(reload_ms);
                    s.part_ms.push(part_ms);
                    // At the edge: the newest part is the one asked for (or the first of the
                    // next segment); a viewer behind gets a playlist already past it.
                    let edge = (m, p) == (msn, part) || (m == msn + 1 && p == 0);
                    if edge { s.at_edge += 1 } else { s.behind += 1 }
                }
                _ => s.errors += 1,
            }
        }
        hint = next;
        if hint.is_none() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    values[((values.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let steps: Vec<usize> = arg::<String>("--steps")
        .unwrap_or_else(|| "250,500,1000,2000".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let window = Duration::from_secs(arg("--window").unwrap_or(20));
    let input = Path::new(ROOT).join("bench/out/test720.flv");
    bench_input(&input, 60);

    // Every viewer connects from 127.0.0.1: raise the per-address connection cap (256).
    let server = Server::start_with(&["--http-max-connections", "50000", "--http-max-connections-per-ip", "50000"]);
    let seller = server.user("seller", "seller");
    let created = server.create_stream(&seller, "viewers").await;
    let (id, pid, key) = (
        created["id"].as_str().unwrap().to_owned(),
        created["playback_id"].as_str().unwrap().to_owned(),
        created["stream_key"].as_str().unwrap().to_owned(),
    );
    let mut publisher = tokio::process::Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i"])
        .arg(&input)
        .args(["-c", "copy", "-f", "flv", &format!("{}/{key}", server.rtmp)])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start ffmpeg");
    server.wait_for_status(&id, "live", Duration::from_secs(10)).await;
    server.wait_for_segments(&pid, 2, Duration::from_secs(20)).await;

    // What the stream costs with nobody watching.
    let (me, hawker) = (std::process::id(), server.pid());
    let before = cpu_seconds(hawker);
    tokio::time::sleep(window).await;
    let idle_rate = (cpu_seconds(hawker) - before) / window.as_secs_f64();

    let addr = server.http.trim_start_matches("http://").to_owned();
    let shared = Arc::new(Shared { recording: AtomicBool::new(false), samples: Mutex::new(Samples::default()) });
    let stop = Arc::new(AtomicBool::new(false));
    let mut running = 0;
    let mut best = 0;
    println!(
        "one 720p30 3 Mb/s live stream, LL-HLS 200 ms parts; viewers: blocking reload for the hinted part, then the part"
    );
    println!("server CPU with no viewer: {idle_rate:.4} CPU-s per second");
    println!(
        "{:>8} {:>10} {:>10} {:>10} {:>9} {:>7} {:>16} {:>14} {:>9}",
        "viewers",
        "wait p50",
        "wait p99",
        "part p99",
        "at edge",
        "errors",
        "CPU-s/viewer-min",
        "server cores",
        "loadgen"
    );
    for target in steps {
        while running < target {
            tokio::spawn(viewer(addr.clone(), pid.clone(), shared.clone(), stop.clone()));
            running += 1;
        }
        tokio::time::sleep(WARM_UP).await;
        *shared.samples.lock().unwrap() = Samples::default();
        let (server_before, me_before, started) = (cpu_seconds(hawker), cpu_seconds(me), Instant::now());
        shared.recording.store(true, Ordering::Relaxed);
        tokio::time::sleep(window).await;
        shared.recording.store(false, Ordering::Relaxed);
        let seconds = started.elapsed().as_secs_f64();
        let server_cpu = cpu_seconds(hawker) - server_before;
        let loadgen_cpu = cpu_seconds(me) - me_before;
        let mut s = std::mem::take(&mut *shared.samples.lock().unwrap());
        let per_viewer_minute = (server_cpu - idle_rate * seconds) / (running as f64 * seconds / 60.0);
        let reloads = s.at_edge + s.behind;
        let at_edge = if reloads > 0 { s.at_edge as f64 / reloads as f64 } else { 0.0 };
        let (p50, p99) = (percentile(&mut s.reload_ms, 0.5), percentile(&mut s.reload_ms, 0.99));
        let part_p99 = percentile(&mut s.part_ms, 0.99);
        println!(
            "{running:>8} {p50:>8.0}ms {p99:>8.0}ms {part_p99:>8.0}ms {:>8.1}% {:>7} {per_viewer_minute:>16.4} {:>14.2} {:>8.2}c",
            at_edge * 100.0,
            s.errors,
            server_cpu / seconds,
            loadgen_cpu / seconds
        );
        if p99 <= PART_TARGET_MS + 50.0 && at_edge >= 0.99 && s.errors == 0 && reloads > 0 {
            best = running;
        } else {
            break;
        }
    }
    println!(
        "most viewers kept at the live edge (p99 wait <= {} ms, >= 99 % at the edge): {best}",
        PART_TARGET_MS + 50.0
    );
    stop.store(true, Ordering::Relaxed);
    let _ = publisher.kill().await;
}
