//! RTMP and RTMPS behind HAProxy (Debian's package) sending the PROXY protocol v2: the seller's
//! own address is what the per-address limits see, the stream plays, and a PROXY header from
//! a peer that is not a trusted proxy is refused.

use crate::common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use tokio::io::AsyncWriteExt;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct RtmpProxy {
    child: Child,
    rtmp: String,
    rtmps: String,
}

impl RtmpProxy {
    fn start(server: &Server) -> Self {
        let (rtmp, rtmps) = (free_port(), free_port());
        let hawker_rtmps = server.rtmps.as_deref().expect("an RTMPS listener");
        let child = Command::new("haproxy")
            .args(["-db", "-f", concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/rtmp-proxy.haproxy.cfg")])
            .env("HAWKER_PROXY_RTMP", format!("127.0.0.1:{rtmp}"))
            .env("HAWKER_PROXY_RTMPS", format!("127.0.0.1:{rtmps}"))
            .env("HAWKER_RTMP", server.rtmp_addr())
            .env("HAWKER_RTMPS", hawker_rtmps.trim_start_matches("rtmps://").trim_end_matches("/live"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run haproxy ({e}); `make test` installs Debian's haproxy package"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while [rtmp, rtmps].iter().any(|port| std::net::TcpStream::connect(("127.0.0.1", *port)).is_err()) {
            assert!(Instant::now() < deadline, "haproxy did not listen within 10 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        RtmpProxy {
            child,
            rtmp: format!("rtmp://127.0.0.1:{rtmp}/live"),
            rtmps: format!("rtmps://127.0.0.1:{rtmps}/live"),
        }
    }
}

impl Drop for RtmpProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn behind_haproxy_the_seller_is_seen_and_limited_by_their_own_address() {
    // Only HAProxy's address (127.0.0.2) is trusted; the publishers are at 127.0.0.1.
    let server =
        Server::start_with(&["--tls-self-signed", "--rtmps", "127.0.0.1:0", "--trusted-proxy", "127.0.0.2/32"]);
    let proxy = RtmpProxy::start(&server);
    let seller = server.user("seller", "seller");
    let created = server.create_stream(&seller, "Through the balancer").await;
    let (id, pid, key) = (
        created["id"].as_str().unwrap(),
        created["playback_id"].as_str().unwrap(),
        created["stream_key"].as_str().unwrap(),
    );

    // RTMPS through HAProxy: the PROXY header, then TLS, then RTMP.
    let mut publisher = ffmpeg_publish(&format!("{}/{key}", proxy.rtmps), 30);
    server.wait_for_status(id, "live", Duration::from_secs(15)).await;
    let live = server.wait_for_segments(pid, 2, Duration::from_secs(30)).await;
    server.check_segments_decode(pid, &live).await;
    validate_hls(&server, pid).await;
    let _ = publisher.kill().await;
    let log = server.log();
    assert!(log.contains("rtmp{peer=127.0.0.1:") && log.contains("tls=true"), "the publisher's own address is logged");
    assert!(!log.contains("peer=127.0.0.2"), "HAProxy's address stands for nobody:\n{log}");

    // Wrong keys through HAProxy count against the publisher's address (HAProxy's own is
    // exempt): after five, even the right key is refused.
    for n in 0..5 {
        let output = publish_output(&format!("{}/sk_wrong{n}", proxy.rtmp)).await;
        assert!(output.contains("invalid stream key") && !output.contains("too many"), "try {n}: {output}");
    }
    let output = publish_output(&format!("{}/{key}", proxy.rtmp)).await;
    assert!(output.contains("too many invalid stream keys from this address"), "{output}");

    // A PROXY header from a peer that is not a trusted proxy: refused before any RTMP.
    let mut socket = tokio::net::TcpStream::connect(server.rtmp_addr()).await.unwrap();
    socket.write_all(b"PROXY TCP4 203.0.113.7 127.0.0.1 5000 1935\r\n\x03").await.unwrap();
    common::rtmp::wait_closed(&mut socket, Duration::from_secs(3)).await;
    // The server logs before it closes; the harness reads its log on a thread of its own.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !server.log().contains("not a trusted proxy") {
        assert!(Instant::now() < deadline, "the refusal was not logged:\n{}", server.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!server.log().contains("203.0.113.7"), "the forged address is believed nowhere");
}
