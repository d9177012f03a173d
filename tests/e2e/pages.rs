//! The pages in a real browser: Debian's headless Chromium driven by playwright-core (npm),
//! against the built binary with real ffmpeg publishers. The scenario itself is
//! api/web/tests/pages.mjs; this harness starts what it needs, hands it the addresses and
//! tokens, and checks the server side afterwards. Screenshots land in target/screenshots/.

use crate::common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use serde_json::json;

const CHROMIUM: &str = "/usr/bin/chromium";

fn web_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("api/web")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_in_a_real_browser() {
    assert!(
        std::path::Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: `make test` installs Debian's chromium package"
    );
    assert!(
        web_dir().join("node_modules/playwright-core").exists(),
        "playwright-core is missing: `make web` installs the pages' npm packages"
    );
    let server = Server::start_with(&[]);
    let (status, hls_js) = server.get_text("/assets/hls.min.js").await;
    assert_eq!(status, 200, "hls.js is not built into the binary (`make web`, then rebuild)");
    assert!(hls_js.len() > 100_000);

    let seller = server.user("Ada's Boutique", "seller");
    let admin = server.user("ops", "admin");
    let main = server.create_stream(&seller, "Spring collection live").await;
    let other = server.create_stream(&seller, "Second room").await;
    let later = (chrono::Utc::now() + chrono::Duration::minutes(210)).to_rfc3339();
    let (status, upcoming) = server
        .call("POST", "/api/v1/streams", Some(&seller), Some(json!({"title": "Autumn preview", "scheduled_at": later})))
        .await;
    assert_eq!(status, 201, "{upcoming}");
    let key = |s: &serde_json::Value| s["stream_key"].as_str().unwrap().to_owned();
    let (main_id, main_pid) = (main["id"].as_str().unwrap(), main["playback_id"].as_str().unwrap());
    let other_id = other["id"].as_str().unwrap();

    // OBS tries the upcoming stream's key hours early: refused; the studio says why (below).
    let early = publish_output(&format!("{}/{}", server.rtmp, key(&upcoming))).await;
    assert!(early.contains("invalid stream key"), "a key hours before its window published: {early}");

    let mut publisher = ffmpeg_publish(&format!("{}/{}", server.rtmp, key(&main)), 300);
    let mut second = ffmpeg_publish(&format!("{}/{}", server.rtmp, key(&other)), 300);
    server.wait_for_status(main_id, "live", Duration::from_secs(20)).await;
    server.wait_for_status(other_id, "live", Duration::from_secs(20)).await;
    server.wait_for_segments(main_pid, 3, Duration::from_secs(30)).await;
    // The first poster is written from the first keyframes: the cards show it.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while server.get(&format!("/hls/{main_pid}/poster.jpg")).await.status() != 200 {
        assert!(std::time::Instant::now() < deadline, "no poster within 20 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A shop signs its user in and hands the watch page the viewer token in the fragment.
    let shop = server.user("the shop", "shop");
    server.link_shop(&admin, &shop, &seller).await;
    let body = json!({"user_id": "customer-7", "display_name": "Linus from the shop"});
    let (status, shop_viewer) = server.call("POST", "/api/v1/viewer-tokens", Some(&shop), Some(body)).await;
    assert_eq!(status, 201, "{shop_viewer}");

    let screenshots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("../screenshots");
    std::fs::create_dir_all(&screenshots).unwrap();
    let scenario = tokio::process::Command::new("node")
        .arg("tests/pages.mjs")
        .current_dir(web_dir())
        .env("HAWKER_URL", &server.http)
        .env("SELLER_TOKEN", &seller)
        .env("ADMIN_TOKEN", &admin)
        .env("STREAM_ID", main_id)
        // The scenario drops this publisher and publishes again on the same key.
        .env("PUBLISHER_PID", publisher.id().expect("ffmpeg runs").to_string())
        .env("PUBLISH_URL", format!("{}/{}", server.rtmp, key(&main)))
        .env("PLAYBACK_ID", main_pid)
        .env("OTHER_STREAM_ID", other_id)
        .env("UPCOMING_ID", upcoming["id"].as_str().unwrap())
        .env("SHOP_VIEWER_TOKEN", shop_viewer["token"].as_str().unwrap())
        .env("SHOP_TOKEN", &shop)
        .env("CHROMIUM", CHROMIUM)
        .env("SCREENSHOT_DIR", &screenshots)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run node");
    let out = tokio::time::timeout(Duration::from_secs(300), scenario.wait_with_output())
        .await
        .expect("the browser scenario finished within 300 s")
        .expect("node ran");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{stdout}");
    assert!(out.status.success(), "browser scenario failed:\n{stdout}\n{stderr}\nserver log:\n{}", server.log());

    // What the browser did, as the server holds it.
    let stream = server.stream(main_id, Some(&seller)).await;
    assert_eq!(stream["status"], "archived", "the studio's End → Save archived the stream");
    assert_eq!(stream["likes"], 1, "one like, from the first viewer");
    let (_, chat) = server.call("GET", &format!("/api/v1/streams/{main_id}/chat"), None, None).await;
    let texts: Vec<&str> = chat["messages"].as_array().unwrap().iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert!(texts.contains(&"Is the blue one in stock?"), "{texts:?}");
    let (_, pins) = server.call("GET", &format!("/api/v1/streams/{main_id}/pins?all=true"), None, None).await;
    assert_eq!(pins["pins"][0]["product_id"], "sku-blue-dress", "{pins}");
    let forced = server.stream(other_id, Some(&admin)).await;
    assert_eq!(forced["status"], "archived", "the admin's force-end (save)");
    let (_, settings) = server.call("GET", "/api/v1/settings", Some(&admin), None).await;
    assert_eq!(settings["chat_max_length"], 300, "the admin page saved the valid value only");

    let _ = publisher.kill().await;
    let _ = second.kill().await;
    // The studio reset the upcoming stream's key: the old one and the new one stay secret.
    let reset = server.stream(upcoming["id"].as_str().unwrap(), Some(&seller)).await;
    assert_ne!(key(&reset), key(&upcoming), "the studio's Reset key issued a new key");
    let keys = [key(&main), key(&other), key(&upcoming), key(&reset)];
    let tokens = [seller.as_str(), admin.as_str(), shop.as_str(), shop_viewer["token"].as_str().unwrap()];
    server.assert_log_free_of(&keys.iter().map(String::as_str).chain(tokens).collect::<Vec<_>>());
}

/// S3 `redirect` delivery in a real browser: the watch page plays a replay whose segments the
/// bucket serves
/// (presigned URLs, the bucket answering CORS by the README's rule), its Content-Security-Policy
/// allowing the bucket's origin; a returning viewer takes hls.js from its cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watch_page_plays_from_the_bucket_in_redirect_mode() {
    let s3 = common::s3::S3Server::start();
    let bucket = common::s3::BucketCors::start(&s3);
    let config = s3.config_file_at("redirect", &bucket.endpoint);
    let server = Server::start_with(&["--config", config.to_str().unwrap()]);
    let seller = server.user("seller", "seller");
    let created = server.create_stream(&seller, "From the bucket").await;
    let (id, pid) = (created["id"].as_str().unwrap(), created["playback_id"].as_str().unwrap());
    let publisher = ffmpeg_publish(&format!("{}/{}", server.rtmp, created["stream_key"].as_str().unwrap()), 8);
    server.wait_for_status(id, "live", Duration::from_secs(20)).await;
    assert!(publisher.wait_with_output().await.unwrap().status.success());
    let (status, ended) =
        server.call("POST", &format!("/api/v1/streams/{id}/end"), Some(&seller), Some(json!({"action": "save"}))).await;
    assert_eq!(status, 200, "{ended}");
    // The replay's segments all in the bucket: the browser gets every one by redirect.
    let replay = check_media_playlist(&server.media_playlist(pid).await.expect("the replay's playlist"));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !replay.segments.iter().all(|s| s3.object_path(&format!("streams/{pid}/v0/{}", s.uri)).exists()) {
        assert!(std::time::Instant::now() < deadline, "the replay's segments reached the bucket within 20 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let scenario = tokio::process::Command::new("node")
        .arg("tests/redirect.mjs")
        .current_dir(web_dir())
        .env("HAWKER_URL", &server.http)
        .env("PLAYBACK_ID", pid)
        .env("BUCKET_ORIGIN", &bucket.endpoint)
        .env("CHROMIUM", CHROMIUM)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), scenario)
        .await
        .expect("the browser scenario finished within 120 s")
        .expect("node ran");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{stdout}");
    assert!(out.status.success(), "browser scenario failed:\n{stdout}\n{stderr}\nserver log:\n{}", server.log());
}
