//! RTMPS publishing, the seller's ingest health and the Prometheus metrics.

use crate::common;

use std::time::Duration;

use common::*;

#[tokio::test(flavor = "multi_thread")]
async fn rtmps_publish_with_health_and_metrics() {
    let server =
        Server::start_with(&["--tls-self-signed", "--rtmps", "127.0.0.1:0", "--metrics-token", "scrape-secret-123"]);
    let rtmps = server.rtmps.clone().expect("an RTMPS listener");
    let seller = server.user("seller", "seller");
    let other = server.user("other", "seller");
    let created = server.create_stream(&seller, "Encrypted").await;
    let (id, pid, key) = (
        created["id"].as_str().unwrap(),
        created["playback_id"].as_str().unwrap(),
        created["stream_key"].as_str().unwrap(),
    );
    assert_eq!(created["rtmps_url"], rtmps.as_str());

    let wrong = ffmpeg_publish(&format!("{rtmps}/sk_{}", "B".repeat(43)), 2).wait_with_output().await.unwrap();
    assert!(!wrong.status.success(), "a wrong key was accepted over RTMPS");

    let mut publisher = ffmpeg_publish(&format!("{rtmps}/{key}"), 30);
    server.wait_for_status(id, "live", Duration::from_secs(10)).await;
    // Let a few seconds of media through, so rates and keyframe intervals exist.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let playlist = loop {
        if let Some(text) = server.media_playlist(pid).await {
            let playlist = parse_media(&text);
            if playlist.segments.len() >= 2 {
                break playlist;
            }
        }
        assert!(std::time::Instant::now() < deadline, "no segments over RTMPS");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    server.check_segments_decode(pid, &playlist).await;
    validate_hls(&server, pid).await;

    let (status, stats) = server.call("GET", &format!("/api/v1/streams/{id}/stats"), Some(&seller), None).await;
    assert_eq!(status, 200, "{stats}");
    let ingest = &stats["ingest"];
    assert_eq!(ingest["connected"], true, "{stats}");
    assert!(ingest["bitrate_in_bps"].as_u64().unwrap() > 300_000, "{stats}");
    assert!(ingest["bitrate_out_bps"].as_u64().unwrap() > 300_000, "{stats}");
    assert!(ingest["keyframes"].as_u64().unwrap() >= 2, "{stats}");
    assert_eq!(ingest["keyframe_interval_ms"], 2000, "{stats}");
    let fps = ingest["fps"].as_f64().unwrap();
    assert!((20.0..=40.0).contains(&fps), "fps {fps}");
    assert_eq!(stats["reconnects"], 0);
    assert_eq!(server.call("GET", &format!("/api/v1/streams/{id}/stats"), Some(&other), None).await.0, 403);
    assert_eq!(server.call("GET", &format!("/api/v1/streams/{id}/stats"), None, None).await.0, 401);

    // Without the scraper's token: refused; with it, each stream's ingest health too.
    assert_eq!(server.get("/metrics").await.status(), 401);
    let wrong = server.client.get(server.url("/metrics")).bearer_auth("scrape-secret-12").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    let response = server.client.get(server.url("/metrics")).bearer_auth("scrape-secret-123").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let metrics = response.text().await.unwrap();
    let sample = |name: &str| -> f64 {
        let line = metrics.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name} in\n{metrics}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert!(sample(&format!("hawker_stream_ingest_bitrate_bps{{stream=\"{id}\"}}")) > 300_000.0);
    assert_eq!(sample(&format!("hawker_stream_publisher_connected{{stream=\"{id}\"}}")), 1.0);
    assert_eq!(sample("hawker_ingest_publishes_active"), 1.0);
    assert!(sample("hawker_ingest_publishes_refused_total{reason=\"bad_key\"}") >= 1.0);
    assert!(!metrics.contains(key), "a key in the metrics");
    // A viewer who joined and beat is counted on the node, per stream.
    let (status, joined) =
        server.call("POST", &format!("/api/v1/streams/{id}/viewers"), None, Some(serde_json::json!({}))).await;
    assert_eq!(status, 201, "{joined}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let beat = format!("/api/v1/streams/{id}/viewers/{}/heartbeat", joined["session_id"].as_str().unwrap());
    assert_eq!(server.call("POST", &beat, None, None).await.0, 204);
    let viewers = format!("hawker_stream_viewers{{stream=\"{id}\"}}");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let response = server.client.get(server.url("/metrics")).bearer_auth("scrape-secret-123").send().await.unwrap();
        let page = response.text().await.unwrap();
        if page.lines().any(|l| l.starts_with(&viewers)) && metric(&page, &viewers) == 1.0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no viewer in the metrics:\n{page}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let _ = publisher.kill().await;
    server.wait_for_status(id, "reconnecting", Duration::from_secs(5)).await;
    let (_, stats) = server.call("GET", &format!("/api/v1/streams/{id}/stats"), Some(&seller), None).await;
    assert_eq!(stats["ingest"]["connected"], false, "{stats}");
    server.assert_log_free_of(&[key]);
}

/// What an operator runs it with: readiness for the load balancer, one JSON log line per
/// request (no ids, queries or tokens), the build in the metrics.
#[tokio::test(flavor = "multi_thread")]
async fn ready_and_logged_as_an_operator_needs() {
    let server = Server::start_with(&["--log-format", "json", "--access-log"]);
    let seller = server.user("seller", "seller");
    let created = server.create_stream(&seller, "Logged").await;
    let id = created["id"].as_str().unwrap();

    let ready = server.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    let ready: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!((&ready["checks"]["database"], &ready["checks"]["store"]), (&"ok".into(), &"ok".into()), "{ready}");

    assert_eq!(server.get(&format!("/api/v1/streams/{id}?token=query-secret-42")).await.status(), 200);
    assert_eq!(server.get("/no/such/page").await.status(), 404);
    // Any token is a method to HTTP: an unknown one is counted as `other`, not as a new series.
    for (method, path) in [("PURGE", "/no/such/page"), ("PURGE2", "/no/such/page"), ("PURGE3", "/healthz")] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        server.client.request(method, server.url(path)).send().await.unwrap();
    }
    let metrics = server.get("/metrics").await.text().await.unwrap();
    assert!(!metrics.contains("PURGE"), "{metrics}");
    assert_eq!(
        metric(&metrics, "hawker_http_requests_total{method=\"other\",route=\"(no route)\",status=\"404\"}"),
        2.0
    );
    assert_eq!(metric(&metrics, "hawker_http_requests_total{method=\"other\",route=\"/healthz\",status=\"405\"}"), 1.0);
    assert_eq!(metric(&metrics, &format!("hawker_build_info{{version=\"{}\"}}", env!("CARGO_PKG_VERSION"))), 1.0);
    // Requests by route template and status, with their durations; the process's own figures.
    let labels = "method=\"GET\",route=\"/api/v1/streams/{id}\",status=\"200\"";
    let answered = metric(&metrics, &format!("hawker_http_requests_total{{{labels}}}"));
    assert!(answered >= 1.0, "{metrics}");
    assert_eq!(metric(&metrics, &format!("hawker_http_request_duration_seconds_count{{{labels}}}")), answered);
    let within_10s = format!("hawker_http_request_duration_seconds_bucket{{{labels},le=\"10\"}}");
    assert_eq!(metric(&metrics, &within_10s), answered);
    assert!(metric(&metrics, "hawker_http_requests_total{method=\"GET\",route=\"(no route)\",status=\"404\"}") >= 1.0);
    assert!(!metrics.contains(id), "a stream id in the unprotected metrics");
    assert!(metric(&metrics, "process_resident_memory_bytes") > 1e6, "{metrics}");
    assert!(metric(&metrics, "process_cpu_seconds_total") > 0.0, "{metrics}");
    assert!(metric(&metrics, "process_open_fds") > 3.0, "{metrics}");
    assert_eq!(metric(&metrics, "hawker_webhook_deliveries_total{outcome=\"delivered\"}"), 0.0);

    // Log lines are JSON objects (the first-start banner on stdout aside); the access lines
    // name the route.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let access = loop {
        let log = server.log();
        let lines: Vec<serde_json::Value> =
            log.lines().filter(|l| l.starts_with('{')).map(|l| serde_json::from_str(l).expect(l)).collect();
        let access: Vec<_> = lines.into_iter().filter(|l| l["target"] == "hawker::access").collect();
        if access.iter().any(|l| l["status"] == 404) || std::time::Instant::now() > deadline {
            break access;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let found = |route: &str, status: u64| {
        access.iter().find(|l| l["route"] == route && l["status"] == status && l["method"] == "GET").cloned()
    };
    let stream = found("/api/v1/streams/{id}", 200).unwrap_or_else(|| panic!("{access:#?}"));
    assert!(stream["duration_ms"].as_f64().unwrap() >= 0.0, "{stream}");
    assert!(found("/readyz", 200).is_some() && found("(no route)", 404).is_some(), "{access:#?}");
    let text = serde_json::to_string(&access).unwrap();
    assert!(!text.contains(id) && !text.contains("query-secret-42"), "{text}");
    server.assert_log_free_of(&["query-secret-42"]);

    // A media folder that takes no write: not ready (answers are reused for 2 s).
    let media = server.data_dir.path().join("media");
    std::fs::rename(&media, server.data_dir.path().join("media.away")).unwrap();
    std::fs::write(&media, b"not a folder").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let refused = loop {
        let answer = server.get("/readyz").await;
        if answer.status() == 503 {
            break answer.json::<serde_json::Value>().await.unwrap();
        }
        assert!(std::time::Instant::now() < deadline, "still ready without a media folder");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!((&refused["status"], &refused["checks"]["store"]), (&"not ready".into(), &"not writable".into()));
    assert_eq!(server.get("/healthz").await.status(), 204, "alive all the same");
}

/// What a client gets compressed: playlists, pages, JSON (brotli or gzip, as it accepts, with
/// `Vary: Accept-Encoding`); media never. The pages' assets under content-hashed names are
/// immutable; under their plain names, revalidated by ETag.
#[tokio::test(flavor = "multi_thread")]
async fn text_is_compressed_media_is_not() {
    let server = Server::start_empty();
    let seller = server.user("seller", "seller");
    let created = server.create_stream(&seller, "Compressed").await;
    let (id, pid) = (created["id"].as_str().unwrap(), created["playback_id"].as_str().unwrap());
    let mut publisher = ffmpeg_publish(&format!("{}/{}", server.rtmp, created["stream_key"].as_str().unwrap()), 60);
    server.wait_for_status(id, "live", Duration::from_secs(20)).await;
    let live = server.wait_for_segments(pid, 2, Duration::from_secs(30)).await;

    let fetch = |path: String, accept: &'static str| {
        let request = server.client.get(server.url(&path)).header("accept-encoding", accept);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200, "{path}");
            let header = |name: &str| {
                let values: Vec<&str> = response.headers().get_all(name).iter().map(|v| v.to_str().unwrap()).collect();
                (!values.is_empty()).then(|| values.join(", "))
            };
            let (encoding, vary, cache) = (header("content-encoding"), header("vary"), header("cache-control"));
            let etag = header("etag");
            let body = response.bytes().await.unwrap().to_vec();
            let text = match encoding.as_deref() {
                Some("br") => {
                    let mut out = Vec::new();
                    brotli::BrotliDecompress(&mut &body[..], &mut out).expect("valid brotli");
                    out
                }
                Some("gzip") => {
                    let mut out = Vec::new();
                    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut out)
                        .expect("valid gzip");
                    out
                }
                _ => body.clone(),
            };
            (encoding, vary, cache, etag, body.len(), text)
        }
    };
    // (Answers under 256 bytes, such as a one-rendition multivariant playlist, go as they are.)
    let texts = [
        (format!("/hls/{pid}/v0/index.m3u8"), "#EXTM3U"),
        (format!("/watch/{pid}"), "<!doctype html>"),
        ("/api/v1/openapi.json".to_owned(), "{"),
        (format!("/api/v1/streams/{id}"), "{"),
    ];
    for (path, starts) in &texts {
        for (accept, want) in [("gzip, deflate, br", "br"), ("gzip", "gzip")] {
            let (encoding, vary, _, _, sent, text) = fetch(path.clone(), accept).await;
            assert_eq!(encoding.as_deref(), Some(want), "{path} with Accept-Encoding: {accept}");
            assert!(vary.is_some_and(|v| v.to_ascii_lowercase().contains("accept-encoding")), "{path}: Vary");
            let text = String::from_utf8(text).unwrap();
            assert!(
                text.to_ascii_lowercase().starts_with(&starts.to_ascii_lowercase()),
                "{path} decodes: {}",
                &text[..text.len().min(80)]
            );
            assert!(sent < text.len(), "{path}: {sent} bytes sent for {}", text.len());
        }
        let (encoding, vary, ..) = fetch(path.clone(), "identity").await;
        assert_eq!(encoding, None, "{path}: nothing compressed for a client that does not accept it");
        assert!(vary.is_some(), "{path}: the uncompressed answer varies too");
    }
    // The live playlist is compressed once per version for all its viewers: each blocking
    // reload for the next part, compressed, is the playlist that has that part.
    let playlist = format!("/hls/{pid}/v0/index.m3u8");
    for coding in ["br", "gzip", "br"] {
        let (_, _, _, _, _, text) = fetch(playlist.clone(), coding).await;
        let text = String::from_utf8(text).unwrap();
        let hint = text.lines().find_map(|l| l.strip_prefix("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"")).expect("a hint");
        let hint = hint.trim_end_matches('"');
        let (msn, part) = hint.trim_start_matches("seg").trim_end_matches(".m4s").split_once('.').unwrap();
        let (msn, part): (u64, u64) = (msn.parse().unwrap(), part.parse().unwrap());
        let reload = format!("{playlist}?_HLS_msn={msn}&_HLS_part={part}");
        let (encoding, vary, _, _, _, reloaded) = fetch(reload, coding).await;
        assert_eq!(encoding.as_deref(), Some(coding));
        assert!(vary.is_some_and(|v| v.to_ascii_lowercase().contains("accept-encoding")));
        let reloaded = String::from_utf8(reloaded).unwrap();
        let has = |uri: &str| {
            reloaded.lines().any(|l| l.starts_with("#EXT-X-PART:") && l.contains(&format!("URI=\"{uri}\"")))
        };
        assert!(
            has(hint) || has(&format!("seg{:06}.0.m4s", msn + 1)),
            "{coding}: the reload for {hint} lacks it:\n{reloaded}"
        );
    }
    let media = [format!("/hls/{pid}/v0/{}", live.segments[0].uri), format!("/hls/{pid}/v0/init0.mp4")];
    for path in &media {
        let (encoding, ..) = fetch(path.clone(), "gzip, br").await;
        assert_eq!(encoding, None, "{path}: media is never compressed");
    }

    // The page links hls.js by its content hash: immutable there, precompressed.
    let (_, _, _, _, _, page) = fetch(format!("/watch/{pid}"), "identity").await;
    let page = String::from_utf8(page).unwrap();
    let start = page.find("/assets/hls.min.").expect("the page links hls.js by a hashed name");
    let hashed = &page[start..start + page[start..].find('"').unwrap()];
    let (encoding, _, cache, etag, sent, body) = fetch(hashed.to_owned(), "br").await;
    assert_eq!(encoding.as_deref(), Some("br"));
    assert_eq!(cache.as_deref(), Some("public, max-age=31536000, immutable"));
    assert!(sent * 3 < body.len(), "hls.js: {sent} bytes sent for {}", body.len());
    let etag = etag.expect("an ETag");
    let hash = etag.trim_matches('"').trim_end_matches("-br");
    assert!(etag.ends_with("-br\"") && hashed.contains(hash), "the ETag is the content hash: {etag} {hashed}");
    // Under its plain name: revalidated, and 304 when unchanged (weak comparison too).
    let (_, _, cache, plain_etag, _, plain) = fetch("/assets/hls.min.js".to_owned(), "identity").await;
    let plain_etag = plain_etag.expect("an ETag");
    assert_eq!(cache.as_deref(), Some("no-cache"));
    assert_eq!(plain_etag, format!("\"{hash}\""), "each coding has its own ETag");
    assert_eq!(plain, body);
    for tag in [plain_etag.clone(), format!("W/{plain_etag}")] {
        let again =
            server.client.get(server.url("/assets/hls.min.js")).header("if-none-match", &tag).send().await.unwrap();
        assert_eq!(again.status(), 304, "{tag}");
        assert!(again.bytes().await.unwrap().is_empty());
    }
    let changed =
        server.client.get(server.url("/assets/hls.min.js")).header("if-none-match", "\"0\"").send().await.unwrap();
    assert_eq!(changed.status(), 200);
    // A page from a node of another version (a rolling upgrade) names another hash: it gets
    // this node's file, not cached for good.
    let other = server.client.get(server.url("/assets/hls.min.000000000000.js")).send().await.unwrap();
    assert_eq!(other.status(), 200);
    assert_eq!(other.headers()["cache-control"], "no-cache");
    let unknown = server.client.get(server.url("/assets/nothing.000000000000.js")).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    let _ = publisher.kill().await;
}
