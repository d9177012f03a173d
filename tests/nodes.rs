//! Several hawker nodes on one PostgreSQL database: what happens on one node reaches the
//! event sockets of the others within a second (PostgreSQL LISTEN/NOTIFY), and the API of
//! every node sees the same state.
//!
//! Still to come (issue 13): a shared bucket, stream leases and takeover, LL-HLS on a node
//! that does not hold the stream, viewer counts summed over nodes, the webhook outbox, and
//! HAProxy in front.

mod common;

use std::time::{Duration, Instant};

use common::events::{open_events, ticket, wait_event};
use common::*;
use serde_json::json;
use tokio_tungstenite::connect_async;

/// Events reach other nodes within this.
const PROPAGATION: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread")]
async fn events_and_state_are_shared_by_two_nodes_on_one_postgresql() {
    let url = postgres::database();
    let database = ["--database-url", url.as_str()];
    let a = Server::start_with(&database);
    let b = Server::start_with(&database);
    let seller = a.user("seller", "seller");
    let viewer = b.user("viewer", "viewer");
    let chatty = b.user("chatty", "viewer");

    // Made through node b, published to node a.
    let stream = b.create_stream(&seller, "Two nodes").await;
    let (id, key) = (stream["id"].as_str().unwrap(), stream["stream_key"].as_str().unwrap());
    let mut on_a = open_events(&a, id, None).await;
    let mut on_b = open_events(&b, id, None).await;
    // The seller's socket ticket comes from node a and opens a socket on node b, once.
    let once = ticket(&a, id, &seller).await;
    let url = format!("{}/api/v1/streams/{id}/events?ticket={once}", b.http.replacen("http://", "ws://", 1));
    let mut seller_on_b = connect_async(&url).await.expect("node a's ticket opens a socket on node b").0;
    let again = format!("{}/api/v1/streams/{id}/events?ticket={once}", a.http.replacen("http://", "ws://", 1));
    let again = connect_async(&again).await.expect_err("a ticket is single-use on every node");
    assert!(matches!(again, tokio_tungstenite::tungstenite::Error::Http(r) if r.status() == 401));
    let _ = seller_on_b.close(None).await;
    let mut publisher = ffmpeg_publish(&format!("{}/{key}", a.rtmp), 60);
    wait_event(&mut on_b, "status", Duration::from_secs(10), |e| e["status"] == "live").await;
    assert_eq!(b.stream(id, None).await["status"], "live", "node b's API sees the stream node a ingests");

    // Chat through node b reaches node a's sockets; a like through node a reaches node b's.
    let (status, posted) =
        b.call("POST", &format!("/api/v1/streams/{id}/chat"), Some(&viewer), Some(json!({"text": "hello a"}))).await;
    assert_eq!(status, 201, "{posted}");
    let sent = Instant::now();
    let chat = wait_event(&mut on_a, "chat", PROPAGATION, |e| e["message"]["text"] == "hello a").await;
    let took = sent.elapsed();
    assert_eq!(chat["message"]["id"], posted["id"]);
    let (status, _) = a
        .call("PUT", &format!("/api/v1/streams/{id}/reaction"), Some(&viewer), Some(json!({"reaction": "like"})))
        .await;
    assert_eq!(status, 200);
    wait_event(&mut on_b, "reactions", PROPAGATION, |e| e["likes"] == 1).await;

    // The chat rate limit (5 messages per window by default) counts one user's messages on
    // every node together, not 5 per node.
    let path = format!("/api/v1/streams/{id}/chat");
    let post = async |node: &Server, n: usize| {
        node.call("POST", &path, Some(&chatty), Some(json!({ "text": format!("msg {n}") }))).await.0
    };
    for n in 0..5 {
        assert_eq!(post(if n % 2 == 0 { &a } else { &b }, n).await, 201, "message {n}");
    }
    assert_eq!(post(&a, 5).await, 429, "a sixth message through node a");
    assert_eq!(post(&b, 6).await, 429, "a sixth message through node b");

    // The seller pins a product on node b: node a's sockets show it.
    let product = json!({"product_id": "sku-1", "title": "Red sneaker", "price": 59.99, "currency": "EUR"});
    let (status, pin) = b.call("POST", &format!("/api/v1/streams/{id}/pins"), Some(&seller), Some(product)).await;
    assert_eq!(status, 201, "{pin}");
    wait_event(&mut on_a, "pin", PROPAGATION, |e| e["pin"]["product_id"] == "sku-1").await;

    let pid = stream["playback_id"].as_str().unwrap();
    a.wait_for_segments(pid, 2, Duration::from_secs(20)).await;
    // The seller ends the stream through node b: node a, which holds it, disconnects the
    // publisher and writes the replay; the sockets of both nodes hear it.
    let (status, ended) =
        b.call("POST", &format!("/api/v1/streams/{id}/end"), Some(&seller), Some(json!({"action": "save"}))).await;
    assert_eq!((status, ended["status"].as_str()), (200, Some("archived")), "{ended}");
    wait_event(&mut on_a, "status", PROPAGATION, |e| e["status"] == "archived").await;
    wait_event(&mut on_b, "replay_ready", Duration::from_secs(10), |_| true).await;
    let gone = tokio::time::timeout(Duration::from_secs(5), publisher.wait()).await;
    assert!(gone.is_ok(), "node a kept the publisher of an ended stream:\n{}", a.log());
    let replay = a.media_playlist(pid).await.expect("node a serves the replay");
    assert!(replay.contains("#EXT-X-ENDLIST"), "{replay}");
    eprintln!("chat from node b on node a's socket after {took:?}");
}

/// A stream is live on one node at a time: the same key publishing to another node takes it
/// over there (the first node disconnects its publisher when it sees its lease gone), and
/// when the node holding it dies, its lease runs out and the stream waits for its publisher,
/// who may come back on any node.
#[tokio::test(flavor = "multi_thread")]
async fn a_stream_is_held_by_one_node_taken_over_by_another_and_freed_when_its_node_dies() {
    let url = postgres::database();
    let database = ["--database-url", url.as_str()];
    let a = Server::start_with(&database);
    let b = Server::start_with(&database);
    let seller = a.user("seller", "seller");
    let stream = a.create_stream(&seller, "Leased").await;
    let (id, key) = (stream["id"].as_str().unwrap(), stream["stream_key"].as_str().unwrap());
    let mut on_a = open_events(&a, id, None).await;

    let mut first = ffmpeg_publish(&format!("{}/{key}", a.rtmp), 60);
    a.wait_for_status(id, "live", Duration::from_secs(10)).await;
    // The same key on node b: node b holds the stream; node a lets its publisher go.
    let mut second = ffmpeg_publish(&format!("{}/{key}", b.rtmp), 60);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !b.log().contains("stream is live") {
        assert!(Instant::now() < deadline, "node b never took the stream:\n{}", b.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let gone = tokio::time::timeout(Duration::from_secs(8), first.wait()).await;
    assert!(gone.is_ok(), "node a kept the taken-over publisher:\n{}", a.log());
    assert!(a.log().contains("held elsewhere"), "{}", a.log());
    assert_eq!(a.stream(id, None).await["status"], "live");

    // Node b dies: within the lease and a sweep, node a puts the stream back to wait.
    let died = Instant::now();
    drop(b.kill_hard());
    let _ = second.kill().await;
    wait_event(&mut on_a, "status", Duration::from_secs(15), |e| e["status"] == "reconnecting").await;
    let freed_after = died.elapsed();
    assert!(freed_after >= Duration::from_secs(5), "freed after {freed_after:?}: before its lease could run out");
    // The publisher comes back to node a.
    let mut third = ffmpeg_publish(&format!("{}/{key}", a.rtmp), 60);
    wait_event(&mut on_a, "status", Duration::from_secs(10), |e| e["status"] == "live").await;
    let _ = third.kill().await;
    eprintln!("node b killed; stream waiting for its publisher after {freed_after:?}");
}
