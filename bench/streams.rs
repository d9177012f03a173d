//! What live streams cost the server, N at once, hawker against nginx-rtmp (issue 11's figures).
//!
//! Each round publishes N copies of one 720p30 3 Mb/s H.264 + AAC input in real time
//! (`ffmpeg -re -i … -c copy -f flv rtmp://…`, N processes on this machine) to one server, then
//! the same to the next server, on the same input in the same run:
//! - hawker with its defaults (LL-HLS on, posters every 10 s);
//! - hawker lean (`--ll-hls false --poster-interval 0`);
//! - nginx with Debian's RTMP module (`live on; hls on; hls_fragment 2s`), one worker.
//!
//! Printed per round: server CPU-s per stream (user + system time of the server's processes,
//! their CPU-time clocks, from just before the publishers start until 3 s after the last one
//! ends), memory above the idle server per stream (peak RSS sampled every 250 ms, less the RSS
//! before publishing), publishers that finished on time (within the media's length + 3 s: a
//! server that cannot keep up slows them through TCP back-pressure) and the least media any
//! stream's stored playlist holds. Then,
//! per server, the memory each added stream costs: the steady RSS (median over the publish's
//! second half) at the most streams less that at the fewest, over the difference in streams;
//! one-time costs (libraries loaded on first use, the idle server) fall out of it.
//!
//! Run: `cargo bench --bench streams` (1, 8 and 32 streams of 60 s), or with arguments after
//! `--`: `cargo bench --bench streams -- --streams 4,16 --seconds 30`, and
//! `-- --servers defaults,lean,nginx` to run only some servers, `-- --versus PATH [--runs 3]`
//! to run this build and another hawker binary (or `nginx`: nginx-rtmp) at the same time (an
//! A/B on a noisy machine),
//! `-- --rounds 3` to repeat each round (interleaved across servers) and show the median, and
//! `-- --capacity [--streams 16,32,…]` to find the most streams each server keeps up with
//! (30 s rounds, growing N until one falls behind).
//! Needs ffmpeg, nginx-light and libnginx-mod-rtmp (`make bench-deps`). `HAWKER_BIN=path`
//! measures another hawker binary (e.g. an earlier commit's) in place of this build's.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// After the last publisher ends, time for the last segments to be written.
const SETTLE: Duration = Duration::from_secs(3);
/// A publisher on time ends within the media's length plus this.
const ON_TIME_SLACK: f64 = 3.0;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    HawkerDefaults,
    HawkerLean,
    Nginx,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::HawkerDefaults => "hawker (defaults: LL-HLS, posters)",
            Kind::HawkerLean => "hawker (LL-HLS off, no posters)",
            Kind::Nginx => "nginx-rtmp",
        }
    }

    /// The name `--servers` takes.
    fn name(self) -> &'static str {
        match self {
            Kind::HawkerDefaults => "defaults",
            Kind::HawkerLean => "lean",
            Kind::Nginx => "nginx",
        }
    }
}

/// The 60 s 720p30 3 Mb/s input of bench/slice.sh, made once.
fn input() -> PathBuf {
    let input = Path::new(ROOT).join("bench/out/test720.flv");
    bench_input(&input, 60);
    input
}

/// Resident set of a process now, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// A server under test: its processes, and how to publish to and read back stream `i`.
enum Target {
    Hawker { server: Server, streams: Vec<(String, String, String)>, seller: String },
    Nginx { child: std::process::Child, pids: Vec<u32>, port: u16, dir: tempfile::TempDir },
}

impl Target {
    async fn start(kind: Kind, n: usize, bin: &str) -> Self {
        match kind {
            Kind::HawkerDefaults | Kind::HawkerLean => {
                // Every publisher comes from 127.0.0.1: raise the per-address cap (a binary from
                // before the cap was a setting, run through HAWKER_BIN, has a fixed cap of 20).
                let settable = Command::new(bin).args(["serve", "--help"]).output().expect("hawker runs");
                let cap: &[&str] =
                    match String::from_utf8_lossy(&settable.stdout).contains("--rtmp-max-connections-per-ip") {
                        true => &["--rtmp-max-connections-per-ip", "10000", "--rtmp-max-connections", "10000"],
                        false => &[],
                    };
                let lean = ["--ll-hls", "false", "--poster-interval", "0"];
                let extra: Vec<&str> = match kind {
                    Kind::HawkerLean => cap.iter().chain(&lean).copied().collect(),
                    _ => cap.to_vec(),
                };
                let server = Server::start_bin(bin, tempfile::tempdir().expect("tempdir"), &extra);
                let seller = server.user("seller", "seller");
                let mut streams = Vec::new();
                for i in 0..n {
                    let created = server.create_stream(&seller, &format!("bench {i}")).await;
                    let field = |name: &str| created[name].as_str().unwrap().to_owned();
                    streams.push((field("id"), field("playback_id"), field("stream_key")));
                }
                Target::Hawker { server, streams, seller }
            }
            Kind::Nginx => start_nginx(),
        }
    }

    fn pids(&self) -> Vec<u32> {
        match self {
            Target::Hawker { server, .. } => vec![server.pid()],
            Target::Nginx { pids, .. } => pids.clone(),
        }
    }

    fn url(&self, i: usize) -> String {
        match self {
            Target::Hawker { server, streams, .. } => format!("{}/{}", server.rtmp, streams[i].2),
            Target::Nginx { port, .. } => format!("rtmp://127.0.0.1:{port}/live/s{i}"),
        }
    }

    /// Seconds of media each stream's stored playlist lists, after the publishers left.
    async fn packaged(&self) -> Vec<f64> {
        let mut out = Vec::new();
        match self {
            Target::Hawker { server, streams, seller } => {
                for (id, pid, _) in streams {
                    let path = format!("/api/v1/streams/{id}/end");
                    let (status, _) =
                        server.call("POST", &path, Some(seller), Some(serde_json::json!({"action": "save"}))).await;
                    let (code, text) = server.get_text(&format!("/hls/{pid}/v0/index.m3u8")).await;
                    out.push(if status == 200 && code == 200 { total_duration(&parse_media(&text)) } else { 0.0 });
                }
            }
            Target::Nginx { dir, .. } => {
                let mut i = 0;
                while let Ok(text) = std::fs::read_to_string(dir.path().join(format!("hls/s{i}.m3u8"))) {
                    out.push(total_duration(&parse_media(&text)));
                    i += 1;
                }
            }
        }
        out
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Target::Nginx { child, .. } = self {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn start_nginx() -> Target {
    let module = ["/usr/lib/nginx/modules/ngx_rtmp_module.so"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("ngx_rtmp_module.so: make bench-deps installs libnginx-mod-rtmp");
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("hls")).unwrap();
    std::fs::create_dir_all(dir.path().join("logs")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    // As root the workers would drop to nobody and could not write into the temp dir.
    let user = if running_as_root() { "user root root;" } else { "" };
    let d = dir.path().display();
    let conf = format!(
        "load_module {module};\n{user}\ndaemon off;\nmaster_process on;\nworker_processes 1;\npid {d}/nginx.pid;\n\
         error_log {d}/logs/error.log warn;\nevents {{ worker_connections 4096; }}\n\
         rtmp {{ server {{ listen 127.0.0.1:{port}; chunk_size 4096;\n\
         application live {{ live on; record off; hls on; hls_path {d}/hls; hls_fragment 2s; hls_playlist_length 120s; }} }} }}\n"
    );
    std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
    let nginx = ["/usr/sbin/nginx", "nginx"].into_iter().find(|p| Path::new(p).exists()).unwrap_or("nginx");
    let child = Command::new(nginx)
        .arg("-c")
        .arg(dir.path().join("nginx.conf"))
        .arg("-p")
        .arg(dir.path())
        .arg("-e")
        .arg(dir.path().join("logs/error.log"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nginx (make bench-deps)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nginx did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    let master = child.id();
    let workers = Command::new("pgrep").arg("-P").arg(master.to_string()).output().expect("pgrep");
    let mut pids = vec![master];
    pids.extend(String::from_utf8_lossy(&workers.stdout).lines().filter_map(|l| l.trim().parse::<u32>().ok()));
    assert!(pids.len() > 1, "no nginx worker");
    Target::Nginx { child, pids, port, dir }
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Uid:")).map(|v| v.split_whitespace().next() == Some("0")))
        .unwrap_or(false)
}

struct Round {
    kind: Kind,
    streams: usize,
    cpu_per_stream: f64,
    mb_per_stream: f64,
    /// Median RSS over the second half of the publish, MB: the server in steady state, after
    /// one-time costs (libraries loaded on first use, the first posters).
    steady_mb: f64,
    on_time: usize,
    least_packaged: f64,
}

/// One round: `n` publishers of `seconds` of the input to a fresh server of `kind`.
async fn round(kind: Kind, n: usize, seconds: u32, input: &Path) -> Round {
    round_of(&hawker_bin(), kind, n, seconds, input).await
}

/// A round of binary `bin`.
async fn round_of(bin: &str, kind: Kind, n: usize, seconds: u32, input: &Path) -> Round {
    let target = Target::start(kind, n, bin).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pids = target.pids();
    let idle_rss: u64 = pids.iter().map(|&p| rss(p)).sum();
    let cpu_before: f64 = pids.iter().map(|&p| cpu_seconds(p)).sum();
    let started = Instant::now();
    let publishers: Vec<_> = (0..n)
        .map(|i| {
            tokio::process::Command::new("ffmpeg")
                .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-re", "-t", &seconds.to_string(), "-i"])
                .arg(input)
                .args(["-c", "copy", "-f", "flv", &target.url(i)])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .expect("start ffmpeg")
        })
        .collect();
    let sampler_pids = pids.clone();
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let half = Duration::from_secs(u64::from(seconds) / 2);
    let end = Duration::from_secs(u64::from(seconds));
    let sampler = tokio::spawn(async move {
        let (mut peak, mut steady) = (0u64, Vec::new());
        loop {
            let now: u64 = sampler_pids.iter().map(|&p| rss(p)).sum();
            peak = peak.max(now);
            if (half..end).contains(&started.elapsed()) {
                steady.push(now);
            }
            tokio::select! {
                _ = &mut stop_rx => return (peak, steady),
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
        }
    });
    let mut on_time = 0;
    for mut publisher in publishers {
        let _ = publisher.wait().await;
        // Publishers end in the order they started, within a few ms of each other.
        on_time += usize::from(started.elapsed().as_secs_f64() <= f64::from(seconds) + ON_TIME_SLACK);
    }
    tokio::time::sleep(SETTLE).await;
    let cpu: f64 = pids.iter().map(|&p| cpu_seconds(p)).sum::<f64>() - cpu_before;
    let _ = stop_tx.send(());
    let (peak, mut steady) = sampler.await.unwrap();
    steady.sort_unstable();
    let steady_mb = steady.get(steady.len() / 2).map_or(f64::NAN, |&b| b as f64 / (1024.0 * 1024.0));
    let packaged = target.packaged().await;
    let least_packaged = if packaged.len() == n { packaged.iter().copied().fold(f64::MAX, f64::min) } else { 0.0 };
    Round {
        kind,
        streams: n,
        cpu_per_stream: cpu / n as f64,
        mb_per_stream: peak.saturating_sub(idle_rss) as f64 / n as f64 / (1024.0 * 1024.0),
        steady_mb,
        on_time,
        least_packaged,
    }
}

fn kept_up(r: &Round, seconds: u32) -> bool {
    r.on_time == r.streams && r.least_packaged >= f64::from(seconds) - 3.0
}

/// `--versus PATH`: this build and the hawker binary at PATH, side by side at the same time
/// (`--runs` rounds per server kind and count), so that both see the same machine: on a noisy
/// VM, rounds run one after the other differ by more than most changes. `--versus nginx`: this
/// build against nginx-rtmp, the same way.
async fn versus(other: &str, kinds: &[Kind], input: &Path) {
    let seconds = arg("--seconds").unwrap_or(30);
    let runs = arg("--runs").unwrap_or(3);
    let counts: Vec<usize> = arg::<String>("--streams")
        .unwrap_or_else(|| "8".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let this = hawker_bin();
    println!("{seconds} s streams, this build ({this}) and {other} at the same time; CPU-s per stream");
    println!("{:>7}  {:<36} {:>10} {:>10} {:>8} {:>9}", "streams", "server", "this", "other", "ratio", "on time");
    for &n in &counts {
        for &kind in kinds.iter().filter(|k| **k != Kind::Nginx) {
            let mut ratios = Vec::new();
            for _ in 0..runs {
                let other_kind = if other == "nginx" { Kind::Nginx } else { kind };
                let (a, b) = tokio::join!(
                    round_of(&this, kind, n, seconds, input),
                    round_of(other, other_kind, n, seconds, input)
                );
                let ratio = a.cpu_per_stream / b.cpu_per_stream;
                // Publishers that fell behind make a round's CPU per stream meaningless.
                println!(
                    "{:>7}  {:<36} {:>10.3} {:>10.3} {:>8.2} {:>4}+{:<4}",
                    n,
                    kind.label(),
                    a.cpu_per_stream,
                    b.cpu_per_stream,
                    ratio,
                    a.on_time,
                    b.on_time
                );
                ratios.push(ratio);
            }
            ratios.sort_by(f64::total_cmp);
            println!("{:>7}  {:<36} median ratio this/other {:.2}", n, kind.label(), ratios[ratios.len() / 2]);
        }
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let input = input();
    let all_kinds = [Kind::HawkerDefaults, Kind::HawkerLean, Kind::Nginx];
    // `--servers defaults,nginx`: only these (e.g. to profile one server).
    let kinds: Vec<Kind> = match arg::<String>("--servers") {
        Some(names) => all_kinds.into_iter().filter(|k| names.split(',').any(|n| n.trim() == k.name())).collect(),
        None => all_kinds.to_vec(),
    };
    if args.iter().any(|a| a == "--capacity") {
        let seconds = arg("--seconds").unwrap_or(30);
        println!("most concurrent {seconds} s 720p30 3 Mb/s streams kept up with (publishers on this machine)");
        let steps: Vec<usize> = arg::<String>("--streams")
            .unwrap_or_else(|| "16,32,48,64,96,128,160,200".into())
            .split(',')
            .filter_map(|n| n.trim().parse().ok())
            .collect();
        for &kind in &kinds {
            let mut best = 0;
            for &n in &steps {
                let r = round(kind, n, seconds, &input).await;
                eprintln!(
                    "[streams] {} x{n}: {}/{n} on time, least packaged {:.1} s, {:.3} CPU-s/stream",
                    kind.label(),
                    r.on_time,
                    r.least_packaged,
                    r.cpu_per_stream
                );
                if !kept_up(&r, seconds) {
                    break;
                }
                best = n;
            }
            println!("{:<36} {best}", kind.label());
        }
        return;
    }
    if let Some(other) = arg::<String>("--versus") {
        versus(&other, &kinds, &input).await;
        return;
    }
    let seconds = arg("--seconds").unwrap_or(60);
    let counts: Vec<usize> = arg::<String>("--streams")
        .unwrap_or_else(|| "1,8,32".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let repeats = arg("--rounds").unwrap_or(1usize).max(1);
    println!("{seconds} s 720p30 3 Mb/s H.264 + AAC per stream, ffmpeg -re -c copy publishers on this machine");
    if repeats > 1 {
        println!("{repeats} rounds per server, interleaved; the round of median CPU is shown, (the range of all)");
    }
    println!(
        "{:>7}  {:<36} {:>12} {:>9} {:>11} {:>8} {:>9}",
        "streams", "server", "CPU-s/stream", "vs nginx", "MB/stream", "on time", "packaged"
    );
    let mut all = Vec::new();
    for &n in &counts {
        let mut tries: Vec<Vec<Round>> = kinds.iter().map(|_| Vec::new()).collect();
        // Interleaved, so that a slow spell of the machine falls on every server alike.
        for _ in 0..repeats {
            for (at, &kind) in kinds.iter().enumerate() {
                tries[at].push(round(kind, n, seconds, &input).await);
            }
        }
        // Each server's round of median CPU, and the range of its rounds.
        let rounds: Vec<(Round, f64, f64)> = tries
            .into_iter()
            .map(|mut rounds| {
                rounds.sort_by(|a, b| a.cpu_per_stream.total_cmp(&b.cpu_per_stream));
                let (least, most) = (rounds[0].cpu_per_stream, rounds[rounds.len() - 1].cpu_per_stream);
                (rounds.swap_remove(rounds.len() / 2), least, most)
            })
            .collect();
        let nginx = rounds.iter().find(|(r, ..)| r.kind == Kind::Nginx).map_or(f64::NAN, |(r, ..)| r.cpu_per_stream);
        for (r, least, most) in &rounds {
            let range = if repeats > 1 { format!("  ({least:.3}-{most:.3})") } else { String::new() };
            println!(
                "{:>7}  {:<36} {:>12.3} {:>9.2} {:>11.2} {:>5}/{:<2} {:>8.1}s{range}",
                r.streams,
                r.kind.label(),
                r.cpu_per_stream,
                r.cpu_per_stream / nginx,
                r.mb_per_stream,
                r.on_time,
                r.streams,
                r.least_packaged
            );
        }
        all.extend(rounds.into_iter().map(|(r, ..)| r));
    }
    if let (Some(&fewest), Some(&most)) = (counts.iter().min(), counts.iter().max())
        && most > fewest
    {
        println!("memory per added stream, steady RSS at {most} streams less at {fewest}, / {}:", most - fewest);
        for &kind in &kinds {
            let steady = |n| all.iter().find(|r: &&Round| r.kind == kind && r.streams == n).map(|r| r.steady_mb);
            if let (Some(a), Some(b)) = (steady(fewest), steady(most)) {
                println!("  {:<36} {:>6.2} MB", kind.label(), (b - a) / (most - fewest) as f64);
            }
        }
    }
    println!(
        "CPU: user + system time of the server's processes (nginx: master + worker; CPU-time clocks, ns), \
         publish start to 3 s after the end."
    );
    println!("MB/stream: (peak RSS while publishing - RSS of the idle server) / streams.");
    println!("Steady RSS: the median over the second half of the publish (one-time costs are past).");
}
