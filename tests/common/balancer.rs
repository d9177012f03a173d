//! HAProxy from Debian's `haproxy` package in front of three hawker nodes, with the
//! repository's own configuration (`deploy/haproxy.cfg`), on free loopback ports.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{Server, Web};

pub struct Balancer {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub http: String,
    /// `rtmp://127.0.0.1:PORT/live`
    pub rtmp: String,
    pub client: reqwest::Client,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Balancer {
    pub fn start(nodes: [&Server; 3]) -> Self {
        let (rtmp_port, http_port) = (free_port(), free_port());
        let config = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/haproxy.cfg");
        let mut command = Command::new("haproxy");
        command
            .args(["-db", "-f", config])
            .env("HAWKER_LB_RTMP", format!("127.0.0.1:{rtmp_port}"))
            .env("HAWKER_LB_HTTP", format!("127.0.0.1:{http_port}"));
        for (n, node) in nodes.iter().enumerate() {
            command.env(format!("HAWKER_NODE{}_RTMP", n + 1), node.rtmp_addr());
            command.env(format!("HAWKER_NODE{}_HTTP", n + 1), node.http.trim_start_matches("http://"));
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run haproxy ({e}); `make test` installs Debian's haproxy package"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while [rtmp_port, http_port].iter().any(|port| std::net::TcpStream::connect(("127.0.0.1", *port)).is_err()) {
            assert!(Instant::now() < deadline, "haproxy did not listen within 10 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        Balancer {
            child,
            http: format!("http://127.0.0.1:{http_port}"),
            rtmp: format!("rtmp://127.0.0.1:{rtmp_port}/live"),
            client: reqwest::Client::new(),
        }
    }
}

impl Web for Balancer {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.http)
    }

    fn client(&self) -> &reqwest::Client {
        &self.client
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
