//! The live-shopping layer end to end: viewers, likes, chat, pins, orders, seller stats,
//! admin settings, events over a real WebSocket and signed webhooks to a real HTTP server.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use common::events::{open_events, wait_event};
use common::*;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};

/// A webhook receiver: a real HTTP server that fails its first delivery (to see the retry).
struct Hooks {
    url: String,
    received: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
}

async fn webhook_receiver() -> Hooks {
    let received: Arc<Mutex<Vec<(HeaderMap, Bytes)>>> = Arc::default();
    let store = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let store = store.clone();
            async move {
                let mut store = store.lock().unwrap();
                store.push((headers, body));
                if store.len() == 1 { StatusCode::INTERNAL_SERVER_ERROR } else { StatusCode::NO_CONTENT }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Hooks { url, received }
}

const SECRET: &str = "webhook-secret-0123456789";

/// Runs the README's Python verification recipe on a received webhook.
fn readme_recipe_accepts(headers: &HeaderMap, body: &[u8]) -> bool {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let recipe = readme.split("```python\n").nth(1).and_then(|r| r.split("```").next()).expect("the recipe");
    let named = |name: &str| headers[name].to_str().unwrap().to_owned();
    let given = json!({"webhook-id": named("webhook-id"), "webhook-timestamp": named("webhook-timestamp"),
        "webhook-signature": named("webhook-signature")});
    let dir = tempfile::tempdir().unwrap();
    let body_file = dir.path().join("body");
    std::fs::write(&body_file, body).unwrap();
    let script = format!(
        "{recipe}\nimport json, sys\nprint(verify(sys.argv[1].encode(), json.loads(sys.argv[2]), open(sys.argv[3], 'rb').read()))"
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &script, SECRET, &given.to_string()])
        .arg(&body_file)
        .output()
        .expect("python3 runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim() == "True"
}

impl Hooks {
    /// Waits for a delivered (2xx-answered or not) webhook of `kind` and checks its signature.
    async fn wait(&self, kind: &str, stream_id: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let found = self.received.lock().unwrap().iter().find_map(|(headers, body)| {
                let value: Value = serde_json::from_slice(body).ok()?;
                (value["type"] == kind && value["stream_id"] == stream_id)
                    .then(|| (headers.clone(), body.clone(), value))
            });
            if let Some((headers, body, value)) = found {
                let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
                mac.update(&body);
                let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
                assert_eq!(headers["x-hawker-signature"].to_str().unwrap(), format!("sha256={hex}"));
                // Standard Webhooks: the signature of id, timestamp and body; the timestamp now.
                let header = |name: &str| headers[name].to_str().unwrap().to_owned();
                let (id, timestamp) = (header("webhook-id"), header("webhook-timestamp"));
                let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
                mac.update(format!("{id}.{timestamp}.").as_bytes());
                mac.update(&body);
                let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
                assert_eq!(header("webhook-signature"), format!("v1,{expected}"));
                let age = chrono::Utc::now().timestamp() - timestamp.parse::<i64>().unwrap();
                assert!((0..300).contains(&age), "webhook-timestamp {timestamp}");
                // The README's recipe verifies it, and refuses it tampered.
                assert!(readme_recipe_accepts(&headers, &body), "the README's recipe refused a webhook");
                assert!(!readme_recipe_accepts(&headers, &[&body[..], b" "].concat()), "a tampered body passed");
                // One id per event, the same on a retry.
                for (other_headers, other_body) in self.received.lock().unwrap().iter() {
                    assert_eq!(*other_body == body, other_headers["webhook-id"] == id.as_str(), "{id}");
                }
                assert_eq!(headers["content-type"], "application/json");
                assert!(value["at"].is_string());
                return value;
            }
            assert!(Instant::now() < deadline, "no {kind} webhook within {within:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn live_shopping_end_to_end() {
    let server = Server::start_with(&[]);
    let seller = server.user("seller", "seller");
    let other = server.user("other", "seller");
    let alice = server.user("alice", "viewer");
    let bob = server.user("bob", "viewer");
    let admin = server.user("admin", "admin");
    let shop = server.user("shop", "shop");
    server.link_shop(&admin, &shop, &seller).await;
    let hooks = webhook_receiver().await;
    let (status, body) = server
        .call(
            "PATCH",
            "/api/v1/settings",
            Some(&admin),
            Some(json!({"webhook_url": hooks.url, "webhook_secret": SECRET, "allow_private_webhooks": true})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["webhook_secret"], "********");

    let created = server.create_stream(&seller, "Sneaker drop").await;
    let (id, pid, key) = (
        created["id"].as_str().unwrap(),
        created["playback_id"].as_str().unwrap(),
        created["stream_key"].as_str().unwrap(),
    );
    let path = |rest: &str| format!("/api/v1/streams/{id}{rest}");

    // Viewers cannot join before there is something to play.
    assert_eq!(server.call("POST", &path("/viewers"), None, Some(json!({}))).await.0, 409);

    let mut public = open_events(&server, id, None).await;
    let hello = wait_event(&mut public, "hello", Duration::from_secs(5), |_| true).await;
    assert_eq!(hello["status"], "scheduled");
    let mut seller_socket = open_events(&server, id, Some(&seller)).await;

    let mut ffmpeg = ffmpeg_publish(&format!("{}/{key}", server.rtmp), 40);
    server.wait_for_status(id, "live", Duration::from_secs(10)).await;
    wait_event(&mut public, "status", Duration::from_secs(5), |e| e["status"] == "live").await;
    // The first delivery is refused by the receiver; the retry carries the same signed body.
    hooks.wait("stream.live", id, Duration::from_secs(10)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while hooks.received.lock().unwrap().len() < 2 {
        assert!(Instant::now() < deadline, "the failed webhook was not retried");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    {
        let received = hooks.received.lock().unwrap();
        assert_eq!(received[0].1, received[1].1, "the retry is the same delivery");
    }

    // ---- viewers: two join, count at their first heartbeat, one leaves ----
    let (status, a) = server.call("POST", &path("/viewers"), None, Some(json!({}))).await;
    assert_eq!(status, 201, "{a}");
    assert_eq!(a["replay"], false);
    let after = Duration::from_secs(a["first_heartbeat_after_seconds"].as_u64().unwrap());
    let (_, b) = server.call("POST", &path("/viewers"), Some(&bob), Some(json!({}))).await;
    let (a, b) = (a["session_id"].as_str().unwrap().to_owned(), b["session_id"].as_str().unwrap().to_owned());
    assert_ne!(a, b);
    let (_, viewers) = server.call("GET", &path("/viewers"), None, None).await;
    assert_eq!(viewers["current"], 0, "joined, not yet counted");
    tokio::time::sleep(after).await;
    for session in [&a, &b] {
        assert_eq!(server.call("POST", &path(&format!("/viewers/{session}/heartbeat")), None, None).await.0, 204);
    }
    let (_, viewers) = server.call("GET", &path("/viewers"), None, None).await;
    assert_eq!(
        (viewers["current"].as_i64(), viewers["peak"].as_i64(), viewers["unique"].as_i64()),
        (Some(2), Some(2), Some(2))
    );
    wait_event(&mut public, "viewers", Duration::from_secs(5), |e| e["current"] == 2).await;
    // The seller sees who watches: bob by name (he joined signed in), one player anonymous.
    for token in [Some(&other), Some(&alice), None] {
        assert!(matches!(server.call("GET", &path("/audience"), token.map(String::as_str), None).await.0, 401 | 403));
    }
    let (status, audience) = server.call("GET", &path("/audience"), Some(&seller), None).await;
    assert_eq!(status, 200, "{audience}");
    assert_eq!(audience["signed_in"].as_array().unwrap().len(), 1, "{audience}");
    assert_eq!((audience["signed_in"][0]["name"].as_str(), audience["anonymous"].as_i64()), (Some("bob"), Some(1)));
    assert_eq!(audience["guests"], 0);
    // A heartbeat with alice's token says the anonymous player is hers.
    let beat = path(&format!("/viewers/{a}/heartbeat"));
    assert_eq!(server.call("POST", &beat, Some(&alice), None).await.0, 204);
    let (_, audience) = server.call("GET", &path("/audience"), Some(&admin), None).await;
    assert_eq!(
        (audience["signed_in"].as_array().unwrap().len(), audience["anonymous"].as_i64()),
        (2, Some(0)),
        "{audience}"
    );
    assert_eq!(server.call("POST", &path(&format!("/viewers/{a}/heartbeat")), None, None).await.0, 204);
    assert_eq!(server.call("DELETE", &path(&format!("/viewers/{a}")), None, None).await.0, 204);
    assert_eq!(server.call("POST", &path(&format!("/viewers/{a}/heartbeat")), None, None).await.0, 404);
    assert_eq!(server.call("POST", &path("/viewers/nope/heartbeat"), None, None).await.0, 404);
    let (_, viewers) = server.call("GET", &path("/viewers"), None, None).await;
    assert_eq!(
        (viewers["current"].as_i64(), viewers["peak"].as_i64(), viewers["unique"].as_i64()),
        (Some(1), Some(2), Some(2))
    );
    let event = wait_event(&mut public, "viewers", Duration::from_secs(5), |e| e["current"] == 1).await;
    assert_eq!(event["peak"], 2);
    assert_eq!(server.stream(id, None).await["viewers"], 1);

    // ---- likes and dislikes ----
    let react = |token: Option<String>, body: Option<Value>| {
        let server = &server;
        let method = if body.is_some() { "PUT" } else { "DELETE" };
        async move { server.call(method, &format!("/api/v1/streams/{id}/reaction"), token.as_deref(), body).await }
    };
    assert_eq!(react(None, Some(json!({"reaction": "like"}))).await.0, 401);
    assert_eq!(react(Some(alice.clone()), Some(json!({"reaction": "love"}))).await.0, 400);
    let (status, r) = react(Some(alice.clone()), Some(json!({"reaction": "like"}))).await;
    assert_eq!((status, r["reaction"].as_str(), r["likes"].as_i64()), (200, Some("like"), Some(1)));
    react(Some(bob.clone()), Some(json!({"reaction": "like"}))).await;
    let (_, r) = react(Some(alice.clone()), Some(json!({"reaction": "dislike"}))).await;
    assert_eq!((r["likes"].as_i64(), r["dislikes"].as_i64()), (Some(1), Some(1)));
    let (_, r) = react(Some(bob.clone()), None).await;
    assert_eq!((r["reaction"].clone(), r["likes"].as_i64(), r["dislikes"].as_i64()), (Value::Null, Some(0), Some(1)));
    wait_event(&mut public, "reactions", Duration::from_secs(5), |e| e["likes"] == 0 && e["dislikes"] == 1).await;
    let (_, mine) = server.call("GET", &path("/reaction"), Some(&alice), None).await;
    assert_eq!(mine["reaction"], "dislike");
    let shown = server.stream(id, None).await;
    assert_eq!((shown["likes"].as_i64(), shown["dislikes"].as_i64()), (Some(0), Some(1)));

    // ---- chat ----
    // Media time needs the live playlist.
    let deadline = Instant::now() + Duration::from_secs(15);
    while server.media_playlist(pid).await.is_none() {
        assert!(Instant::now() < deadline, "no live playlist");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(1100)).await; // past the media-time cache
    let chat = |token: &str, text: &str| {
        let (server, token, text) = (&server, token.to_owned(), text.to_owned());
        async move {
            server.call("POST", &format!("/api/v1/streams/{id}/chat"), Some(&token), Some(json!({"text": text}))).await
        }
    };
    let (status, _) = server.call("POST", &path("/chat"), None, Some(json!({"text": "hi"}))).await;
    assert_eq!(status, 401);
    let (status, first) = chat(&alice, "  hello everyone  ").await;
    assert_eq!(status, 201, "{first}");
    assert_eq!((first["text"].as_str(), first["user"]["name"].as_str()), (Some("hello everyone"), Some("alice")));
    let media_time =
        chrono::DateTime::parse_from_rfc3339(first["media_time"].as_str().expect("media_time while live")).unwrap();
    let created_at = chrono::DateTime::parse_from_rfc3339(first["created_at"].as_str().unwrap()).unwrap();
    let lag = (created_at - media_time).num_milliseconds();
    assert!((-2000..15_000).contains(&lag), "media time {media_time} is far from server time {created_at}");
    let event = wait_event(&mut public, "chat", Duration::from_secs(5), |_| true).await;
    assert_eq!(event["message"]["id"], first["id"]);
    assert_eq!(chat(&alice, "").await.0, 400);
    let (status, body) = chat(&alice, &"x".repeat(501)).await;
    assert_eq!(status, 400);
    assert!(body["error"]["message"].as_str().unwrap().contains("500"), "{body}");
    let (_, second) = chat(&bob, "nice shoes").await;
    let (_, third) = chat(&alice, "price?").await;

    let (_, page) = server.call("GET", &path("/chat?limit=2"), None, None).await;
    let texts: Vec<_> = page["messages"].as_array().unwrap().iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["nice shoes", "price?"]);
    let before = page["next_before"].as_i64().expect("an older page");
    let (_, older) = server.call("GET", &path(&format!("/chat?limit=2&before={before}")), None, None).await;
    assert_eq!(older["messages"][0]["text"], "hello everyone");
    assert!(older["next_before"].is_null());
    assert_eq!(server.call("GET", &path("/chat?limit=0"), None, None).await.0, 400);

    // Moderation: owner and admins only.
    let second_id = second["id"].as_i64().unwrap();
    assert_eq!(server.call("DELETE", &path(&format!("/chat/{second_id}")), Some(&other), None).await.0, 403);
    assert_eq!(server.call("DELETE", &path(&format!("/chat/{second_id}")), Some(&alice), None).await.0, 403);
    assert_eq!(server.call("DELETE", &path(&format!("/chat/{second_id}")), Some(&seller), None).await.0, 204);
    wait_event(&mut public, "chat_deleted", Duration::from_secs(5), |e| e["message_id"] == second_id).await;
    assert_eq!(server.call("DELETE", &path(&format!("/chat/{second_id}")), Some(&admin), None).await.0, 404);
    let bob_id = second["user"]["id"].as_str().unwrap();
    assert_eq!(server.call("PUT", &path(&format!("/mutes/{bob_id}")), Some(&other), None).await.0, 403);
    assert_eq!(server.call("PUT", &path(&format!("/mutes/{bob_id}")), Some(&seller), None).await.0, 204);
    let (status, body) = chat(&bob, "let me talk").await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")));
    assert_eq!(server.call("DELETE", &path(&format!("/mutes/{bob_id}")), Some(&admin), None).await.0, 204);
    assert_eq!(chat(&bob, "thanks").await.0, 201);

    // Rate limit per user, from the admin's settings.
    let (status, _) = server
        .call(
            "PATCH",
            "/api/v1/settings",
            Some(&admin),
            Some(json!({"chat_rate_limit_messages": 3, "chat_rate_limit_seconds": 60})),
        )
        .await;
    assert_eq!(status, 200);
    // alice has posted 2 of her 3 in the window.
    assert_eq!(chat(&alice, "one more").await.0, 201);
    let (status, body) = chat(&alice, "and another").await;
    assert_eq!((status, body["error"]["code"].as_str()), (429, Some("rate_limited")), "{body}");
    assert_eq!(chat(&admin, "admins have their own budget").await.0, 201);
    let _ = third;

    // ---- pins ----
    let product = json!({"product_id": "sku-1", "title": "Red sneaker", "price": 59.99, "currency": "EUR",
        "image_url": "https://shop.example/sku-1.jpg", "url": "https://shop.example/sku-1"});
    assert_eq!(server.call("POST", &path("/pins"), Some(&alice), Some(product.clone())).await.0, 403);
    assert_eq!(server.call("POST", &path("/pins"), Some(&other), Some(product.clone())).await.0, 403);
    let mut bad = product.clone();
    bad["price"] = json!(-1);
    assert_eq!(server.call("POST", &path("/pins"), Some(&seller), Some(bad)).await.0, 400);
    let mut bad = product.clone();
    bad["currency"] = json!("euro");
    assert_eq!(server.call("POST", &path("/pins"), Some(&seller), Some(bad)).await.0, 400);
    let (status, pin) = server.call("POST", &path("/pins"), Some(&seller), Some(product.clone())).await;
    assert_eq!(status, 201, "{pin}");
    assert_eq!((pin["price"].as_str(), pin["unpinned_at"].clone()), (Some("59.99"), Value::Null));
    assert_eq!(server.call("POST", &path("/pins"), Some(&seller), Some(product.clone())).await.0, 409);
    let event = wait_event(&mut public, "pin", Duration::from_secs(5), |_| true).await;
    assert_eq!(event["pin"]["product_id"], "sku-1");
    let (_, pins) = server.call("GET", &path("/pins"), None, None).await;
    assert_eq!(pins["pins"].as_array().unwrap().len(), 1);
    // The pin is an EXT-X-DATERANGE in the live playlist (shoppable live and replay).
    let pin_id = pin["id"].as_str().unwrap();
    let daterange =
        |text: &str| text.lines().find(|l| l.starts_with("#EXT-X-DATERANGE:") && l.contains(pin_id)).map(str::to_owned);
    // Listed once the segment it starts in is complete (hls.js needs that segment listed).
    let listed_by = Instant::now() + Duration::from_secs(5);
    let marker = loop {
        let live = server.media_playlist(pid).await.expect("live playlist");
        match daterange(&live) {
            Some(marker) => break marker,
            None if Instant::now() < listed_by => tokio::time::sleep(Duration::from_millis(100)).await,
            None => panic!("no DATERANGE for the pin within 5 s:\n{live}"),
        }
    };
    for part in [
        "CLASS=\"com.hawker.product\"",
        "X-PRODUCT-ID=\"sku-1\"",
        "X-PRICE=\"59.99\"",
        "X-CURRENCY=\"EUR\"",
        "X-URL=\"https://shop.example/sku-1\"",
    ] {
        assert!(marker.contains(part), "{part} missing from {marker}");
    }
    assert!(!marker.contains("END-DATE"), "{marker}");
    assert_eq!(server.call("DELETE", &path("/pins/sku-1"), Some(&other), None).await.0, 403);
    let (status, unpinned) = server.call("DELETE", &path("/pins/sku-1"), Some(&seller), None).await;
    assert_eq!(status, 200);
    assert_eq!(unpinned["id"], pin["id"]);
    assert!(unpinned["unpinned_at"].is_string());
    wait_event(&mut public, "unpin", Duration::from_secs(5), |e| e["pin"]["id"] == pin["id"]).await;
    let live = server.media_playlist(pid).await.expect("live playlist");
    assert!(
        daterange(&live).is_some_and(|m| m.contains("END-DATE=")),
        "the unpin did not close the DATERANGE:\n{live}"
    );
    assert_eq!(server.call("DELETE", &path("/pins/sku-1"), Some(&seller), None).await.0, 404);
    let (_, pins) = server.call("GET", &path("/pins?all=true"), None, None).await;
    assert_eq!(pins["pins"].as_array().unwrap().len(), 1);
    let (_, pins) = server.call("GET", &path("/pins"), None, None).await;
    assert!(pins["pins"].as_array().unwrap().is_empty());

    // ---- orders ----
    let order = json!({"order_id": "o-1", "product_id": "sku-1", "quantity": 2, "amount": "119.98", "currency": "EUR"});
    assert_eq!(server.call("POST", &path("/orders"), Some(&seller), Some(order.clone())).await.0, 403);
    assert_eq!(server.call("POST", &path("/orders"), Some(&alice), Some(order.clone())).await.0, 403);
    let (status, recorded) = server.call("POST", &path("/orders"), Some(&shop), Some(order.clone())).await;
    assert_eq!((status, recorded["amount"].as_str()), (201, Some("119.98")), "{recorded}");
    let pushed = wait_event(&mut seller_socket, "orders", Duration::from_secs(5), |e| e["orders"] == 1).await;
    assert_eq!(pushed["order"]["order_id"], "o-1", "the seller's socket carries the new order");
    assert!(recorded["media_time"].is_string(), "an order on a live stream has a media time: {recorded}");
    assert_eq!(server.call("POST", &path("/orders"), Some(&shop), Some(order.clone())).await.0, 200);
    let mut changed = order.clone();
    changed["quantity"] = json!(3);
    assert_eq!(server.call("POST", &path("/orders"), Some(&shop), Some(changed)).await.0, 409);
    let mut bad = order.clone();
    bad["quantity"] = json!(0);
    assert_eq!(server.call("POST", &path("/orders"), Some(&shop), Some(bad)).await.0, 400);
    let (status, _) = server
        .call(
            "POST",
            &path("/orders"),
            Some(&shop),
            Some(json!({"order_id": "o-2", "product_id": "sku-2", "quantity": 1, "amount": 20, "currency": "EUR"})),
        )
        .await;
    assert_eq!(status, 201);

    // ---- the seller's order list: newest first, a page at a time, owner and admins only ----
    for token in [&other, &alice, &shop] {
        assert_eq!(server.call("GET", &path("/orders"), Some(token), None).await.0, 403);
    }
    assert_eq!(server.call("GET", &path("/orders"), None, None).await.0, 401);
    let (status, page) = server.call("GET", &path("/orders?limit=1"), Some(&seller), None).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["orders"][0]["order_id"], "o-2");
    let before = page["next_before"].as_str().expect("a next page").to_owned();
    let (_, page) = server.call("GET", &path(&format!("/orders?limit=1&before={before}")), Some(&admin), None).await;
    assert_eq!(page["orders"][0]["order_id"], "o-1");
    assert_eq!(
        (page["orders"][0]["amount"].as_str(), page["orders"][0]["quantity"].as_i64()),
        (Some("119.98"), Some(2))
    );
    assert!(page["next_before"].is_null(), "{page}");
    assert_eq!(server.call("GET", &path("/orders?before=garbage"), Some(&seller), None).await.0, 400);
    assert_eq!(server.call("GET", &path("/orders?limit=0"), Some(&seller), None).await.0, 400);

    // ---- shares: counted per channel, a few an hour per address and stream ----
    let share = |channel: &str| {
        let body = json!({ "channel": channel });
        let server = &server;
        let url = path("/shares");
        async move { server.call("POST", &url, None, Some(body)).await.0 }
    };
    assert_eq!(share("copy").await, 204);
    assert_eq!(share("native").await, 204);
    assert_eq!(share("carrier-pigeon").await, 400);
    assert_eq!(share("whatsapp").await, 204);
    assert_eq!(share("copy").await, 429, "a fourth share within the hour from one address");
    let cross_site = server
        .client
        .post(server.url(&path("/shares")))
        .header("origin", "https://evil.example")
        .json(&json!({"channel": "copy"}))
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), 403, "another site's page cannot count shares");
    // The watch page's link preview: title, seller, poster, escaped.
    let (status, page) = server.get_text(&format!("/watch/{pid}")).await;
    assert_eq!(status, 200);
    assert!(page.contains(r#"<meta property="og:title" content="Sneaker drop">"#), "{page}");
    assert!(page.contains(&format!(r#"<meta property="og:image" content="{}/hls/{pid}/poster.jpg">"#, server.http)));
    assert!(page.contains(r#"<meta name="twitter:card" content="summary_large_image">"#));
    assert!(page.contains(r#"content="seller, live now"#), "the seller's name in the preview");

    // ---- the seller's stats ----
    assert_eq!(server.call("GET", &path("/stats"), Some(&other), None).await.0, 403);
    assert_eq!(server.call("GET", &path("/stats"), Some(&alice), None).await.0, 403);
    let (status, stats) = server.call("GET", &path("/stats"), Some(&seller), None).await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["status"], "live");
    assert_eq!(
        (stats["viewers_current"].as_i64(), stats["viewers_peak"].as_i64(), stats["viewers_unique"].as_i64()),
        (Some(1), Some(2), Some(2))
    );
    assert_eq!((stats["likes"].as_i64(), stats["dislikes"].as_i64()), (Some(0), Some(1)));
    // hello, price?, thanks, one more, admins… (nice shoes was deleted).
    assert_eq!(stats["comments"], 5);
    assert_eq!((stats["shares"].as_i64(), stats["shares_by_channel"]["copy"].as_i64()), (Some(3), Some(1)));
    assert_eq!((stats["orders"].as_i64(), stats["units"].as_i64()), (Some(2), Some(3)));
    assert_eq!(stats["revenue"], json!([{"currency": "EUR", "amount": "139.98"}]));
    let sku1 = stats["products"].as_array().unwrap().iter().find(|p| p["product_id"] == "sku-1").unwrap();
    assert_eq!((sku1["units"].as_i64(), sku1["revenue"].as_str()), (Some(2), Some("119.98")));
    assert!(stats["ingest"]["fps"].as_f64().unwrap() > 0.0);
    assert!(stats["duration_seconds"].as_f64().unwrap() > 0.0);
    let (status, _) = server.call("GET", &path("/stats"), Some(&admin), None).await;
    assert_eq!(status, 200);
    // The seller's socket gets stats; the public one never does.
    let pushed = wait_event(&mut seller_socket, "stats", Duration::from_secs(5), |e| e["stats"]["orders"] == 2).await;
    assert_eq!(pushed["stats"]["viewers_peak"], 2);

    // ---- end: archived, replay ready; replay views counted separately ----
    let (status, _) = server.call("POST", &path("/end"), Some(&seller), Some(json!({"action": "save"}))).await;
    assert_eq!(status, 200);
    let _ = ffmpeg.kill().await;
    wait_event(&mut public, "status", Duration::from_secs(5), |e| e["status"] == "archived").await;
    wait_event(&mut public, "replay_ready", Duration::from_secs(10), |_| true).await;
    hooks.wait("stream.archived", id, Duration::from_secs(10)).await;
    let ready = hooks.wait("replay.ready", id, Duration::from_secs(10)).await;
    assert!(ready["playback_url"].as_str().unwrap().ends_with(&format!("/hls/{pid}/index.m3u8")));
    let replay_playlist = server.media_playlist(pid).await.expect("replay playlist");
    assert!(replay_playlist.contains("#EXT-X-ENDLIST"));
    // The replay as one MP4 file, made after the save.
    let mp4 = wait_event(&mut public, "replay.mp4_ready", Duration::from_secs(30), |_| true).await;
    let hook = hooks.wait("replay.mp4_ready", id, Duration::from_secs(10)).await;
    let video_url = mp4["video_url"].as_str().expect("video_url").to_owned();
    assert_eq!(video_url, format!("{}/hls/{pid}/replay.mp4", server.url("")));
    assert_eq!(hook["video_url"], video_url.as_str());
    assert_eq!(server.stream(id, None).await["video_url"], video_url.as_str());
    let metrics = server.get("/metrics").await.text().await.unwrap();
    assert!(metric(&metrics, "hawker_webhook_deliveries_total{outcome=\"delivered\"}") >= 3.0, "{metrics}");
    let replay_seconds = total_duration(&parse_media(&replay_playlist));
    let size = check_replay_mp4(&video_url, replay_seconds).await;
    assert_eq!(mp4["bytes"].as_u64(), Some(size));
    // Every pin became a highlight of its product; every order with a media time has a video
    // receipt: both are clips over the replay's segments.
    let (status, highlights) = server.call("GET", "/api/v1/products/sku-1/highlights", None, None).await;
    assert_eq!(status, 200, "{highlights}");
    let highlight = &highlights["clips"][0];
    assert_eq!(
        (highlight["kind"].as_str(), highlight["product_id"].as_str()),
        (Some("highlight"), Some("sku-1")),
        "{highlights}"
    );
    assert_eq!(highlight["stream_id"], id);
    assert!(highlight["duration_seconds"].as_f64().unwrap() > 0.0);
    let played = server.get(highlight["playback_url"].as_str().unwrap()).await.text().await.unwrap();
    assert!(played.contains("#EXT-X-ENDLIST") && played.contains("../../v0/seg"), "{played}");
    let (_, nothing) = server.call("GET", "/api/v1/products/no-such-sku/highlights", None, None).await;
    assert_eq!(nothing["clips"], json!([]));
    let (status, orders) = server.call("GET", &path("/orders"), Some(&seller), None).await;
    assert_eq!(status, 200, "{orders}");
    let with_time: Vec<&Value> =
        orders["orders"].as_array().unwrap().iter().filter(|o| !o["media_time"].is_null()).collect();
    assert!(!with_time.is_empty(), "{orders}");
    for order in with_time {
        let receipt = order["receipt_url"].as_str().unwrap_or_else(|| panic!("no receipt: {order}"));
        let text = server.get(receipt).await.text().await.unwrap();
        assert!(text.contains("#EXT-X-ENDLIST"), "{text}");
    }
    // Receipts name orders: listed to the seller only.
    let kinds = |list: &Value| list["clips"].as_array().unwrap().iter().map(|c| c["kind"].clone()).collect::<Vec<_>>();
    let (_, for_seller) = server.call("GET", &path("/clips"), Some(&seller), None).await;
    assert!(kinds(&for_seller).contains(&json!("receipt")), "{for_seller}");
    let (_, for_anyone) = server.call("GET", &path("/clips"), None, None).await;
    assert!(!kinds(&for_anyone).contains(&json!("receipt")), "{for_anyone}");
    assert!(kinds(&for_anyone).contains(&json!("highlight")), "{for_anyone}");
    let receipt = for_seller["clips"].as_array().unwrap().iter().find(|c| c["kind"] == "receipt").unwrap();
    let one = path(&format!("/clips/{}", receipt["id"].as_str().unwrap()));
    assert_eq!(server.call("GET", &one, Some(&seller), None).await.1["id"], receipt["id"]);
    assert_eq!(server.call("GET", &one, None, None).await.0, 404, "a receipt is the seller's alone");
    // One node: no event is meant for other nodes, so none is refused on its way there.
    assert!(!server.log().contains("event relay behind"), "{}", server.log());
    assert!(
        daterange(&replay_playlist).is_some_and(|m| m.contains("END-DATE=")),
        "no pin in the replay:\n{replay_playlist}"
    );
    let (status, replay) = server.call("POST", &path("/viewers"), None, Some(json!({}))).await;
    assert_eq!((status, replay["replay"].as_bool()), (201, Some(true)));
    let session = replay["session_id"].as_str().unwrap();
    tokio::time::sleep(after).await;
    assert_eq!(server.call("POST", &path(&format!("/viewers/{session}/heartbeat")), None, None).await.0, 204);
    let (_, viewers) = server.call("GET", &path("/viewers"), None, None).await;
    assert_eq!(
        (viewers["peak"].as_i64(), viewers["unique"].as_i64(), viewers["replay_views"].as_i64()),
        (Some(2), Some(2), Some(1))
    );
    // Chat is over on a replay; reading it still works.
    assert_eq!(chat(&alice, "late").await.0, 409);
    assert_eq!(server.call("GET", &path("/chat"), None, None).await.0, 200);
    let (_, stats) = server.call("GET", &path("/stats"), Some(&seller), None).await;
    assert_eq!((stats["viewers_peak"].as_i64(), stats["replay_views"].as_i64()), (Some(2), Some(1)));
    assert_eq!(server.call("POST", &path("/pins"), Some(&seller), Some(product)).await.0, 409);
}

#[tokio::test(flavor = "multi_thread")]
async fn settings_roles_and_the_openapi_document() {
    let server = Server::start_with(&[]);
    let admin = server.user("admin", "admin");
    let seller = server.user("seller", "seller");
    let shop = server.user("shop", "shop");

    let (status, settings) = server.call("GET", "/api/v1/settings", Some(&admin), None).await;
    assert_eq!(status, 200);
    for field in [
        "reconnect_window_seconds",
        "reconnect_default_action",
        "rtmp_public_url",
        "max_bitrate_kbps",
        "segment_duration_seconds",
        "part_duration_seconds",
        "ll_hls",
        "playlist_window_segments",
        "ladder",
        "thumbnails_enabled",
        "thumbnail_interval_seconds",
        "chat_max_length",
        "chat_rate_limit_messages",
        "chat_rate_limit_seconds",
        "webhook_url",
        "webhook_secret",
    ] {
        assert!(settings.get(field).is_some(), "{field} missing from {settings}");
    }
    assert_eq!(server.call("GET", "/api/v1/settings", Some(&seller), None).await.0, 403);
    assert_eq!(server.call("PATCH", "/api/v1/settings", Some(&shop), Some(json!({"ll_hls": true}))).await.0, 403);
    for (patch, want) in [
        (json!({"part_duration_seconds": 2}), "part_duration_seconds must be 0.2 to 1"),
        (json!({"segment_duration_seconds": 0.2}), "segment_duration_seconds must be 0.5 to 10"),
        (
            json!({"ladder": [{"name": "720p", "width": 1280, "height": 720, "video_bitrate_kbps": 1}]}),
            "ladder[0].video_bitrate_kbps",
        ),
        (json!({"rtmp_public_url": "ftp://x"}), "rtmp_public_url"),
        (json!({"chat_max_length": 100000}), "chat_max_length"),
    ] {
        let (status, body) = server.call("PATCH", "/api/v1/settings", Some(&admin), Some(patch.clone())).await;
        assert_eq!(status, 400, "{patch}");
        assert!(body["error"]["message"].as_str().unwrap().contains(want), "{patch}: {body}");
    }
    let ladder = json!([{"name": "720p", "width": 1280, "height": 720, "video_bitrate_kbps": 2500},
                        {"name": "360p", "width": 640, "height": 360, "video_bitrate_kbps": 800}]);
    let patch = json!({"ll_hls": true, "part_duration_seconds": 0.25, "ladder": ladder,
        "rtmp_public_url": "rtmps://ingest.example.com:443/live", "chat_max_length": 10});
    let (status, saved) = server.call("PATCH", "/api/v1/settings", Some(&admin), Some(patch)).await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved["ladder"], ladder);
    let (_, again) = server.call("GET", "/api/v1/settings", Some(&admin), None).await;
    assert_eq!(again, saved);

    // The RTMP URL shown to sellers follows the setting.
    let stream = server.create_stream(&seller, "Hats").await;
    assert_eq!(stream["rtmp_url"], "rtmps://ingest.example.com:443/live");
    let id = stream["id"].as_str().unwrap();
    // Chat length follows the setting (chat opens while scheduled).
    let (status, body) = server
        .call("POST", &format!("/api/v1/streams/{id}/chat"), Some(&seller), Some(json!({"text": "01234567890"})))
        .await;
    assert_eq!(status, 400);
    assert!(body["error"]["message"].as_str().unwrap().contains("1 to 10"));
    // A shop cannot create streams; an order for an unknown stream is a 404.
    assert_eq!(server.call("POST", "/api/v1/streams", Some(&shop), Some(json!({"title": "x"}))).await.0, 403);
    let order = json!({"order_id": "o", "product_id": "p", "quantity": 1, "amount": 1, "currency": "EUR"});
    assert_eq!(server.call("POST", "/api/v1/streams/nope/orders", Some(&shop), Some(order)).await.0, 404);
    // Events need a WebSocket upgrade; a bad token is refused.
    assert_eq!(server.call("GET", &format!("/api/v1/streams/{id}/events"), None, None).await.0, 400);
    assert_eq!(server.call("GET", &format!("/api/v1/streams/{id}/events?ticket=bad"), None, None).await.0, 401);
    // A long-lived token has no place in a URL.
    assert_eq!(server.call("GET", &format!("/api/v1/streams/{id}/events?token={seller}"), None, None).await.0, 400);

    let (status, doc) = server.call("GET", "/api/v1/openapi.json", None, None).await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/streams/{id}/viewers",
        "/streams/{id}/chat",
        "/streams/{id}/pins",
        "/streams/{id}/orders",
        "/streams/{id}/events",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} undocumented");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn packaging_settings_apply_to_new_streams() {
    let server = Server::start_with(&[]);
    let admin = server.user("admin", "admin");
    let seller = server.user("seller", "seller");
    // Until an admin sets them, the settings show the server's own packaging configuration.
    let (_, settings) = server.call("GET", "/api/v1/settings", Some(&admin), None).await;
    assert_eq!((settings["ll_hls"].as_bool(), settings["part_duration_seconds"].as_f64()), (Some(true), Some(0.2)));
    assert_eq!(settings["segment_duration_seconds"], 2.0);

    let patch = json!({"segment_duration_seconds": 1.0, "ll_hls": false, "playlist_window_segments": 4, "thumbnails_enabled": false});
    let (status, body) = server.call("PATCH", "/api/v1/settings", Some(&admin), Some(patch)).await;
    assert_eq!(status, 200, "{body}");

    let created = server.create_stream(&seller, "One-second segments").await;
    let (id, pid, key) = (
        created["id"].as_str().unwrap(),
        created["playback_id"].as_str().unwrap(),
        created["stream_key"].as_str().unwrap(),
    );
    let mut publisher = ffmpeg_publish_gop(&format!("{}/{key}", server.rtmp), 20, 30);
    server.wait_for_status(id, "live", Duration::from_secs(10)).await;
    let playlist = server.wait_for_segments(pid, 6, Duration::from_secs(20)).await;
    let text = server.media_playlist(pid).await.unwrap();
    assert_eq!(playlist.target_duration, 1, "{text}");
    assert!(playlist.segments.len() <= 4, "the live window holds 4 segments:\n{text}");
    assert!(!text.contains("#EXT-X-PART"), "LL-HLS is off for this stream:\n{text}");
    assert_eq!(server.get_text(&format!("/hls/{pid}/poster.jpg")).await.0, 404, "posters are off");
    let _ = publisher.kill().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_publisher_far_over_the_bit_rate_cap_is_disconnected() {
    let server = Server::start_with(&[]);
    let admin = server.user("admin", "admin");
    let seller = server.user("seller", "seller");
    let (status, body) =
        server.call("PATCH", "/api/v1/settings", Some(&admin), Some(json!({"max_bitrate_kbps": 100}))).await;
    assert_eq!(status, 200, "{body}");
    let created = server.create_stream(&seller, "Too much").await;
    let (id, key) = (created["id"].as_str().unwrap(), created["stream_key"].as_str().unwrap());
    // ~900 kbit/s against a 100 kbit/s cap (150 with its burst allowance).
    let publisher = ffmpeg_publish(&format!("{}/{key}", server.rtmp), 30);
    server.wait_for_status(id, "live", Duration::from_secs(10)).await;
    let started = Instant::now();
    let out = tokio::time::timeout(Duration::from_secs(15), publisher.wait_with_output())
        .await
        .expect("publisher disconnected");
    assert!(!out.unwrap().status.success(), "the publisher was cut off, not finished");
    assert!(started.elapsed() >= Duration::from_secs(4), "disconnected before the grace period");
    server.wait_for_status(id, "reconnecting", Duration::from_secs(5)).await;
    assert!(server.log().contains("over the bit rate cap"));
    let (_, stats) = server.call("GET", &format!("/api/v1/streams/{id}/stats"), Some(&seller), None).await;
    let refusal = &stats["last_refusal"];
    assert_eq!(refusal["reason"], "bitrate", "{stats}");
    assert!(refusal["detail"].as_str().unwrap().contains("over the cap of 100 kbit/s"), "{refusal}");
    assert_eq!(refusal["fix"], "OBS: Settings → Output → Video Bitrate: at most 100 Kbps");
}

/// The seller's last refusal, once it is recorded (some are recorded off the refusal's path).
async fn last_refusal(server: &Server, id: &str, token: &str, reason: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, stats) = server.call("GET", &format!("/api/v1/streams/{id}/stats"), Some(token), None).await;
        assert_eq!(status, 200, "{stats}");
        if stats["last_refusal"]["reason"] == reason {
            return stats["last_refusal"].clone();
        }
        assert!(Instant::now() < deadline, "no {reason} refusal: {stats}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Refusals a seller can fix are shown to the seller (stats; the studio shows the same), never
/// to the publisher, who gets only the protocol's refusal, nor to anyone else.
#[tokio::test(flavor = "multi_thread")]
async fn the_seller_is_told_why_a_publish_was_refused() {
    let server = Server::start_with(&[]);
    let seller = server.user("seller", "seller");
    let other = server.user("other", "seller");
    let later = (chrono::Utc::now() + chrono::Duration::hours(5)).to_rfc3339();
    let (status, early) = server
        .call("POST", "/api/v1/streams", Some(&seller), Some(json!({"title": "Later", "scheduled_at": later})))
        .await;
    assert_eq!(status, 201, "{early}");
    let (early_id, early_key) = (early["id"].as_str().unwrap(), early["stream_key"].as_str().unwrap());
    let output = publish_output(&format!("{}/{early_key}", server.rtmp)).await;
    assert!(output.contains("invalid stream key"), "the publisher learns no more: {output}");
    let refusal = last_refusal(&server, early_id, &seller, "key_window").await;
    assert!(refusal["detail"].as_str().unwrap().starts_with("the key works from "), "{refusal}");
    assert!(refusal["fix"].as_str().unwrap().contains("window"), "{refusal}");
    assert!(chrono::DateTime::parse_from_rfc3339(refusal["at"].as_str().unwrap()).is_ok(), "{refusal}");
    let (status, _) = server.call("GET", &format!("/api/v1/streams/{early_id}/stats"), Some(&other), None).await;
    assert_eq!(status, 403, "another seller sees nothing");

    // An ended stream's key.
    let over = server.create_stream(&seller, "Over").await;
    let (over_id, over_key) = (over["id"].as_str().unwrap(), over["stream_key"].as_str().unwrap());
    let (status, _) = server.call("POST", &format!("/api/v1/streams/{over_id}/cancel"), Some(&seller), None).await;
    assert_eq!(status, 200);
    let output = publish_output(&format!("{}/{over_key}", server.rtmp)).await;
    assert!(output.contains("invalid stream key"), "{output}");
    let refusal = last_refusal(&server, over_id, &seller, "stream_over").await;
    assert!(refusal["fix"].as_str().unwrap().starts_with("Create a new stream in the studio"), "{refusal}");

    // Wrong keys from this address (five a minute by default), then the right one: refused,
    // and its seller learns why. (On a server of its own: the refusals above counted too.)
    let server = Server::start_with(&[]);
    let seller = server.user("seller", "seller");
    let right = server.create_stream(&seller, "Right key").await;
    let (right_id, right_key) = (right["id"].as_str().unwrap(), right["stream_key"].as_str().unwrap());
    for n in 0..5 {
        let output = publish_output(&format!("{}/sk_mistyped{n}", server.rtmp)).await;
        assert!(output.contains("invalid stream key") && !output.contains("too many"), "try {n}: {output}");
    }
    let output = publish_output(&format!("{}/{right_key}", server.rtmp)).await;
    assert!(output.contains("too many invalid stream keys from this address"), "{output}");
    let refusal = last_refusal(&server, right_id, &seller, "too_many_wrong_keys").await;
    assert!(refusal["detail"].as_str().unwrap().contains("127.0.0.1"), "{refusal}");
    assert!(refusal["fix"].as_str().unwrap().contains("Stream Key"), "{refusal}");
    assert_eq!(server.stream(right_id, Some(&seller)).await["status"], "scheduled", "the right key did not publish");
}

#[tokio::test(flavor = "multi_thread")]
async fn viewer_sign_in_by_the_shop_and_as_a_guest() {
    let server = Server::start_with(&[]);
    let admin = server.user("admin", "admin");
    let shop = server.user("shop", "shop");
    let seller = server.user("seller", "seller");
    let stream = server.create_stream(&seller, "identity").await;
    let id = stream["id"].as_str().unwrap();

    // The shop exchanges its token for a viewer token of one of its users.
    let body = json!({"user_id": "customer-42", "display_name": "Grace"});
    let (status, first) = server.call("POST", "/api/v1/viewer-tokens", Some(&shop), Some(body.clone())).await;
    assert_eq!(status, 201, "{first}");
    let viewer_token = first["token"].as_str().unwrap().to_owned();
    assert!(first["expires_at"].is_string());
    let (status, me) = server.call("GET", "/api/v1/me", Some(&viewer_token), None).await;
    assert_eq!((status, me["role"].as_str(), me["name"].as_str()), (200, Some("viewer"), Some("Grace")));
    // The same shop user is the same viewer: one like, whichever token likes.
    let (_, second) = server.call("POST", "/api/v1/viewer-tokens", Some(&shop), Some(body)).await;
    assert_eq!(second["user"]["id"], first["user"]["id"]);
    let like = Some(json!({"reaction": "like"}));
    for token in [&viewer_token, second["token"].as_str().unwrap()] {
        let (status, _) =
            server.call("PUT", &format!("/api/v1/streams/{id}/reaction"), Some(token), like.clone()).await;
        assert_eq!(status, 200);
    }
    assert_eq!(server.stream(id, None).await["likes"], 1);
    // Only a shop signs viewers in; bad input is refused and nothing is made.
    for token in [&seller, &admin, &viewer_token] {
        let body = Some(json!({"user_id": "x", "display_name": "X"}));
        let (status, _) = server.call("POST", "/api/v1/viewer-tokens", Some(token), body).await;
        assert_eq!(status, 403);
    }
    let (status, _) =
        server.call("POST", "/api/v1/viewer-tokens", None, Some(json!({"user_id": "x", "display_name": "X"}))).await;
    assert_eq!(status, 401);
    for bad in [
        json!({"user_id": "", "display_name": "X"}),
        json!({"user_id": "x", "display_name": "  "}),
        json!({"user_id": "x", "display_name": "a".repeat(101)}),
        json!({"user_id": "x", "display_name": "X", "role": "admin"}),
    ] {
        let (status, body) = server.call("POST", "/api/v1/viewer-tokens", Some(&shop), Some(bad)).await;
        assert!(status == 400 || status == 422, "{status} {body}");
        assert!(body["error"]["message"].is_string());
    }

    // Guests sign in by name while the admin allows it, a bounded number per address.
    let guest = |name: &str| json!({ "display_name": name });
    let (status, ada) = server.call("POST", "/api/v1/guest-tokens", None, Some(guest("Ada"))).await;
    assert_eq!(status, 201, "{ada}");
    let (status, _) = server
        .call("POST", &format!("/api/v1/streams/{id}/chat"), ada["token"].as_str(), Some(json!({"text": "hi"})))
        .await;
    assert_eq!(status, 201, "a guest may chat");
    let (status, body) = server.call("POST", "/api/v1/guest-tokens", None, Some(guest(""))).await;
    assert_eq!(status, 400, "{body}");
    let mut refused = 0;
    for n in 0..25 {
        let (status, _) = server.call("POST", "/api/v1/guest-tokens", None, Some(guest(&format!("g{n}")))).await;
        if status == 429 {
            refused += 1;
        } else {
            assert_eq!(status, 201);
        }
    }
    assert_eq!(refused, 6, "20 guest sign-ins an hour per address (1 made before, 1 refused as bad)");
    let (status, _) =
        server.call("PATCH", "/api/v1/settings", Some(&admin), Some(json!({"guest_sign_in": false}))).await;
    assert_eq!(status, 200);
    let (status, body) = server.call("POST", "/api/v1/guest-tokens", None, Some(guest("Late"))).await;
    assert_eq!(status, 403, "{body}");

    // Lists: a seller's own streams (keys only in one stream's view), every stream for admins only.
    let (status, mine) = server.call("GET", "/api/v1/streams?scope=mine", Some(&seller), None).await;
    assert_eq!(status, 200);
    assert_eq!(mine["streams"].as_array().unwrap().len(), 1);
    assert!(mine["streams"][0].get("stream_key").is_none_or(Value::is_null));
    assert_eq!(mine["streams"][0]["seller"]["name"], "seller");
    let (status, _) = server.call("GET", "/api/v1/streams?scope=all", Some(&seller), None).await;
    assert_eq!(status, 403);
    let (status, _) = server.call("GET", "/api/v1/streams?scope=mine", None, None).await;
    assert_eq!(status, 401);
    let (status, all) = server.call("GET", "/api/v1/streams?scope=all", Some(&admin), None).await;
    assert_eq!(status, 200);
    assert!(all["streams"].as_array().unwrap().len() >= 2, "the seeded demo stream and this one");
    let (_, public) = server.call("GET", "/api/v1/streams", None, None).await;
    assert!(public["streams"].as_array().unwrap().iter().all(|s| s.get("stream_key").is_none()));
    server.assert_log_free_of(&[&viewer_token, ada["token"].as_str().unwrap(), &shop]);
}

/// Parses an iCalendar file with Debian's python3-icalendar; returns its one event's
/// (SUMMARY, DTSTART as RFC 3339, URL, STATUS).
fn parse_calendar(text: &str) -> Vec<String> {
    let script = "import sys, icalendar\n\
                  cal = icalendar.Calendar.from_ical(sys.stdin.buffer.read())\n\
                  events = [c for c in cal.walk() if c.name == 'VEVENT']\n\
                  assert len(events) == 1, events\n\
                  e = events[0]\n\
                  print(str(e['SUMMARY']))\n\
                  print(e.decoded('DTSTART').isoformat())\n\
                  print(str(e['URL']))\n\
                  print(str(e['STATUS']))\n";
    let mut child = std::process::Command::new("/usr/bin/python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 (make test-deps installs python3-icalendar)");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python3-icalendar refused it: {}\n{text}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().map(str::to_owned).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn reminders_reach_the_site_the_shop_and_the_seller() {
    let server = Server::start_with(&[]);
    let admin = server.user("admin", "admin");
    let seller = server.user("seller", "seller");
    let shop = server.user("shop", "shop");
    let alice = server.user("alice", "viewer");
    let hooks = webhook_receiver().await;
    let settings = json!({"webhook_url": hooks.url, "webhook_secret": SECRET, "allow_private_webhooks": true});
    assert_eq!(server.call("PATCH", "/api/v1/settings", Some(&admin), Some(settings)).await.0, 200);
    let body = json!({"user_id": "customer-7", "display_name": "Grace"});
    let (status, grace) = server.call("POST", "/api/v1/viewer-tokens", Some(&shop), Some(body)).await;
    assert_eq!(status, 201, "{grace}");
    let grace = grace["token"].as_str().unwrap().to_owned();
    let shop_id = server.user_id(&shop).await;

    // Bad reminder settings are refused.
    let starts = chrono::Utc::now() + chrono::Duration::seconds(75);
    for bad in [
        json!({"title": "x", "scheduled_at": starts, "remind_minutes_before": 0}),
        json!({"title": "x", "scheduled_at": starts, "remind_minutes_before": 10081}),
        json!({"title": "x", "remind_minutes_before": 5}),
    ] {
        let (status, answer) = server.call("POST", "/api/v1/streams", Some(&seller), Some(bad.clone())).await;
        assert_eq!(status, 400, "{bad}: {answer}");
    }
    // Starts in 75 s; subscribers hear a minute before, so in about 15 s.
    let mut site = open_site_events(&server).await;
    let hello = next_json(&mut site).await;
    assert_eq!(hello["type"], "hello");
    let body = json!({"title": "Spring collection", "description": "New in, 20% off; today only",
                      "scheduled_at": starts, "remind_minutes_before": 1});
    let (status, created) = server.call("POST", "/api/v1/streams", Some(&seller), Some(body)).await;
    assert_eq!(status, 201, "{created}");
    let (id, pid, key) = (
        created["id"].as_str().unwrap(),
        created["playback_id"].as_str().unwrap(),
        created["stream_key"].as_str().unwrap(),
    );
    assert_eq!((created["remind_minutes_before"].as_i64(), created["reminder_count"].as_i64()), (Some(1), Some(0)));
    let reminder = format!("/api/v1/streams/{id}/reminder");
    for token in [&grace, &alice, &grace] {
        let (status, answer) = server.call("PUT", &reminder, Some(token), None).await;
        assert_eq!((status, &answer), (200, &json!({"reminder": true})));
    }
    assert_eq!(server.call("PUT", &reminder, None, None).await.0, 401);
    assert_eq!(server.call("GET", &reminder, Some(&alice), None).await.1, json!({"reminder": true}));
    assert_eq!(server.stream(id, Some(&seller)).await["reminder_count"], 2, "asking twice counts once");
    for token in [None, Some(alice.as_str())] {
        let seen = server.stream(id, token).await;
        assert!(seen.get("reminder_count").is_none() && seen.get("remind_minutes_before").is_none(), "{seen}");
    }
    // Undone and done again.
    assert_eq!(server.call("DELETE", &reminder, Some(&alice), None).await.1, json!({"reminder": false}));
    assert_eq!(server.call("GET", &reminder, Some(&alice), None).await.1, json!({"reminder": false}));
    assert_eq!(server.stream(id, Some(&seller)).await["reminder_count"], 1);
    assert_eq!(server.call("PUT", &reminder, Some(&alice), None).await.0, 200);

    // The calendar file: valid iCalendar, to anyone.
    let response = reqwest::get(server.url(&format!("/api/v1/streams/{id}/calendar.ics"))).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/calendar; charset=utf-8");
    let text = response.text().await.unwrap();
    assert!(text.contains("DESCRIPTION:New in\\, 20% off\\; today only"), "{text}");
    let event = parse_calendar(&text);
    assert_eq!(event[0], "Spring collection");
    let at = chrono::DateTime::parse_from_rfc3339(&event[1]).unwrap();
    assert_eq!(at.timestamp(), starts.timestamp());
    assert_eq!(event[2], server.url(&format!("/watch/{pid}")));
    assert_eq!(event[3], "CONFIRMED");

    // A cancelled stream's calendar file stays, to tell calendars.
    let body = json!({"title": "Called off", "scheduled_at": starts + chrono::Duration::days(2)});
    let (_, off) = server.call("POST", "/api/v1/streams", Some(&seller), Some(body)).await;
    let off_id = off["id"].as_str().unwrap();
    assert_eq!(server.call("POST", &format!("/api/v1/streams/{off_id}/cancel"), Some(&seller), None).await.0, 200);
    let text = server.get(&format!("/api/v1/streams/{off_id}/calendar.ics")).await.text().await.unwrap();
    assert_eq!(parse_calendar(&text)[3], "CANCELLED", "{text}");

    // A minute before: the site socket and the shop hear it, with the shop's own user ids.
    let soon = next_json(&mut site).await;
    assert_eq!((soon["type"].as_str(), soon["moment"].as_str()), (Some("reminder"), Some("soon")), "{soon}");
    assert_eq!((soon["stream_id"].as_str(), soon["minutes_before"].as_i64()), (Some(id), Some(1)));
    assert_eq!(soon["title"], "Spring collection");
    assert_eq!(soon["seller"], "seller");
    assert!(soon.get("subscribers").is_none(), "subscribers are the shop's business: {soon}");
    let hook = hooks.wait("stream.reminder", id, Duration::from_secs(15)).await;
    assert_eq!(hook["moment"], "soon");
    assert_eq!(hook["subscribers"], json!([{"shop_id": shop_id, "user_id": "customer-7"}]), "{hook}");
    assert_eq!(
        (hook["subscriber_count"].as_i64(), hook["part"].as_i64(), hook["parts"].as_i64()),
        (Some(1), Some(1), Some(1))
    );

    // Live: "live now" on the site socket, once, and the shop's webhook.
    let ffmpeg = ffmpeg_publish(&format!("{}/{key}", server.rtmp), 6);
    server.wait_for_status(id, "live", Duration::from_secs(10)).await;
    let live = next_json(&mut site).await;
    assert_eq!((live["moment"].as_str(), live["stream_id"].as_str()), (Some("live"), Some(id)), "{live}");
    assert_eq!(live["watch_url"], server.url(&format!("/watch/{pid}")));
    let deadline = Instant::now() + Duration::from_secs(15);
    let live_hook = loop {
        let found = hooks.received.lock().unwrap().iter().find_map(|(_, body)| {
            let value: Value = serde_json::from_slice(body).ok()?;
            (value["type"] == "stream.reminder" && value["moment"] == "live").then_some(value)
        });
        if let Some(found) = found {
            break found;
        }
        assert!(Instant::now() < deadline, "no live reminder webhook");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(live_hook["subscribers"][0]["user_id"], "customer-7");
    // On air: nothing more to be reminded of.
    assert_eq!(server.call("PUT", &reminder, Some(&grace), None).await.0, 409);
    assert!(ffmpeg.wait_with_output().await.unwrap().status.success());
    server.wait_for_status(id, "reconnecting", Duration::from_secs(10)).await;
    let sent = server.log().lines().filter(|l| l.contains("reminder sent")).count();
    assert_eq!(sent, 2, "each reminder once:\n{}", server.log());
}

async fn open_site_events(server: &Server) -> common::events::Socket {
    let url = format!("{}/api/v1/events", server.http.replacen("http://", "ws://", 1));
    let (socket, response) = tokio_tungstenite::connect_async(url).await.expect("WebSocket connects");
    assert_eq!(response.status(), 101);
    socket
}

/// The socket's next JSON message (pings aside), within 30 s.
async fn next_json(socket: &mut common::events::Socket) -> Value {
    use futures_util::StreamExt;
    loop {
        let message = tokio::time::timeout(Duration::from_secs(30), socket.next())
            .await
            .expect("a message within 30 s")
            .expect("the socket is open")
            .expect("a message");
        if let tokio_tungstenite::tungstenite::Message::Text(text) = message {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

/// The harness's OpenAPI check (every `call`'s answer goes through it) refuses what does not
/// match: without this, a checker that passes everything would pass every test.
#[test]
fn the_openapi_checker_refuses_what_does_not_match() {
    use common::openapi::{find_route, validate};
    let schema = json!({"type": "object", "required": ["a"], "properties": {
        "a": {"type": "integer", "minimum": 1}, "b": {"oneOf": [{"type": "string", "format": "date-time"}, {"type": "null"}]},
        "c": {"type": "array", "items": {"enum": ["x", "y"]}, "maxItems": 2}}});
    assert!(validate(&schema, &json!({"a": 1, "b": null, "c": ["x"]}), "$").is_ok());
    assert!(validate(&schema, &json!({"a": 1, "b": "2026-12-03T10:00:00Z"}), "$").is_ok());
    for bad in [
        json!({}),
        json!({"a": 0}),
        json!({"a": 1.5}),
        json!({"a": 1, "b": "yesterday"}),
        json!({"a": 1, "c": ["z"]}),
        json!({"a": 1, "c": ["x", "y", "x"]}),
        json!({"a": 1, "d": true}),
        json!([1]),
    ] {
        assert!(validate(&schema, &bad, "$").is_err(), "{bad} passed");
    }
    assert_eq!(find_route("/streams/abc/stats").map(|(t, _)| t), Some("/streams/{id}/stats"));
    assert_eq!(find_route("/streams").map(|(t, _)| t), Some("/streams"));
    assert_eq!(find_route("/nothing/here"), None);
}
