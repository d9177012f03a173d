//! Several hawker nodes on one PostgreSQL database and one bucket: what happens on one node
//! reaches the event sockets of the others within a second (PostgreSQL LISTEN/NOTIFY), the
//! API of every node sees the same state, a stream is held by one node at a time, any node
//! serves its HLS, and three nodes behind HAProxy survive the death of the one holding it.

use crate::common;

use std::time::{Duration, Instant};

use common::balancer::Balancer;
use common::events::{open_events, ticket, wait_event};
use common::hls::low_latency;
use common::s3::S3Server;
use common::*;
use futures_util::StreamExt;
use serde_json::{Value, json};
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
    let log = a.log();
    assert!(log.contains("held elsewhere") || log.contains("let go here"), "{log}");
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

/// A publisher that never comes back: the node that packaged the stream ends it when the
/// reconnect window runs out and writes its replay, once; the other node, which sweeps the
/// same streams, leaves it to that node.
#[tokio::test(flavor = "multi_thread")]
async fn the_node_that_packaged_a_stream_ends_it_when_its_window_runs_out() {
    let url = postgres::database();
    let database = ["--database-url", url.as_str()];
    let (a, b) = (Server::start_with(&database), Server::start_with(&database));
    let admin = a.user("admin", "admin");
    let seller = a.user("seller", "seller");
    let window = json!({"reconnect_window_seconds": 2, "reconnect_default_action": "save"});
    assert_eq!(b.call("PATCH", "/api/v1/settings", Some(&admin), Some(window)).await.0, 200);
    let stream = a.create_stream(&seller, "Gone").await;
    let (id, key) = (stream["id"].as_str().unwrap(), stream["stream_key"].as_str().unwrap());
    let mut on_b = open_events(&b, id, None).await;
    let mut publisher = ffmpeg_publish(&format!("{}/{key}", a.rtmp), 4);
    a.wait_for_segments(stream["playback_id"].as_str().unwrap(), 1, Duration::from_secs(20)).await;
    let _ = publisher.wait().await;
    wait_event(&mut on_b, "status", Duration::from_secs(10), |e| e["status"] == "archived").await;
    wait_event(&mut on_b, "replay_ready", Duration::from_secs(10), |_| true).await;
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert!(a.log().contains("reconnect window expired"), "{}", a.log());
    assert!(!b.log().contains("reconnect window expired"), "{}", b.log());
    let quiet = tokio::time::Instant::now() + Duration::from_secs(1);
    while let Ok(Some(Ok(message))) = tokio::time::timeout_at(quiet, on_b.next()).await {
        assert!(!message.to_text().unwrap_or("").contains("replay_ready"), "the replay was announced twice");
    }
}

/// A stream moves from node a to node b and back, on one bucket: node a lets go of its
/// state when node b takes the stream, so when the publisher comes back to node a the
/// playlist goes on from what node b stored, with no segment number used twice.
#[tokio::test(flavor = "multi_thread")]
async fn a_stream_that_comes_back_to_a_node_continues_from_the_bucket() {
    let url = postgres::database();
    let s3 = S3Server::start();
    let config = s3.config_file("serve");
    let args = ["--database-url", url.as_str(), "--config", config.to_str().unwrap()];
    let (a, b) = (Server::start_with(&args), Server::start_with(&args));
    let seller = a.user("seller", "seller");
    let stream = a.create_stream(&seller, "Back and forth").await;
    let (id, pid, key) = (
        stream["id"].as_str().unwrap(),
        stream["playback_id"].as_str().unwrap(),
        stream["stream_key"].as_str().unwrap(),
    );
    let mut on_a = open_events(&a, id, None).await;
    let mut first = ffmpeg_publish(&format!("{}/{key}", a.rtmp), 60);
    a.wait_for_segments(pid, 2, Duration::from_secs(20)).await;
    // Node b takes the stream; node a lets go within a couple of seconds.
    let mut second = ffmpeg_publish(&format!("{}/{key}", b.rtmp), 60);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !a.log().contains("let go here") {
        assert!(Instant::now() < deadline, "node a kept the stream:\n{}", a.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = first.kill().await;
    let before = listed(&media_playlist(&b, pid).await);
    let deadline = Instant::now() + Duration::from_secs(20);
    while listed(&media_playlist(&b, pid).await) < before + 2 {
        assert!(Instant::now() < deadline, "node b made no segments");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Node b's publisher leaves; it comes back to node a.
    let _ = second.kill().await;
    wait_event(&mut on_a, "status", Duration::from_secs(10), |e| e["status"] == "reconnecting").await;
    let on_b = listed(&media_playlist(&b, pid).await);
    let mut third = ffmpeg_publish(&format!("{}/{key}", a.rtmp), 60);
    let deadline = Instant::now() + Duration::from_secs(20);
    let text = loop {
        let (status, text) = a.fetch_text(&format!("/hls/{pid}/v0/index.m3u8")).await;
        if status == 200 && listed(&text) > on_b + 1 {
            break text;
        }
        assert!(Instant::now() < deadline, "node a did not go on from node b's segments");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let _ = third.kill().await;
    let playlist = parse_media(&text);
    let uris: std::collections::HashSet<&str> = playlist.segments.iter().map(|s| s.uri.as_str()).collect();
    assert_eq!(uris.len(), playlist.segments.len(), "a segment listed twice:\n{text}");
    assert!(text.matches("#EXT-X-DISCONTINUITY").count() >= 1, "{text}");
}

/// Invalid stream keys count per address over all nodes: five in a minute in all (the
/// default), not five on each node; past them, even a valid key is refused on every node.
#[tokio::test(flavor = "multi_thread")]
async fn invalid_stream_keys_are_counted_over_all_nodes() {
    let url = postgres::database();
    let database = ["--database-url", url.as_str()];
    let (a, b) = (Server::start_with(&database), Server::start_with(&database));
    let seller = a.user("seller", "seller");
    let guarded = a.create_stream(&seller, "Guarded").await;
    let (id, key) = (guarded["id"].as_str().unwrap(), guarded["stream_key"].as_str().unwrap().to_owned());
    for n in 0..5 {
        let node = if n % 2 == 0 { &a } else { &b };
        let output = publish_output(&format!("{}/sk_wrong{n}", node.rtmp)).await;
        assert!(output.contains("invalid stream key"), "try {n}: {output}");
    }
    // Node a saw three, node b two: each node's own limit is not reached, the shared one is.
    for node in [&a, &b] {
        let output = publish_output(&format!("{}/{key}", node.rtmp)).await;
        assert!(output.contains("too many invalid stream keys from this address"), "{output}");
    }
    // Its seller learns why, on any node.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, stats) = b.call("GET", &format!("/api/v1/streams/{id}/stats"), Some(&seller), None).await;
        if stats["last_refusal"]["reason"] == "too_many_wrong_keys" {
            break;
        }
        assert!(Instant::now() < deadline, "the refusal was not recorded: {stats}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A player's viewer session through the balancer, which keeps it on the node it joined with
/// its cookie, as a browser does.
struct Viewer {
    cookie: String,
    session: String,
}

async fn join_through(lb: &Balancer, id: &str) -> Viewer {
    let response = lb.client.post(lb.url(&format!("/api/v1/streams/{id}/viewers"))).json(&json!({})).send().await;
    let response = response.unwrap();
    assert_eq!(response.status(), 201);
    let cookie = response.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    Viewer { cookie, session: body["session_id"].as_str().unwrap().to_owned() }
}

/// Heartbeats every viewer; one whose session is gone (its node died) joins again, as the
/// player does.
async fn beat(lb: &Balancer, id: &str, viewers: &mut [Viewer]) {
    for viewer in viewers.iter_mut() {
        let url = lb.url(&format!("/api/v1/streams/{id}/viewers/{}/heartbeat", viewer.session));
        let response = lb.client.post(url).header("cookie", &viewer.cookie).send().await.unwrap();
        match response.status().as_u16() {
            204 => {}
            404 => *viewer = join_through(lb, id).await,
            other => panic!("heartbeat answered {other}"),
        }
    }
}

/// The stream's viewers now, as node `node` reports them.
async fn current_viewers(node: &Server, id: &str) -> i64 {
    node.call("GET", &format!("/api/v1/streams/{id}/viewers"), None, None).await.1["current"].as_i64().unwrap()
}

/// The stream's media playlist through `web` (multivariant first, as a player does).
async fn media_playlist(web: &impl Web, pid: &str) -> String {
    let (status, text) = web.fetch_text(&format!("/hls/{pid}/v0/index.m3u8")).await;
    assert_eq!(status, 200, "{text}");
    text
}

/// Segments the media playlist has listed in all (media sequence + segments).
fn listed(text: &str) -> u64 {
    let playlist = parse_media(text);
    playlist.media_sequence + playlist.segments.len() as u64
}

/// Three nodes on one PostgreSQL and one bucket (s3s-fs) behind HAProxy with the
/// repository's configuration: a publisher through HAProxy, players through HAProxy and on
/// every node (LL-HLS forwarded to the node holding the stream), events across nodes, viewer
/// counts summed over nodes; then the holding node dies (SIGKILL), the publisher reconnects
/// through HAProxy to another node, the playlist continues, and the saved replay is whole but
/// for the outage.
#[tokio::test(flavor = "multi_thread")]
async fn three_nodes_behind_haproxy_serve_one_stream_and_survive_the_death_of_its_node() {
    let url = postgres::database();
    let s3 = S3Server::start();
    let config = s3.config_file("serve");
    let args =
        ["--database-url", url.as_str(), "--config", config.to_str().unwrap(), "--trusted-proxy", "127.0.0.1/32"];
    // Started at once on the empty database: one of them sets it up.
    let mut nodes: Vec<Option<Server>> = std::thread::scope(|scope| {
        let starting: Vec<_> = (0..3).map(|_| scope.spawn(|| Server::start_with(&args))).collect();
        starting.into_iter().map(|node| Some(node.join().unwrap())).collect()
    });
    let set_up = (0..3).filter(|&n| node(&nodes, n).log().contains("hawker is set up")).count();
    assert_eq!(set_up, 1, "the demo set-up ran on {set_up} nodes");
    let lb = Balancer::start([node(&nodes, 0), node(&nodes, 1), node(&nodes, 2)]);
    let seller = node(&nodes, 0).user("seller", "seller");
    let viewer_token = node(&nodes, 0).user("viewer", "viewer");
    let admin = node(&nodes, 0).user("admin", "admin");
    let hooks = Hooks::start().await;
    let webhooks = json!({"webhook_url": hooks.url, "webhook_secret": "webhook-secret-0123456789", "allow_private_webhooks": true});
    assert_eq!(lb_call(&lb, "PATCH", "/api/v1/settings", Some(&admin), Some(webhooks)).await.0, 200);

    let (status, stream) = lb_call(&lb, "POST", "/api/v1/streams", Some(&seller), Some(json!({"title": "HA"}))).await;
    assert_eq!(status, 201, "{stream}");
    let (id, pid, key) = (
        stream["id"].as_str().unwrap(),
        stream["playback_id"].as_str().unwrap(),
        stream["stream_key"].as_str().unwrap(),
    );

    // ---- the publisher goes through HAProxy; one node holds the stream ----
    let first_started = Instant::now();
    let mut publisher = ffmpeg_publish(&format!("{}/{key}", lb.rtmp), 120);
    let deadline = Instant::now() + Duration::from_secs(15);
    let owner = loop {
        if let Some(n) = (0..3).find(|&n| node(&nodes, n).log().contains("stream is live")) {
            break n;
        }
        assert!(Instant::now() < deadline, "no node took the publish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let others: Vec<usize> = (0..3).filter(|&n| n != owner).collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, text) = lb.fetch_text(&format!("/hls/{pid}/v0/index.m3u8")).await;
        if status == 200 && listed(&text) >= 3 {
            break;
        }
        assert!(Instant::now() < deadline, "fewer than 3 segments through HAProxy: {status} {text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // ---- players through HAProxy and on every node: the same live HLS ----
    validate_hls(&lb, pid).await;
    for n in 0..3 {
        validate_hls(node(&nodes, n), pid).await;
    }
    // A blocking reload and the preload-hinted part on a node that does not hold the stream.
    let other = node(&nodes, others[0]);
    let text = media_playlist(other, pid).await;
    let hint = low_latency(&text).preload_hint.expect("a preload hint");
    let (msn, part) = hint.trim_start_matches("seg").trim_end_matches(".m4s").split_once('.').unwrap();
    let (msn, part): (u64, u64) = (msn.parse().unwrap(), part.parse().unwrap());
    let asked = Instant::now();
    let (status, blocked) =
        other.fetch_text(&format!("/hls/{pid}/v0/index.m3u8?_HLS_msn={msn}&_HLS_part={part}")).await;
    assert_eq!(status, 200, "{blocked}");
    // The hinted part, or (the segment closed on a keyframe just before it) the next
    // segment's first part, which a request past a segment's last part stands for (RFC 8216bis
    // 6.2.5.2).
    let hinted = [format!("seg{msn:06}.{part}.m4s"), format!("seg{:06}.0.m4s", msn + 1)];
    let came = hinted.iter().find(|name| blocked.contains(name.as_str()));
    let came = came.unwrap_or_else(|| panic!("the held reload lacks the part {hint}:\n{blocked}"));
    let held = asked.elapsed();
    let part_bytes = other.fetch(&format!("/hls/{pid}/v0/{came}")).await;
    assert_eq!(part_bytes.status(), 200);
    assert!(!part_bytes.bytes().await.unwrap().is_empty());
    // A browser's playlist through that node comes compressed by the holder, once per version.
    let compressed = other
        .client
        .get(other.url(&format!("/hls/{pid}/v0/index.m3u8")))
        .header("accept-encoding", "gzip, deflate, br, zstd")
        .send()
        .await
        .unwrap();
    assert_eq!(compressed.status(), 200);
    assert_eq!(compressed.headers()["content-encoding"], "br");
    assert!(compressed.headers().get_all("vary").iter().any(|v| v.to_str().unwrap().contains("accept-encoding")));
    let mut decoded = Vec::new();
    brotli::BrotliDecompress(&mut &compressed.bytes().await.unwrap()[..], &mut decoded).expect("brotli");
    assert!(decoded.starts_with(b"#EXTM3U") && decoded.windows(12).any(|w| w == b"#EXT-X-PART:"));

    // ---- events made on one node reach sockets on the others ----
    let mut sockets = Vec::new();
    for &n in &others {
        sockets.push(open_events(node(&nodes, n), id, None).await);
    }
    let chat = json!({"text": "hello from the owner's node"});
    let path = format!("/api/v1/streams/{id}/chat");
    assert_eq!(node(&nodes, owner).call("POST", &path, Some(&viewer_token), Some(chat)).await.0, 201);
    let pin = json!({"product_id": "sku-9", "title": "Blue bag", "price": 20, "currency": "EUR"});
    let pins = format!("/api/v1/streams/{id}/pins");
    assert_eq!(node(&nodes, others[0]).call("POST", &pins, Some(&seller), Some(pin)).await.0, 201);
    let like = json!({"reaction": "like"});
    let reaction = format!("/api/v1/streams/{id}/reaction");
    assert_eq!(lb_call(&lb, "PUT", &reaction, Some(&viewer_token), Some(like)).await.0, 200);
    for socket in &mut sockets {
        wait_event(socket, "chat", Duration::from_secs(1), |e| e["message"]["text"] == "hello from the owner's node")
            .await;
        wait_event(socket, "pin", Duration::from_secs(1), |e| e["pin"]["product_id"] == "sku-9").await;
        wait_event(socket, "reactions", Duration::from_secs(1), |e| e["likes"] == 1).await;
    }
    // The pin made on another node is marked in the playlist by the node holding the stream.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !media_playlist(&lb, pid).await.contains("X-PRODUCT-ID=\"sku-9\"") {
        assert!(Instant::now() < deadline, "no DATERANGE for the pin made on another node");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // ---- viewers: three through HAProxy (spread over the nodes), one on the owner itself ----
    let mut viewers = Vec::new();
    for _ in 0..3 {
        viewers.push(join_through(&lb, id).await);
    }
    let spread: std::collections::HashSet<&str> = viewers.iter().map(|v| v.cookie.as_str()).collect();
    assert!(spread.len() >= 2, "HAProxy put every viewer on one node: {spread:?}");
    let (status, direct) =
        node(&nodes, owner).call("POST", &format!("/api/v1/streams/{id}/viewers"), None, Some(json!({}))).await;
    assert_eq!(status, 201, "{direct}");
    let direct = direct["session_id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_secs(2)).await;
    beat(&lb, id, &mut viewers).await;
    let direct_beat = format!("/api/v1/streams/{id}/viewers/{direct}/heartbeat");
    assert_eq!(node(&nodes, owner).call("POST", &direct_beat, None, None).await.0, 204);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut counts = Vec::new();
        for n in 0..3 {
            counts.push(current_viewers(node(&nodes, n), id).await);
        }
        if counts.iter().all(|&c| c == 4) {
            break;
        }
        assert!(Instant::now() < deadline, "every node should count the 4 sessions of all nodes: {counts:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // ---- the owning node dies; the publisher comes back through HAProxy ----
    let before = listed(&media_playlist(&lb, pid).await);
    let killed = Instant::now();
    let first_ran = first_started.elapsed();
    drop(nodes[owner].take().unwrap().kill_hard());
    let _ = tokio::time::timeout(Duration::from_secs(10), publisher.wait()).await.expect("ffmpeg noticed");
    let second_started = Instant::now();
    let mut publisher = ffmpeg_publish(&format!("{}/{key}", lb.rtmp), 120);
    let deadline = Instant::now() + Duration::from_secs(15);
    let (heir, accepted) = loop {
        if let Some(&n) = others.iter().find(|&&n| node(&nodes, n).log().contains("stream is live")) {
            break (n, killed.elapsed());
        }
        assert!(Instant::now() < deadline, "no other node took the publisher back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let resumed = loop {
        let text = media_playlist(&lb, pid).await;
        if listed(&text) > before {
            assert!(text.contains("#EXT-X-DISCONTINUITY"), "no DISCONTINUITY at the takeover:\n{text}");
            break killed.elapsed();
        }
        assert!(Instant::now() < deadline, "no new segment after the takeover:\n{text}");
        beat(&lb, id, &mut viewers).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The dead node's sessions stop counting; the viewers it served join again elsewhere.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        beat(&lb, id, &mut viewers).await;
        let mut counts = Vec::new();
        for &n in &others {
            counts.push(current_viewers(node(&nodes, n), id).await);
        }
        if counts.iter().all(|&c| c == 3) {
            break;
        }
        assert!(Instant::now() < deadline, "the 3 live sessions should count, not the dead node's: {counts:?}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    validate_hls(&lb, pid).await;
    validate_hls(node(&nodes, others.iter().copied().find(|&n| n != heir).unwrap()), pid).await;

    // ---- saved through HAProxy: the replay is whole but for the outage ----
    tokio::time::sleep(Duration::from_secs(4)).await;
    let second_ran = second_started.elapsed();
    let end = format!("/api/v1/streams/{id}/end");
    let (status, ended) = lb_call(&lb, "POST", &end, Some(&seller), Some(json!({"action": "save"}))).await;
    assert_eq!((status, ended["status"].as_str()), (200, Some("archived")), "{ended}");
    let _ = tokio::time::timeout(Duration::from_secs(10), publisher.wait()).await.expect("the publisher let go");
    let deadline = Instant::now() + Duration::from_secs(20);
    let replay = loop {
        let text = media_playlist(&lb, pid).await;
        if text.contains("#EXT-X-ENDLIST") {
            break text;
        }
        assert!(Instant::now() < deadline, "no replay:\n{text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    validate_hls(&lb, pid).await;
    let playlist = parse_media(&replay);
    let uris: std::collections::HashSet<&str> = playlist.segments.iter().map(|s| s.uri.as_str()).collect();
    assert_eq!(uris.len(), playlist.segments.len(), "a segment listed twice:\n{replay}");
    let published = (first_ran + second_ran).as_secs_f64();
    let duration = total_duration(&playlist);
    // Lost: the dead node's partial segment (< 2 s) and the time before the publisher's
    // first keyframe on the new node.
    assert!(
        duration > published - 8.0 && duration < published + 1.0,
        "replay {duration:.1} s of {published:.1} s published:\n{replay}"
    );
    // Each webhook was accepted once, whichever node sent it (every first try is refused).
    let deadline = Instant::now() + Duration::from_secs(10);
    let want = ["stream.live", "stream.archived", "replay.ready"];
    while want.iter().any(|kind| hooks.accepted(kind) == 0) {
        assert!(Instant::now() < deadline, "webhooks missing: {:?}", hooks.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for kind in want {
        assert_eq!(hooks.accepted(kind), 1, "{kind} delivered other than once: {:?}", hooks.log());
    }
    eprintln!(
        "LL-HLS reload held on a node not holding the stream: {held:?}; failover: node killed → publisher accepted \
         {accepted:?} → first new segment listed {resumed:?}; replay {duration:.1} s of {published:.1} s"
    );
}

/// Node `n`, while it runs.
fn node(nodes: &[Option<Server>], n: usize) -> &Server {
    nodes[n].as_ref().expect("a running node")
}

/// A webhook receiver that refuses the first try of each delivery and accepts the retry.
struct Hooks {
    url: String,
    /// (type, accepted) per try, in arrival order.
    tries: std::sync::Arc<std::sync::Mutex<Vec<(String, bool)>>>,
}

impl Hooks {
    async fn start() -> Self {
        let tries: std::sync::Arc<std::sync::Mutex<Vec<(String, bool)>>> = Default::default();
        let log = tries.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |body: axum::body::Bytes| {
                let log = log.clone();
                async move {
                    let kind = serde_json::from_slice::<Value>(&body).unwrap()["type"].as_str().unwrap().to_owned();
                    let mut log = log.lock().unwrap();
                    let accept = log.iter().any(|(k, _)| *k == kind);
                    log.push((kind, accept));
                    if accept {
                        axum::http::StatusCode::NO_CONTENT
                    } else {
                        axum::http::StatusCode::SERVICE_UNAVAILABLE
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Hooks { url, tries }
    }

    fn accepted(&self, kind: &str) -> usize {
        self.tries.lock().unwrap().iter().filter(|(k, accepted)| k == kind && *accepted).count()
    }

    fn log(&self) -> Vec<(String, bool)> {
        self.tries.lock().unwrap().clone()
    }
}

/// A JSON API call through the balancer; returns (status, body).
async fn lb_call(lb: &Balancer, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
    call_json(&lb.client, (method, &lb.url(path)), token, body).await
}
