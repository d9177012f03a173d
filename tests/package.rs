//! The Debian package as installed on this machine (`make test` builds it from this build with
//! `scripts/build-deb` and installs it with apt before running the tests): its files, its
//! user, its systemd unit, and the installed binary running as that user on the packaged
//! settings, published to, played and ended.

mod common;

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
    let launcher = scratch.path().join("as-hawker");
    std::fs::write(
        &launcher,
        format!(
            "#!/bin/sh\nXDG_CACHE_HOME={0}/.cache exec setpriv --reuid hawker --regid hawker --init-groups \
             /usr/bin/hawker \"$@\" --config /etc/hawker/hawker.toml\n",
            data_dir.path().display()
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
