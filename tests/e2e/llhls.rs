//! LL-HLS delivery end to end: parts, blocking playlist reload and its rules, preload-hinted
//! parts, delta updates, and LL-HLS turned off.

use crate::common;

use std::time::{Duration, Instant};

use common::hls::{check_playlist_text, low_latency};
use common::*;
use serde_json::json;

/// (MSN, index) of `seg{MSN:06}.{i}.m4s`.
fn part_id(uri: &str) -> (u64, u64) {
    let (msn, i) = uri.trim_start_matches("seg").trim_end_matches(".m4s").split_once('.').expect("part uri");
    (msn.parse().unwrap(), i.parse().unwrap())
}

async fn timed(server: &Server, path: &str) -> (u16, String, Duration) {
    let started = Instant::now();
    let (status, text) = server.get_text(path).await;
    (status, text, started.elapsed())
}

#[tokio::test(flavor = "multi_thread")]
async fn blocking_reload_parts_hints_and_delta_updates() {
    let server = Server::start_with(&["--live-window", "20"]);
    let seller = server.user("seller", "seller");
    let created = server.create_stream(&seller, "LL").await;
    let (id, pid, key) = (
        created["id"].as_str().unwrap(),
        created["playback_id"].as_str().unwrap(),
        created["stream_key"].as_str().unwrap(),
    );
    let mut ffmpeg = ffmpeg_publish(&format!("{}/{key}", server.rtmp), 60);
    server.wait_for_status(id, "live", Duration::from_secs(5)).await;
    let media = format!("/hls/{pid}/v0/index.m3u8");
    // Wait for the first parts.
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let (status, text) = server.get_text(&media).await;
        if status == 200 && text.contains("#EXT-X-PART:") {
            break text;
        }
        assert!(Instant::now() < deadline, "no parts after 10 s: {status} {text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (_, ll) = check_playlist_text(&text);
    assert_eq!(ll.part_target, Some(0.2));
    assert!(
        text.contains(
            "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.600,HOLD-BACK=6.000,CAN-SKIP-UNTIL=12.000"
        ),
        "{text}"
    );

    // A standard request is answered at once.
    let (status, _, took) = timed(&server, &media).await;
    assert_eq!(status, 200);
    assert!(took < Duration::from_millis(300), "plain reload took {took:?}");

    // Hold until the next part exists: ask for the hinted one.
    let (_, text) = server.get_text(&media).await;
    let hint = low_latency(&text).preload_hint.expect("a preload hint");
    let (msn, part) = part_id(&hint);
    let (status, text, took) = timed(&server, &format!("{media}?_HLS_msn={msn}&_HLS_part={part}")).await;
    assert_eq!(status, 200, "{text}");
    assert!(took < Duration::from_secs(2), "blocking reload for a part took {took:?}");
    let ll = low_latency(&text);
    assert!(
        ll.parts.iter().any(|p| part_id(&p.uri) >= (msn, part)) || text.contains(&format!("seg{msn:06}.m4s")),
        "part {msn}.{part} missing:\n{text}"
    );

    // The hinted part: the request is held until the part is complete.
    let hint = low_latency(&text).preload_hint.expect("a preload hint");
    let started = Instant::now();
    let response = server.get(&format!("/hls/{pid}/v0/{hint}")).await;
    assert_eq!(response.status(), 200, "hinted part {hint}");
    let bytes = response.bytes().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(&bytes[4..8], if hint.ends_with(".0.m4s") { b"styp" } else { b"moof" }, "hinted part {hint}");
    let (_, text) = server.get_text(&media).await;
    assert!(text.contains(&format!("URI=\"{hint}\"")), "{hint} is not listed after it was served:\n{text}");

    // Live playlists and parts are answered before the router, as the router would answer
    // them: the same request, percent-encoded so that only the router takes it, gets the same
    // headers (and, for a part, the same bytes); HEAD has no body; both are counted by route.
    let route = "method=\"GET\",route=\"/hls/{playback_id}/{*path}\",status=\"200\"";
    let counted =
        metric(&server.get("/metrics").await.text().await.unwrap(), &format!("hawker_http_requests_total{{{route}}}"));
    let encoded = |path: &str| path.replacen('.', "%2E", 1);
    let headers = ["content-type", "cache-control", "content-encoding", "vary", "access-control-allow-origin"];
    let fetch = |path: String, accept: &'static str| {
        let request = server.client.get(server.url(&path)).header("accept-encoding", accept);
        async move { request.send().await.unwrap() }
    };
    for accept in ["br", "gzip", "identity"] {
        let (direct, routed) = (fetch(media.clone(), accept).await, fetch(encoded(&media), accept).await);
        for name in headers {
            assert_eq!(direct.headers().get(name), routed.headers().get(name), "{name} of a playlist, {accept}");
        }
        assert_eq!(direct.headers()["access-control-allow-origin"], "*");
        assert_eq!(direct.headers()["vary"], "accept-encoding");
        assert_eq!(direct.headers().get("content-encoding").is_some(), accept != "identity", "{accept}");
        let part = format!("/hls/{pid}/v0/{hint}");
        let (direct, routed) = (fetch(part.clone(), accept).await, fetch(encoded(&part), accept).await);
        for name in headers {
            assert_eq!(direct.headers().get(name), routed.headers().get(name), "{name} of a part, {accept}");
        }
        assert_eq!(direct.bytes().await.unwrap(), routed.bytes().await.unwrap(), "part {hint}");
    }
    let head = server.client.head(server.url(&media)).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-type"], "application/vnd.apple.mpegurl");
    assert!(head.bytes().await.unwrap().is_empty(), "a body in answer to HEAD");
    let now =
        metric(&server.get("/metrics").await.text().await.unwrap(), &format!("hawker_http_requests_total{{{route}}}"));
    assert!(now >= counted + 12.0, "{counted} then {now}: playlists and parts not counted");

    // Hold until the next whole segment exists.
    let playlist = parse_media(&text);
    let next = playlist.media_sequence + playlist.segments.len() as u64;
    let (status, text, took) = timed(&server, &format!("{media}?_HLS_msn={next}")).await;
    assert_eq!(status, 200);
    assert!(took < Duration::from_secs(4), "segment {next} took {took:?}");
    assert!(text.contains(&format!("\nseg{next:06}.m4s\n")), "segment {next} missing:\n{text}");
    // A segment is complete with its last part, not once the next one has begun: it is listed
    // before any part of the next (that one is only hinted).
    let following = format!("URI=\"seg{:06}.0.m4s\"", next + 1);
    assert!(
        !text.lines().any(|line| line.starts_with("#EXT-X-PART:") && line.contains(&following)),
        "segment {next} was listed only once the next had a part:\n{text}"
    );

    // Parts are not objects of their own: those of a complete segment are its bytes, in order.
    let parts: Vec<String> =
        low_latency(&text).parts.iter().filter(|p| part_id(&p.uri).0 == next).map(|p| p.uri.clone()).collect();
    assert!(parts.len() >= 2, "segment {next} lists {} parts:\n{text}", parts.len());
    let mut joined = Vec::new();
    for uri in &parts {
        let response = server.get(&format!("/hls/{pid}/v0/{uri}")).await;
        assert_eq!(response.status(), 200, "part {uri} of a complete segment");
        joined.extend_from_slice(&response.bytes().await.unwrap());
    }
    let segment = server.get(&format!("/hls/{pid}/v0/seg{next:06}.m4s")).await.bytes().await.unwrap();
    assert_eq!(joined, segment.to_vec(), "segment {next} is not its parts");
    let response = server.get(&format!("/hls/{pid}/v0/seg{next:06}.{}.m4s", parts.len())).await;
    assert_eq!(response.status(), 404, "a part past a complete segment's last");

    // 400s: _HLS_part without _HLS_msn, MSN more than two ahead, a part beyond the limit.
    let last = {
        let p = parse_media(&text);
        p.media_sequence + p.segments.len() as u64 // the segment being built
    };
    for query in [
        "_HLS_part=1".to_owned(),
        format!("_HLS_msn={}", last + 3),
        format!("_HLS_msn={last}&_HLS_part=40"),
        "_HLS_msn=abc".to_owned(),
    ] {
        let (status, body, took) = timed(&server, &format!("{media}?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(took < Duration::from_millis(300), "{query} took {took:?}");
    }

    // Every rule the validator knows, on a live LL-HLS playlist.
    validate_hls(&server, pid).await;

    // Delta update once the playlist is longer than CAN-SKIP-UNTIL (12 s).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, text) = server.get_text(&format!("{media}?_HLS_skip=YES")).await;
        assert_eq!(status, 200);
        if let Some(skipped) = low_latency(&text).skipped_segments {
            let (_, full) = server.get_text(&media).await;
            let full_pl = parse_media(&full);
            assert!(skipped >= 1);
            let delta_segments = text.lines().filter(|l| l.starts_with("#EXTINF")).count() as u64;
            // Same media sequence; the skipped segments plus the listed ones cover the window
            // (the full playlist may be a part or a segment ahead of the delta).
            assert!(
                text.contains(&format!("#EXT-X-MEDIA-SEQUENCE:{}\n", full_pl.media_sequence))
                    || full_pl.media_sequence > 0
            );
            let total = skipped + delta_segments;
            assert!(
                total + 1 >= full_pl.segments.len() as u64 && total <= full_pl.segments.len() as u64,
                "{skipped} + {delta_segments} vs {}",
                full_pl.segments.len()
            );
            // What is left covers at least CAN-SKIP-UNTIL.
            let kept: f64 = text
                .lines()
                .filter_map(|l| l.strip_prefix("#EXTINF:"))
                .map(|v| v.trim_end_matches(',').parse::<f64>().unwrap())
                .sum();
            assert!(kept >= 10.0, "delta keeps {kept} s:\n{text}");
            assert!(text.contains("#EXT-X-MAP:"), "{text}");
            break;
        }
        assert!(Instant::now() < deadline, "no delta update:\n{text}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // 503: the publisher stops; nothing new appears; the hold ends after 3 × TARGETDURATION.
    let _ = ffmpeg.kill().await;
    server.wait_for_status(id, "reconnecting", Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, text) = server.get_text(&media).await;
    let p = parse_media(&text);
    let next = p.media_sequence + p.segments.len() as u64;
    let (status, _, took) = timed(&server, &format!("{media}?_HLS_msn={next}")).await;
    assert_eq!(status, 503);
    assert!(took >= Duration::from_secs(6) && took < Duration::from_secs(8), "503 after {took:?}");
    // A held part request for the hint also gives up with 503.
    let hint = low_latency(&text).preload_hint.expect("hint while reconnecting");
    let (status, _, _) = timed(&server, &format!("/hls/{pid}/v0/{hint}")).await;
    assert_eq!(status, 503);
    validate_hls(&server, pid).await;

    // ENDLIST: directives are ignored, the playlist is served at once.
    let (status, _) =
        server.call("POST", &format!("/api/v1/streams/{id}/end"), Some(&seller), Some(json!({"action": "save"}))).await;
    assert_eq!(status, 200);
    let (status, text, took) = timed(&server, &format!("{media}?_HLS_msn={}&_HLS_part=3", next + 1)).await;
    assert_eq!(status, 200);
    assert!(took < Duration::from_millis(300));
    assert!(text.contains("#EXT-X-ENDLIST"));
    assert!(!text.contains("#EXT-X-PART"), "the replay has no parts:\n{text}");
    validate_hls(&server, pid).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ll_hls_off_gives_plain_playlists_and_ignores_directives() {
    let server = Server::start_with(&["--ll-hls", "false"]);
    let seller = server.user("seller", "seller");
    let created = server.create_stream(&seller, "plain").await;
    let (id, pid, key) = (
        created["id"].as_str().unwrap(),
        created["playback_id"].as_str().unwrap(),
        created["stream_key"].as_str().unwrap(),
    );
    let mut ffmpeg = ffmpeg_publish(&format!("{}/{key}", server.rtmp), 30);
    server.wait_for_status(id, "live", Duration::from_secs(5)).await;
    let media = format!("/hls/{pid}/v0/index.m3u8");
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let (status, text) = server.get_text(&media).await;
        if status == 200 {
            break text;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for tag in ["PART", "SERVER-CONTROL", "PRELOAD-HINT"] {
        assert!(!text.contains(tag), "{tag} with LL-HLS off:\n{text}");
    }
    assert!(text.contains("#EXT-X-VERSION:7\n"));
    let p = parse_media(&text);
    let (status, _, took) =
        timed(&server, &format!("{media}?_HLS_msn={}", p.media_sequence + p.segments.len() as u64 + 1)).await;
    assert_eq!(status, 200);
    assert!(took < Duration::from_millis(300), "directives must be ignored, took {took:?}");
    validate_hls(&server, pid).await;
    let _ = ffmpeg.kill().await;
}
