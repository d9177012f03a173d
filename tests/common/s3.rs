//! s3s-fs, a real S3 server (SigV4 checked), on a free loopback port with a temporary root.
//! `make test` installs it (`cargo install s3s-fs@0.14.1 --features binary --locked`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ACCESS_KEY: &str = "hawker-test-key";
pub const SECRET_KEY: &str = "hawker-test-secret-0123456789";
pub const BUCKET: &str = "hawker-media";
/// Key prefix the tests configure, to check that it is applied.
pub const PREFIX: &str = "pfx/";

pub struct S3Server {
    child: Option<Child>,
    pub root: tempfile::TempDir,
    pub port: u16,
    /// Files of the config the hawker under test reads.
    config_dir: tempfile::TempDir,
}

fn binary() -> PathBuf {
    if let Ok(path) = std::env::var("S3S_FS") {
        return path.into();
    }
    let in_cargo_home = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|_| std::env::var("HOME").map(|h| Path::new(&h).join(".cargo")))
        .map(|home| home.join("bin/s3s-fs"));
    match in_cargo_home {
        Ok(path) if path.exists() => path,
        _ => "s3s-fs".into(),
    }
}

impl S3Server {
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut server = S3Server {
            child: None,
            root: tempfile::tempdir().unwrap(),
            port,
            config_dir: tempfile::tempdir().unwrap(),
        };
        server.restart();
        server
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Kills the server (an outage); its objects stay on disk.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts (again) on the same port and root, and waits until it accepts connections.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut child = Command::new(binary())
                .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
                .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
                .arg(self.root.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("cannot run s3s-fs ({e}); `make test` installs it: cargo install s3s-fs@0.14.1 --features binary --locked")
                });
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(3) {
                if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                    self.child = Some(child);
                    return;
                }
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
            assert!(Instant::now() < deadline, "s3s-fs did not start on port {}", self.port);
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// A hawker config file for this server: S3 storage, its endpoint, bucket (created by
    /// hawker), prefix, credentials, and `delivery`.
    pub fn config_file(&self, delivery: &str) -> PathBuf {
        self.config_file_at(delivery, &self.endpoint())
    }

    /// As `config_file`, with hawker reaching the server at `endpoint` (a proxy in front).
    pub fn config_file_at(&self, delivery: &str, endpoint: &str) -> PathBuf {
        let path = self.config_dir.path().join(format!("hawker-{delivery}.toml"));
        let text = format!(
            "storage = \"s3\"\n\
             s3_endpoint = \"{endpoint}\"\n\
             s3_bucket = \"{BUCKET}\"\n\
             s3_region = \"us-east-1\"\n\
             s3_prefix = \"{PREFIX}\"\n\
             s3_create_bucket = true\n\
             s3_delivery = \"{delivery}\"\n\
             s3_access_key_id = \"{ACCESS_KEY}\"\n\
             s3_secret_access_key = \"{SECRET_KEY}\"\n"
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    /// The file holding an object (s3s-fs keeps objects as plain files).
    pub fn object_path(&self, key: &str) -> PathBuf {
        self.root.path().join(BUCKET).join(PREFIX).join(key)
    }

    /// Keys (without the configured prefix) of the objects under `prefix`, sorted.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        let base = self.root.path().join(BUCKET).join(PREFIX);
        let mut keys = Vec::new();
        walk(&base, &base, &mut keys);
        keys.retain(|k| k.starts_with(prefix));
        keys.sort();
        keys
    }
}

fn walk(base: &Path, dir: &Path, keys: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(base, &path, keys);
        } else if let Ok(rel) = path.strip_prefix(base) {
            let key = rel.to_string_lossy().into_owned();
            if !key.split('/').any(|part| part.starts_with('.')) {
                keys.push(key);
            }
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// HAProxy in front of an `S3Server`, answering CORS as a bucket with the README's CORS rule
/// does (tests/fixtures/bucket-cors.haproxy.cfg: s3s-fs has no bucket CORS of its own).
pub struct BucketCors {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
}

impl BucketCors {
    pub fn start(s3: &S3Server) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("haproxy")
            .args(["-db", "-f", concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/bucket-cors.haproxy.cfg")])
            .env("HAWKER_BUCKET_FRONT", format!("127.0.0.1:{port}"))
            .env("HAWKER_BUCKET", format!("127.0.0.1:{}", s3.port))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run haproxy ({e}); `make test` installs Debian's haproxy package"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "haproxy did not listen within 10 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        BucketCors { child, endpoint: format!("http://127.0.0.1:{port}") }
    }
}

impl Drop for BucketCors {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
