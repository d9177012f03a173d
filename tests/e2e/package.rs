//! The Debian package as installed on this machine (`make test` builds it from this build with
//! `scripts/build-deb` and installs it with apt before running the tests): its files, its
//! user, its systemd unit, and the installed binary running as that user on the packaged
//! settings, published to, played and ended.

use crate::common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::json;

fn output(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(out.status.success(), "{program} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_installed_package_serves_as_its_own_user() {
    let root = output("id", &["-u"]).trim() == "0";
    assert!(root, "this test runs the installed service as its own user: run `make test` as root (as CI does)");
    let status = Command::new("dpkg-query").args(["-W", "-f=${Status} ${Version}", "hawker"]).output().unwrap();
    let status = String::from_utf8_lossy(&status.stdout);
    assert_eq!(
        status,
        format!("install ok installed {}", env!("CARGO_PKG_VERSION")),
        "the hawker package is not installed: `make test` builds and installs it (scripts/build-deb)"
    );
    assert_eq!(output("dpkg-query", &["-S", "/usr/bin/hawker"]).trim(), "hawker: /usr/bin/hawker");
    assert!(output("dpkg-query", &["-W", "-f=${Depends}", "hawker"]).contains("gstreamer1.0-plugins-good"));

    // Its own system user; its settings readable by that user and root only (S3 secrets).
    let uid: u32 = output("id", &["-u", "hawker"]).trim().parse().unwrap();
    let gid: u32 = output("id", &["-g", "hawker"]).trim().parse().unwrap();
    let settings = std::fs::metadata("/etc/hawker/hawker.toml").unwrap();
    assert_eq!((settings.uid(), settings.gid(), settings.mode() & 0o777), (0, gid, 0o640));
    let data = std::fs::metadata("/var/lib/hawker").unwrap();
    assert_eq!((data.uid(), data.mode() & 0o777), (uid, 0o750));
    // The unit as systemd reads it (a unit systemd would refuse fails here).
    output("systemd-analyze", &["verify", "/lib/systemd/system/hawker.service"]);
    let unit = std::fs::read_to_string("/lib/systemd/system/hawker.service").unwrap();
    for line in ["User=hawker", "StateDirectory=hawker", "ProtectSystem=strict", "NoNewPrivileges=yes"] {
        assert!(unit.lines().any(|l| l == line), "the unit lacks {line}");
    }

    // The installed binary as the service runs it: its user, the packaged settings.
    let scratch = tempfile::tempdir().unwrap();
    let data_dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(data_dir.path(), Some(uid), Some(gid)).unwrap();
    // GStreamer's plugin registry, kept between runs (as the unit's CacheDirectory is).
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hawker-user-cache");
    std::fs::create_dir_all(&cache).unwrap();
    std::os::unix::fs::chown(&cache, Some(uid), Some(gid)).unwrap();
    let launcher = scratch.path().join("as-hawker");
    std::fs::write(
        &launcher,
        format!(
            "#!/bin/sh\nXDG_CACHE_HOME={} exec setpriv --reuid hawker --regid hawker --init-groups \
             /usr/bin/hawker \"$@\" --config /etc/hawker/hawker.toml\n",
            cache.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&launcher, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let server = Server::start_bin(launcher.to_str().unwrap(), data_dir, &[]);
    let seller = server.user("seller", "seller");
    let created = server.create_stream(&seller, "From the package").await;
    let (id, pid) = (created["id"].as_str().unwrap(), created["playback_id"].as_str().unwrap());
    let publisher = ffmpeg_publish(&format!("{}/{}", server.rtmp, created["stream_key"].as_str().unwrap()), 8);
    server.wait_for_status(id, "live", Duration::from_secs(20)).await;
    let live = server.wait_for_segments(pid, 2, Duration::from_secs(30)).await;
    validate_hls(&server, pid).await;
    server.check_segments_decode(pid, &live).await;
    assert!(publisher.wait_with_output().await.unwrap().status.success());
    let (status, ended) =
        server.call("POST", &format!("/api/v1/streams/{id}/end"), Some(&seller), Some(json!({"action": "save"}))).await;
    assert_eq!(status, 200, "{ended}");
    let replay = check_media_playlist(&server.media_playlist(pid).await.expect("the replay's playlist"));
    assert!(replay.end_list && total_duration(&replay) > 6.0, "{replay:?}");
    // What it wrote belongs to its user.
    let media = server.media_path(pid);
    assert_eq!(std::fs::metadata(Path::new(&media)).unwrap().uid(), uid, "{}", media.display());
    let data_dir = server.stop(Duration::from_secs(20));
    drop(data_dir);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// curl through the proxy to `live.example.com` (resolved to loopback, certificate not
/// checked): (HTTP version, status, headers, body).
fn curl(port: u16, args: &[&str], path: &str) -> (String, u16, String, String) {
    let scratch = tempfile::tempdir().unwrap();
    let headers = scratch.path().join("headers");
    let url = format!("https://live.example.com:{port}{path}");
    let resolve = format!("live.example.com:{port}:127.0.0.1");
    let out = Command::new("curl")
        .args(["-sk", "--max-time", "5", "--resolve", &resolve, "-D", headers.to_str().unwrap()])
        .args(["-w", "\n%{http_version} %{http_code}"])
        .args(args)
        .arg(&url)
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, last) = text.rsplit_once('\n').unwrap_or(("", &text));
    let (version, code) = last.split_once(' ').unwrap_or(("", "0"));
    let headers = std::fs::read_to_string(headers).unwrap_or_default();
    (version.to_owned(), code.trim().parse().unwrap_or(0), headers, body.to_owned())
}

/// The README's reverse-proxy example (deploy/nginx-reverse-proxy.conf) run by Debian's nginx
/// in front of hawker: HTTP/2 over TLS, the Host a browser's same-site check needs, text
/// compressed by hawker, WebSocket event sockets upgraded, LL-HLS blocking requests held.
#[tokio::test(flavor = "multi_thread")]
async fn the_reverse_proxy_example_carries_what_hawker_needs() {
    let server = Server::start_with(&["--trusted-proxy", "127.0.0.1/32"]);
    let seller = server.user("seller", "seller");
    let created = server.create_stream(&seller, "Behind nginx").await;
    let (id, pid) = (created["id"].as_str().unwrap(), created["playback_id"].as_str().unwrap());
    let mut publisher = ffmpeg_publish(&format!("{}/{}", server.rtmp, created["stream_key"].as_str().unwrap()), 60);
    server.wait_for_status(id, "live", Duration::from_secs(20)).await;
    let live = server.wait_for_segments(pid, 2, Duration::from_secs(30)).await;

    // The example as shipped, with a test certificate, loopback ports and hawker's address.
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    output(
        "openssl",
        &["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=live.example.com"]
            .into_iter()
            .chain(["-keyout", key.to_str().unwrap(), "-out", cert.to_str().unwrap()])
            .collect::<Vec<_>>(),
    );
    let (https, http) = (free_port(), free_port());
    let example = include_str!("../../deploy/nginx-reverse-proxy.conf");
    let site = example
        .replace("/etc/letsencrypt/live/live.example.com/fullchain.pem", cert.to_str().unwrap())
        .replace("/etc/letsencrypt/live/live.example.com/privkey.pem", key.to_str().unwrap())
        .replace("server 127.0.0.1:8080;", &format!("server {};", server.http.trim_start_matches("http://")))
        .replace("listen 443 ssl http2;", &format!("listen 127.0.0.1:{https} ssl http2;"))
        .replace("listen 80;", &format!("listen 127.0.0.1:{http};"))
        .lines()
        .filter(|line| !line.contains("listen [::]"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(site.contains(&format!("listen 127.0.0.1:{https} ssl http2;")), "the example's listen line changed");
    let d = dir.path().display();
    std::fs::write(dir.path().join("site.conf"), site).unwrap();
    std::fs::write(
        dir.path().join("nginx.conf"),
        format!(
            "daemon off; master_process off; user root; pid {d}/nginx.pid; error_log {d}/error.log;\n\
             events {{}}\n\
             http {{ access_log off; client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;\n\
             include {d}/site.conf; }}\n"
        ),
    )
    .unwrap();
    let mut nginx = Command::new("nginx")
        .args(["-p", &d.to_string(), "-c", &format!("{d}/nginx.conf")])
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run nginx ({e}); `make test` installs Debian's nginx-light"));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", https)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "nginx did not listen: {}",
            std::fs::read_to_string(format!("{d}/error.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let (version, status, ..) = curl(https, &["--http2"], "/healthz");
    assert_eq!((version.as_str(), status), ("2", 204), "HTTP/2 over TLS");
    // A browser's player session: same-site JSON, checked against the Host nginx passes on.
    let origin = format!("Origin: https://live.example.com:{https}");
    let join = ["--http2", "-X", "POST", "-H", &origin, "-H", "Content-Type: application/json", "-d", "{}"];
    let (_, status, _, body) = curl(https, &join, &format!("/api/v1/streams/{id}/viewers"));
    assert_eq!(status, 201, "a same-site join through the proxy: {body}");
    // Text compressed by hawker, through the proxy.
    let (_, status, headers, _) = curl(https, &["--http2", "-H", "Accept-Encoding: br"], &format!("/watch/{pid}"));
    assert_eq!(status, 200);
    assert!(headers.to_ascii_lowercase().contains("content-encoding: br"), "{headers}");
    // LL-HLS: a request for the next segment's first part is held until it exists.
    let next = live.media_sequence + live.segments.len() as u64;
    let held = format!("/hls/{pid}/v0/index.m3u8?_HLS_msn={next}&_HLS_part=0");
    let started = std::time::Instant::now();
    let (_, status, _, playlist) = curl(https, &["--http2"], &held);
    assert_eq!(status, 200, "{playlist}");
    assert!(playlist.contains(&format!("seg{next:06}.0.m4s")), "the held playlist names the part:\n{playlist}");
    println!("held LL-HLS request answered after {:?}", started.elapsed());
    // An event socket: the WebSocket upgrade reaches hawker and comes back.
    let upgrade = [
        "--http1.1",
        "-H",
        "Connection: Upgrade",
        "-H",
        "Upgrade: websocket",
        "-H",
        "Sec-WebSocket-Version: 13",
        "-H",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "--max-time",
        "2",
    ];
    let (_, status, headers, _) = curl(https, &upgrade, &format!("/api/v1/streams/{id}/events"));
    assert_eq!(status, 101, "{headers}");
    let _ = nginx.kill();
    let _ = nginx.wait();
    let _ = publisher.kill().await;
}
