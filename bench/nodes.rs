//! Several nodes (issue 13), printed, not asserted: event propagation from one node to
//! another. Two hawker nodes share the tests' own PostgreSQL; a viewer changes their reaction
//! through node b, over and over, and each change's event is read on a socket of node b (its
//! own) and of node a (relayed through PostgreSQL LISTEN/NOTIFY). Printed: the time from
//! node b's socket to node a's (the relay), and from sending the request to node a's socket
//! (what a viewer on another node waits), p50 / p99.
//!
//! Run: `cargo bench --bench nodes [-- --events N]` (default 500; needs `make test-deps`).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::events::{Socket, open_events, wait_event};
use common::*;
use serde_json::json;

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
    let args: Vec<String> = std::env::args().collect();
    let events: usize =
        args.iter().position(|a| a == "--events").and_then(|i| args.get(i + 1)?.parse().ok()).unwrap_or(500);
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
