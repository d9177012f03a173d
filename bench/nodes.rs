//! Several nodes (issue 13), printed, not asserted. Four parts, each on its own servers
//! (`--only events,llhls,failover,cost` picks some):
//!
//! - **events**: two nodes share the tests' own PostgreSQL; a viewer changes their reaction
//!   through node b, over and over, and each change's event is read on a socket of node b
//!   (its own) and of node a (relayed through LISTEN/NOTIFY). Printed: node b's socket to
//!   node a's, and the request to node a's socket, p50 / p99.
//! - **llhls**: a stream published to node a; for each of many parts, the blocking reload
//!   for the part the playlist hints at is sent to node a (which holds the stream) and to
//!   node b (which forwards it) at the same moment. Printed: each node's wait, and what
//!   node b adds, p50 / p99.
//! - **failover**: three nodes on one PostgreSQL and one bucket (s3s-fs) behind HAProxy
//!   (`deploy/haproxy.cfg`); ffmpeg publishes through HAProxy, the node holding the stream is
//!   killed (SIGKILL), ffmpeg publishes again through HAProxy as soon as its connection
//!   drops. Printed per round: kill → publish accepted on another node → first new segment
//!   listed through HAProxy.
//! - **cost**: one node on SQLite, then one on PostgreSQL; 32 concurrent clients in this
//!   process send likes (a change each time), chat messages and viewer heartbeats for 5 s
//!   each. Printed: requests/s (the load generator shares the machine's two cores).
//!
//! Run: `cargo bench --bench nodes [-- --only PARTS] [--events N] [--parts N] [--rounds N]`
//! (needs `make test-deps s3s-fs`).

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::balancer::Balancer;
use common::events::{Socket, open_events, wait_event};
use common::hls::low_latency;
use common::s3::S3Server;
use common::*;
use serde_json::{Value, json};

fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[((values.len() - 1) as f64 * p).round() as usize]
}

async fn next_reactions(socket: &mut Socket, likes: u64) -> Instant {
    wait_event(socket, "reactions", Duration::from_secs(5), |e| e["likes"] == likes).await;
    Instant::now()
}

#[tokio::main]
async fn main() {
    let only: String = arg("--only").unwrap_or_else(|| "events,llhls,failover,cost".to_owned());
    if only.contains("events") {
        events(arg("--events").unwrap_or(500)).await;
    }
    if only.contains("llhls") {
        llhls(arg("--parts").unwrap_or(300)).await;
    }
    if only.contains("failover") {
        failover(arg("--rounds").unwrap_or(3)).await;
    }
    if only.contains("cost") {
        cost().await;
    }
}

async fn events(events: usize) {
    let url = postgres::database();
    let database = ["--database-url", url.as_str()];
    let a = Server::start_with(&database);
    let b = Server::start_with(&database);
    let seller = a.user("seller", "seller");
    let viewer = a.user("viewer", "viewer");
    let stream = a.create_stream(&seller, "Propagation").await;
    let id = stream["id"].as_str().unwrap();
    let (mut on_a, mut on_b) = (open_events(&a, id, None).await, open_events(&b, id, None).await);

    let (mut relay, mut end_to_end) = (Vec::new(), Vec::new());
    for i in 0..events {
        // like, dislike, like, ...: each a change, each an event.
        let (reaction, likes) = if i % 2 == 0 { ("like", 1) } else { ("dislike", 0) };
        let sent = Instant::now();
        let path = format!("/api/v1/streams/{id}/reaction");
        let (status, _) = b.call("PUT", &path, Some(&viewer), Some(json!({ "reaction": reaction }))).await;
        assert_eq!(status, 200);
        let (at_b, at_a) = tokio::join!(next_reactions(&mut on_b, likes), next_reactions(&mut on_a, likes));
        relay.push(at_a.saturating_duration_since(at_b).as_secs_f64() * 1000.0);
        end_to_end.push(at_a.duration_since(sent).as_secs_f64() * 1000.0);
    }
    println!("event propagation between two nodes on one PostgreSQL (LISTEN/NOTIFY), {events} events, ms");
    println!("{:<44} {:>8} {:>8}", "", "p50", "p99");
    for (label, values) in
        [("node b's socket -> node a's socket", &mut relay), ("request to node b -> node a's socket", &mut end_to_end)]
    {
        println!("{label:<44} {:>8.2} {:>8.2}", percentile(values, 0.5), percentile(values, 0.99));
    }
}

fn print_percentiles(title: &str, rows: &mut [(&str, &mut Vec<f64>)]) {
    println!("{title}");
    println!("{:<44} {:>8} {:>8}", "", "p50", "p99");
    for (label, values) in rows.iter_mut() {
        println!("{label:<44} {:>8.2} {:>8.2}", percentile(values, 0.5), percentile(values, 0.99));
    }
}

/// The (msn, part) of the playlist's preload hint.
fn hinted(text: &str) -> (u64, u64) {
    let hint = low_latency(text).preload_hint.expect("a preload hint");
    let (msn, part) = hint.trim_start_matches("seg").trim_end_matches(".m4s").split_once('.').expect("a part name");
    (msn.parse().unwrap(), part.parse().unwrap())
}

async fn timed_fetch(web: &impl Web, path: &str) -> f64 {
    let started = Instant::now();
    let (status, text) = web.fetch_text(path).await;
    assert_eq!(status, 200, "{text}");
    started.elapsed().as_secs_f64() * 1000.0
}

async fn llhls(parts: usize) {
    let url = postgres::database();
    let database = ["--database-url", url.as_str()];
    let (a, b) = (Server::start_with(&database), Server::start_with(&database));
    let seller = a.user("seller", "seller");
    let stream = a.create_stream(&seller, "Forwarded").await;
    let (pid, key) = (stream["playback_id"].as_str().unwrap(), stream["stream_key"].as_str().unwrap());
    let seconds = (parts as u32) / 5 + 30;
    let mut publisher = ffmpeg_publish(&format!("{}/{key}", a.rtmp), seconds);
    a.wait_for_segments(pid, 2, Duration::from_secs(20)).await;
    // Node b learns who holds the stream within a second.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let playlist = format!("/hls/{pid}/v0/index.m3u8");
    let (mut on_a, mut on_b, mut added) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..parts {
        let (_, text) = a.fetch_text(&playlist).await;
        let (msn, part) = hinted(&text);
        let blocking = format!("{playlist}?_HLS_msn={msn}&_HLS_part={part}");
        let (wait_a, wait_b) = tokio::join!(timed_fetch(&a, &blocking), timed_fetch(&b, &blocking));
        on_a.push(wait_a);
        on_b.push(wait_b);
        added.push(wait_b - wait_a);
    }
    let _ = publisher.kill().await;
    print_percentiles(
        &format!("LL-HLS blocking reload for the hinted part, {parts} parts of 200 ms, ms"),
        &mut [
            ("node a (holds the stream)", &mut on_a),
            ("node b (forwards to node a)", &mut on_b),
            ("added by node b (same part)", &mut added),
        ],
    );
}

async fn failover(rounds: usize) {
    println!("failover behind HAProxy: the node holding the stream killed (SIGKILL), s");
    println!("{:<8} {:>24} {:>30}", "round", "-> publish accepted", "-> first new segment listed");
    let (mut accepted_all, mut resumed_all) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let url = postgres::database();
        let s3 = S3Server::start();
        let config = s3.config_file("serve");
        let args = ["--database-url", url.as_str(), "--config", config.to_str().unwrap()];
        let mut nodes: Vec<Option<Server>> = (0..3).map(|_| Some(Server::start_with(&args))).collect();
        let lb = Balancer::start([node(&nodes, 0), node(&nodes, 1), node(&nodes, 2)]);
        let seller = node(&nodes, 0).user("seller", "seller");
        let (status, stream) = lb_call(&lb, "POST", "/api/v1/streams", &seller, json!({"title": "Failover"})).await;
        assert_eq!(status, 201, "{stream}");
        let (pid, key) = (stream["playback_id"].as_str().unwrap(), stream["stream_key"].as_str().unwrap());
        let mut publisher = ffmpeg_publish(&format!("{}/{key}", lb.rtmp), 120);
        let owner = loop {
            if let Some(n) = (0..3).find(|&n| node(&nodes, n).log().contains("stream is live")) {
                break n;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let playlist = format!("/hls/{pid}/v0/index.m3u8");
        let listed = |text: &str| {
            let p = parse_media(text);
            p.media_sequence + p.segments.len() as u64
        };
        let mut before = 0;
        while before < 3 {
            let (status, text) = lb.fetch_text(&playlist).await;
            before = if status == 200 { listed(&text) } else { 0 };
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let killed = Instant::now();
        drop(nodes[owner].take().unwrap().kill_hard());
        let _ = tokio::time::timeout(Duration::from_secs(10), publisher.wait()).await;
        let mut publisher = ffmpeg_publish(&format!("{}/{key}", lb.rtmp), 120);
        let others: Vec<usize> = (0..3).filter(|&n| n != owner).collect();
        let accepted = loop {
            if others.iter().any(|&n| node(&nodes, n).log().contains("stream is live")) {
                break killed.elapsed().as_secs_f64();
            }
            assert!(killed.elapsed() < Duration::from_secs(30), "no node took the publisher back");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let resumed = loop {
            let (status, text) = lb.fetch_text(&playlist).await;
            if status == 200 && listed(&text) > before {
                break killed.elapsed().as_secs_f64();
            }
            assert!(killed.elapsed() < Duration::from_secs(60), "no new segment");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let _ = publisher.kill().await;
        println!("{round:<8} {accepted:>24.2} {resumed:>30.2}");
        accepted_all.push(accepted);
        resumed_all.push(resumed);
    }
    println!(
        "{:<8} {:>24.2} {:>30.2}",
        "median",
        percentile(&mut accepted_all, 0.5),
        percentile(&mut resumed_all, 0.5)
    );
}

/// Node `n`, while it runs.
fn node(nodes: &[Option<Server>], n: usize) -> &Server {
    nodes[n].as_ref().expect("a running node")
}

async fn lb_call(lb: &Balancer, method: &str, path: &str, token: &str, body: Value) -> (u16, Value) {
    call_json(&lb.client, (method, &lb.url(path)), Some(token), Some(body)).await
}

/// Concurrent clients.
const CLIENTS: usize = 32;
/// How long each kind of request is sent.
const LOAD: Duration = Duration::from_secs(5);

async fn cost() {
    println!("requests/s, {CLIENTS} concurrent clients for {} s each, one node", LOAD.as_secs());
    println!("{:<12} {:>10} {:>10} {:>12}", "database", "like", "chat", "heartbeat");
    let url = postgres::database();
    for database in ["sqlite", "postgresql"] {
        let mut args = vec!["--trusted-proxy", "127.0.0.1/32"];
        if database == "postgresql" {
            args.extend(["--database-url", url.as_str()]);
        }
        let server = Server::start_with(&args);
        let admin = server.user("admin", "admin");
        let seller = server.user("seller", "seller");
        let settings = json!({"chat_rate_limit_messages": 100, "chat_rate_limit_seconds": 1, "viewer_sessions_per_address": 100000});
        assert_eq!(server.call("PATCH", "/api/v1/settings", Some(&admin), Some(settings)).await.0, 200);
        // A replay to watch (heartbeats), made from a short publish.
        let stream = server.create_stream(&seller, "Load").await;
        let (id, key) = (stream["id"].as_str().unwrap().to_owned(), stream["stream_key"].as_str().unwrap());
        let mut publisher = ffmpeg_publish(&format!("{}/{key}", server.rtmp), 5);
        server.wait_for_segments(stream["playback_id"].as_str().unwrap(), 1, Duration::from_secs(20)).await;
        let _ = publisher.wait().await;
        let end = json!({"action": "save"});
        assert_eq!(server.call("POST", &format!("/api/v1/streams/{id}/end"), Some(&seller), Some(end)).await.0, 200);
        // One signed-in guest per client, each from an address of its own (through the
        // trusted proxy header), as real viewers are.
        let mut tokens = Vec::new();
        for n in 0..CLIENTS {
            let response = server
                .client
                .post(server.url("/api/v1/guest-tokens"))
                .header("x-forwarded-for", format!("198.51.100.{}", n + 1))
                .json(&json!({"display_name": format!("guest {n}")}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 201);
            tokens.push(response.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned());
        }
        let mut sessions = Vec::new();
        for n in 0..CLIENTS {
            let response = server
                .client
                .post(server.url(&format!("/api/v1/streams/{id}/viewers")))
                .header("x-forwarded-for", format!("198.51.100.{}", n + 1))
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 201);
            sessions.push(response.json::<Value>().await.unwrap()["session_id"].as_str().unwrap().to_owned());
        }
        // Likes and chat go to a stream not ended yet (a scheduled one).
        let talk = server.create_stream(&seller, "Talk").await;
        let base = server.url(&format!("/api/v1/streams/{}", talk["id"].as_str().unwrap()));
        let like = load(&server.client, CLIENTS, |client, n, i| {
            let reaction = if i % 2 == 0 { "like" } else { "dislike" };
            client.put(format!("{base}/reaction")).bearer_auth(&tokens[n]).json(&json!({ "reaction": reaction }))
        })
        .await;
        let chat = load(&server.client, CLIENTS, |client, n, i| {
            client.post(format!("{base}/chat")).bearer_auth(&tokens[n]).json(&json!({ "text": format!("message {i}") }))
        })
        .await;
        let base = server.url(&format!("/api/v1/streams/{id}"));
        let heartbeat = load(&server.client, CLIENTS, |client, n, _| {
            client.post(format!("{base}/viewers/{}/heartbeat", sessions[n]))
        })
        .await;
        println!("{database:<12} {like:>10.0} {chat:>10.0} {heartbeat:>12.0}");
    }
    println!("(a heartbeat touches memory only; on PostgreSQL each node writes its counts once a second)");
}

/// Sends `request(client, n, i)` from `clients` concurrent loops for [`LOAD`]; returns the
/// successful requests per second (a refusal, e.g. a rate limit, is not counted).
async fn load(
    client: &reqwest::Client,
    clients: usize,
    request: impl Fn(&reqwest::Client, usize, u64) -> reqwest::RequestBuilder + Sync,
) -> f64 {
    let ok = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + LOAD;
    let request = &request;
    let loops = (0..clients).map(|n| {
        let (ok, refused) = (ok.clone(), refused.clone());
        async move {
            let mut i = 0;
            while Instant::now() < deadline {
                match request(client, n, i).send().await.map(|r| r.status().is_success()) {
                    Ok(true) => ok.fetch_add(1, Ordering::Relaxed),
                    _ => refused.fetch_add(1, Ordering::Relaxed),
                };
                i += 1;
            }
        }
    });
    futures_util::future::join_all(loops).await;
    let refused = refused.load(Ordering::Relaxed);
    if refused > 0 {
        eprintln!("({refused} requests refused or failed)");
    }
    ok.load(Ordering::Relaxed) as f64 / LOAD.as_secs_f64()
}
